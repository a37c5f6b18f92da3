"""`polyrl backtest` end to end through the real CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl
import pytest

import polyrl.sections  # noqa: F401 - the small_recording fixture builds a Config

from .conftest import run_cli

pytestmark = pytest.mark.integration


def _digest(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def test_backtest_twice_is_byte_identical_and_prints_the_table(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    res = run_cli(
        "simulate",
        "--out",
        str(rec),
        "--start",
        "2024-06-01T00:00",
        "--hours",
        "0.4",
        "--seed",
        "4",
    )
    assert res.returncode == 0, res.stderr
    outs = []
    for name in ("a", "b"):
        res = run_cli(
            "backtest",
            "--strategy",
            "random",
            "--replay",
            "2024-06-*",
            "--root",
            str(rec),
            "--runs",
            str(tmp_path / "runs"),
            "--name",
            name,
        )
        assert res.returncode == 0, res.stderr
        outs.append(res.stdout)
    da, db = _digest(tmp_path / "runs" / "a"), _digest(tmp_path / "runs" / "b")
    assert da == db and "summary.json" in da
    assert outs[0] == outs[1]
    for word in ("PnL $", "ROI", "win%", "avg win", "avg loss", "fees $", "max DD", "95% CI"):
        assert word in outs[0]
    for asset in ("btc", "eth", "sol", "xrp", "total"):
        assert f" {asset} " in outs[0]
    summary = json.loads((tmp_path / "runs" / "a" / "summary.json").read_text())
    assert summary["events_digest"] and summary["outputs_digest"]
    assert summary["stats"]["total"]["fills"] > 0
    # PnL per window over every eligible window with its clusters; per traded window beside it.
    for word in ("PnL/window", "clust", "PnL/traded window", "cluster bootstrap"):
        assert word in outs[0]
    ep = pl.read_parquet(tmp_path / "runs" / "a" / "episodes.parquet")
    ep = ep.filter(pl.col("outcome_source") != "missing")
    total = summary["stats"]["total"]
    assert total["windows"] == ep.height and total["clusters"] == ep["start_ns"].n_unique()
    assert total["pnl_per_window"] == pytest.approx(ep["pnl"].mean())
    assert total["windows_traded"] == ep.filter(pl.col("fills") > 0).height
    # The config that ran is saved beside the run.
    cfg = json.loads((tmp_path / "runs" / "a" / "config.json").read_text())
    assert cfg["strategy"] == "random" and cfg["assets"] == ["btc", "eth", "sol", "xrp"]


@pytest.mark.slow
def test_every_baseline_runs_on_the_sample(tmp_path: Path) -> None:
    res = run_cli(
        "backtest",
        "--strategy",
        "all",
        "--replay",
        "sample",
        "--runs",
        str(tmp_path / "runs"),
        timeout=900,
    )
    assert res.returncode == 0, res.stderr
    for name in ("momentum", "mean_revert", "fade_spike", "random", "gating"):
        summary = json.loads(
            (tmp_path / "runs" / "backtest-all" / name / "summary.json").read_text()
        )
        assert summary["strategy"] == name
        # 8 windows per asset, plus the 02:00 window current at the very last tick, which
        # has no outcome: left out of the PnL statistics and counted.
        total = summary["stats"]["total"]
        assert total["windows"] + total["missing_resolution"] == 36
        assert total["missing_resolution"] == 4
        assert name in res.stdout
    # The sample's last windows resolve after the recording ends: flagged, not silent.
    assert "settled from the reference feed" in res.stderr
    assert "4 window(s) had no outcome and are left out of the PnL statistics" in res.stderr
    cmp = json.loads((tmp_path / "runs" / "backtest-all" / "comparison.json").read_text())
    assert set(cmp) == {"momentum", "mean_revert", "fade_spike", "random", "gating"}


def test_an_existing_run_is_refused_never_overwritten(
    small_recording: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    same = ("--replay", "2024-06-01", "--root", str(small_recording), "--runs", str(runs))
    res = run_cli("backtest", "--strategy", "random", *same)
    assert res.returncode == 0, res.stderr
    before = _digest(runs / "backtest-random")
    # The same backtest again under the default name: refused, naming the folder and --name.
    res = run_cli("backtest", "--strategy", "random", *same)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        f"polyrl: error: run directory {runs / 'backtest-random'} already holds a run; "
        "pass --name NAME to write a new run"
    ]
    # ... and under an explicit name that is taken, whatever the strategy.
    res = run_cli("backtest", "--strategy", "momentum", *same, "--name", "backtest-random")
    assert res.returncode == 1 and "use another --name" in res.stderr
    assert str(runs / "backtest-random") in res.stderr
    assert _digest(runs / "backtest-random") == before
    # A new name is a new run beside it; `all` writes its siblings under one folder and a
    # second `all` there is refused too.
    res = run_cli("backtest", "--strategy", "random", *same, "--name", "again")
    assert res.returncode == 0, res.stderr
    assert _digest(runs / "again") == before
    res = run_cli("backtest", "--strategy", "all", *same)
    assert res.returncode == 0, res.stderr
    siblings = sorted(p.parent.name for p in (runs / "backtest-all").glob("*/summary.json"))
    assert siblings == sorted(["momentum", "mean_revert", "fade_spike", "random", "gating"])
    res = run_cli("backtest", "--strategy", "all", *same)
    assert res.returncode == 1 and str(runs / "backtest-all") in res.stderr
    res = run_cli("backtest", "--strategy", "gating", *same, "--name", "backtest-all")
    assert res.returncode == 1 and str(runs / "backtest-all") in res.stderr
    assert not (runs / "backtest-all" / "summary.json").exists()


def test_backtest_errors_are_clear(tmp_path: Path) -> None:
    res = run_cli("backtest", "--strategy", "nope", "--replay", "sample")
    assert res.returncode == 1 and "--strategy" in res.stderr and "Traceback" not in res.stderr
    res = run_cli(
        "backtest", "--strategy", "momentum", "--replay", "2031-*", "--root", str(tmp_path)
    )
    assert res.returncode == 1 and "2031-*" in res.stderr and "Traceback" not in res.stderr
    res = run_cli(
        "backtest", "--strategy", "momentum", "--replay", "sample", "--feature-set", "nope"
    )
    assert res.returncode == 1 and "nope" in res.stderr and "Traceback" not in res.stderr
    # --root names the recording a date glob reads; the sample has its own: refused, not ignored.
    res = run_cli(
        "backtest", "--strategy", "momentum", "--replay", "sample", "--root", str(tmp_path)
    )
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "--root" in res.stderr and "--replay sample" in res.stderr


def test_an_unknown_block_is_refused(small_recording: Path, tmp_path: Path) -> None:
    runs = str(tmp_path / "runs")
    res = run_cli("backtest", "--strategy", "random", "--replay", "2024-06-01", "--root",
                  str(small_recording), "--runs", runs, "--block", "week")  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        "polyrl: error: --block: 'week' is not one of start, day"
    ]
    assert not (tmp_path / "runs").exists()


def _same(a: dict, b: dict) -> bool:
    """Equal as JSON (NaN, as in an interval over no windows, equal to NaN)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _sweep_entry(sweep: dict, ms: int) -> dict:
    (entry,) = [e for e in sweep["entries"] if e["latency_ms"] == ms]
    return entry


@pytest.mark.slow
def test_a_latency_sweep_builds_the_feature_cache_once(small_recording: Path, tmp_path: Path):
    """`--latency 0,250,700ms` runs the strategy once per latency from one feature entry per
    day (only a small fill-book sidecar per latency); a later sweep with new latencies adds
    sidecars and never rebuilds the entry; each latency's figures are those of a backtest
    run at that latency alone."""
    import shutil

    rec = tmp_path / "rec"
    shutil.copytree(small_recording, rec, ignore=shutil.ignore_patterns(".cache"))
    runs = tmp_path / "runs"
    common = ("--strategy", "momentum", "--replay", "2024-06-01", "--root", str(rec),
              "--runs", str(runs))  # fmt: skip
    res = run_cli("backtest", *common, "--name", "sweep", "--latency", "0,250,700ms")
    assert res.returncode == 0, res.stderr
    rows = [ln.split() for ln in res.stdout.splitlines() if ln.startswith("momentum")]
    assert [r[1] for r in rows] == ["0ms", "250ms", "700ms"]
    for word in ("latency", "PnL/window", "clust", "fills", "traded", "cluster bootstrap"):
        assert word in res.stdout
    entries = list((rec / ".cache" / "features" / "2024-06-01").iterdir())
    assert len(entries) == 1  # one feature entry for every latency
    entry = entries[0]
    assert sorted(p.name for p in entry.glob("fills-*")) == ["fills-250000000", "fills-700000000"]
    built = (entry / "features.npy").stat().st_mtime_ns
    sweep = json.loads((runs / "sweep" / "sweep.json").read_text())
    assert sweep["latencies_ms"] == [0, 250, 700] and len(sweep["entries"]) == 3
    for ms, row in zip((0, 250, 700), rows, strict=True):
        e = _sweep_entry(sweep, ms)
        run = runs / "sweep" / f"latency-{ms}ms"
        summary = json.loads((run / "summary.json").read_text())
        cfg = json.loads((run / "config.json").read_text())
        assert e["run"] == f"latency-{ms}ms" and _same(e["total"], summary["stats"]["total"])
        assert summary["fill_latency_ms"] == ms and cfg["engine"]["fill_latency_ms"] == ms
        assert summary["data"] == sweep["data"] and summary["data"]["text"].startswith("simulated")
        assert int(row[3]) == e["total"]["fills"] and int(row[8]) == e["total"]["clusters"]
    tot = [_sweep_entry(sweep, ms)["total"] for ms in (0, 250, 700)]
    assert tot[0]["fills"] > 0 and tot[0]["pnl"] != tot[2]["pnl"]  # latency moves the fills
    # A later sweep with other latencies: new sidecars, the same untouched feature entry.
    res = run_cli("backtest", *common, "--name", "more", "--latency", "0.1,1s")
    assert res.returncode == 0, res.stderr
    assert list((rec / ".cache" / "features" / "2024-06-01").iterdir()) == [entry]
    assert (entry / "features.npy").stat().st_mtime_ns == built
    assert (entry / "fills-100000000" / "done").exists()
    assert (entry / "fills-1000000000" / "done").exists()
    # One latency alone is a plain backtest at that latency: the sweep's figures exactly.
    res = run_cli("backtest", *common, "--name", "single", "--latency", "700")
    assert res.returncode == 0, res.stderr
    single = json.loads((runs / "single" / "summary.json").read_text())
    assert single["fill_latency_ms"] == 700 and _same(single["stats"]["total"], tot[2])
    assert (entry / "features.npy").stat().st_mtime_ns == built


def test_a_bad_latency_is_refused_in_one_line(tmp_path: Path) -> None:
    for bad, what in (("0,fast", "'fast'"), ("-5ms", "'-5ms'"), ("0.3ms", "whole number"),
                      ("100,,200", "list of latencies"), ("5m", "'5m'")):  # fmt: skip
        res = run_cli("backtest", "--strategy", "random", "--replay", "sample", "--latency",
                      bad, "--runs", str(tmp_path / "runs"))  # fmt: skip
        assert res.returncode == 1 and "Traceback" not in res.stderr
        (line,) = res.stderr.strip().splitlines()
        assert line.startswith("polyrl: error: --latency:") and what in line, line
    assert not (tmp_path / "runs").exists()
