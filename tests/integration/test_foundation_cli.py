"""The foundation end to end through the real CLI: schema, simulate, inspect, errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from polyrl.recording.schema import STREAM_IDS
from polyrl.sim.frames import TYPICAL_ROWS_PER_ASSET_HOUR

from .conftest import run_cli

pytestmark = pytest.mark.integration


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.parquet"))
    }


def test_simulate_twice_same_seed_is_byte_identical(tmp_path: Path) -> None:
    args = ("--start", "2024-06-01T00:10", "--hours", "0.1", "--assets", "btc,xrp")
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for root, seed in ((a, "5"), (b, "5"), (c, "6")):
        res = run_cli("simulate", "--out", str(root), "--seed", seed, *args)
        assert res.returncode == 0, res.stderr
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert len(da) >= 10
    assert da == db
    assert da != dc


@pytest.mark.slow
def test_inspect_json_on_a_simulated_hour(sim_hour: Path) -> None:
    res = run_cli("inspect", str(sim_hour), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    rows = {(s["stream"], s["group"]): s for s in report["streams"]}
    for stream, (lo, hi) in TYPICAL_ROWS_PER_ASSET_HOUR.items():
        if stream in ("binance.spot.kline", "polymarket.tick_size", "polymarket.market"):
            continue  # warm-up only, threshold-driven, or announced ahead: checked below
        for asset in ("btc", "eth", "sol", "xrp"):
            s = rows.get((stream, asset))
            assert s is not None, f"{stream} has no {asset} rows"
            assert lo <= s["rows"] <= hi, (stream, asset, s["rows"])
            if hi >= 3600:  # streams that tick at least every second
                assert 0.5 * lo / 3600 <= s["mean_rate_per_s"] <= 2 * hi / 3600
    for asset in ("btc", "eth", "sol", "xrp"):
        assert rows[("binance.spot.kline", asset)]["rows"] == 60
        assert rows[("polymarket.market", asset)]["rows"] >= 4
        assert rows[("polymarket.resolution", asset)]["rows"] == 3
    channels = {c["channel"]: c for c in report["channels"]}
    assert channels["recorder"]["starts"] == 1 and channels["recorder"]["stops"] == 1
    assert all(c["parse_errors"] == 0 for c in channels.values())
    # Human-readable form names every stream too.
    res = run_cli("inspect", str(sim_hour))
    assert res.returncode == 0
    for stream in TYPICAL_ROWS_PER_ASSET_HOUR:
        assert stream in res.stdout


def test_empty_glob_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "r"
    assert (
        run_cli("simulate", "--out", str(root), "--hours", "0.05", "--assets", "btc").returncode
        == 0
    )
    res = run_cli("inspect", str(root), "--dates", "2023-01-*")
    assert res.returncode == 1
    assert "2023-01-*" in res.stderr and str(root) in res.stderr
    assert "Traceback" not in res.stderr
    res = run_cli("inspect", str(tmp_path / "missing"))
    assert res.returncode == 1 and "does not exist" in res.stderr


def test_corrupt_parquet_is_named(tmp_path: Path) -> None:
    root = tmp_path / "r"
    assert (
        run_cli("simulate", "--out", str(root), "--hours", "0.05", "--assets", "eth").returncode
        == 0
    )
    victim = sorted(root.glob("polymarket.book/date=*/hour=*/*.parquet"))[0]
    data = victim.read_bytes()
    victim.write_bytes(data[:100] + b"\x00" * 64 + data[164:-40])
    res = run_cli("inspect", str(root))
    assert res.returncode == 1
    assert str(victim) in res.stderr
    assert "Traceback" not in res.stderr


def test_schema_command_prints_every_stream_from_the_code() -> None:
    res = run_cli("schema")
    assert res.returncode == 0
    for s in STREAM_IDS:
        assert s in res.stdout
    res = run_cli("schema", "polymarket.price_change", "--json")
    cols = [c["name"] for c in json.loads(res.stdout)["columns"]]
    assert cols[:5] == ["recv_ns", "seq", "exch_ns", "key", "asset"] and cols[-1] == "raw"
    assert "best_bid" in cols and "entry" in cols
    res = run_cli("schema", "nope.stream")
    assert res.returncode == 1 and "unknown stream 'nope.stream'" in res.stderr
    assert "Traceback" not in res.stderr


def _command_paths() -> list[tuple[str, ...]]:
    """Every command and sub-command of the real CLI (so the list cannot drift)."""
    import typer.main

    from polyrl.cli import _register, app

    _register()
    out: list[tuple[str, ...]] = []

    def walk(cmd, path: tuple[str, ...]) -> None:  # noqa: ANN001
        out.append(path)
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return out


COMMANDS = _command_paths()


def test_the_cli_has_every_documented_command() -> None:
    tops = {p[0] for p in COMMANDS if p}
    assert {"record", "train", "live", "backtest", "parity", "dashboard", "bench"} <= tops
    assert {("bench", b) for b in ("store", "replay", "record", "train", "live")} <= set(COMMANDS)


@pytest.fixture(scope="module")
def helps(request: pytest.FixtureRequest) -> dict[tuple[str, ...], subprocess.CompletedProcess]:
    """``polyrl ARGS --help`` for every command selected below, two processes at a time (one
    per core) instead of one after the other: each is its own fresh interpreter either way."""
    wanted = [
        item.callspec.params["args"]
        for item in request.session.items
        if item.originalname == "test_every_command_has_help"
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = pool.map(lambda args: run_cli(*args, "--help"), wanted)
        return dict(zip(wanted, done, strict=True))


@pytest.mark.parametrize("args", COMMANDS, ids=lambda p: " ".join(p) or "polyrl")
def test_every_command_has_help(
    args: tuple[str, ...], helps: dict[tuple[str, ...], subprocess.CompletedProcess]
) -> None:
    """--help works and documents every option and argument."""
    import typer.main

    from polyrl.cli import app

    res = helps[args]
    assert res.returncode == 0, res.stderr
    assert "Usage" in res.stdout
    assert len(res.stdout) > 200
    cmd = typer.main.get_command(app)
    for name in args:
        cmd = cmd.commands[name]
    assert cmd.help, f"{args}: no description"
    undocumented = [p.name for p in cmd.params if not getattr(p, "help", None)]
    assert not undocumented, f"polyrl {' '.join(args)}: without help: {undocumented}"


def test_bad_option_is_a_clear_error(tmp_path: Path) -> None:
    res = run_cli("simulate", "--out", str(tmp_path / "x"), "--assets", "btc,doge")
    assert res.returncode == 1
    assert "--assets" in res.stderr and "doge" in res.stderr
    res = run_cli("simulate", "--out", str(tmp_path / "x"), "--start", "yesterday")
    assert res.returncode == 1 and "--start" in res.stderr


def test_record_into_an_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = run_cli("record", "--out", str(blocker / "rec"), "--duration", "5s", "--quiet")
    assert res.returncode == 1
    assert "cannot create recording root" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("record", "--duration", "soon")
    assert res.returncode == 1 and "--duration" in res.stderr
