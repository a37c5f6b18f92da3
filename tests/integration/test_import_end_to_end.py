"""End to end against the loopback archives: ``polyrl import polymarket ... && polyrl import
binance ... && polyrl train --replay DAY --feature-set history`` on what they imported
(the imports are the shared ones of :mod:`tests.integration.import_archives`: the real CLI
against an :class:`~polyrl.testing.archive_server.ArchiveServer` on 127.0.0.1), then
``polyrl inspect`` names where each stream came from and ``seed18`` is refused for lack of
the Binance book streams the archives do not hold."""

from __future__ import annotations

import json

import polars as pl
import pytest

from .conftest import run_cli
from .import_archives import DAY, archives

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def arch(tmp_path_factory):
    return archives(tmp_path_factory)


def _summary(stdout: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)


def test_import_both_archives_then_train_on_history(arch, tmp_path):
    # The imports (run by the shared fixture) each succeeded and imported the span.
    pm = arch.stdout["polymarket"]
    assert "windows: 6 imported" in pm and "0 missing hours" in pm, pm
    bn = _summary(arch.stdout["binance"])
    assert bn["days"] == "1 imported, 0 already done" and bn["gaps"] == "0"
    runs = tmp_path / "runs"
    res = run_cli("train", "--replay", DAY, "--root", str(arch.imported), "--feature-set",
                  "history", "--updates", "2", "--runs", str(runs), "--name", "t",
                  timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    run = runs / "t"
    metrics = pl.read_parquet(run / "metrics.parquet")
    assert len(metrics) == 2 and metrics["losses/policy"].is_finite().all()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["updates"] == 2 and summary["feature_set"] == "history"
    assert summary["splits"]["train"] == [DAY]
    data = summary["data"]
    assert data["kinds"] == ["imported"] and data["days"][DAY]["kind"] == "imported"
    by = {s["source"]: s for s in data["sources"]}
    assert set(by) == {"pmxt", "binance"}
    assert by["pmxt"]["archive"] == arch.url and by["pmxt"]["gamma"] == arch.url
    assert by["binance"]["archive"] == arch.url
    assert by["binance"]["delay_ms"] == {"spot": 20.0, "futures": 20.0}
    assert f"data: imported from {arch.url}" in res.stdout


def test_inspect_names_the_origin_of_every_stream(arch):
    res = run_cli("inspect", str(arch.imported))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    host = arch.url.removeprefix("http://")
    want = {
        "polymarket.book": "pmxt", "polymarket.price_change": "pmxt",
        "polymarket.trade": "pmxt", "polymarket.tick_size": "pmxt",
        "polymarket.market": "gamma", "polymarket.resolution": "gamma",
        "binance.spot.trade": "binance", "binance.spot.kline": "binance",
        "binance.futures.trade": "binance", "binance.futures.mark": "binance",
        "binance.futures.open_interest": "binance",
    }  # fmt: skip
    for stream, source in want.items():
        line = next(x for x in lines if x.startswith(f"  {DAY}  {stream} "))
        assert f"imported ({source}) from {host}" in line, line
        assert "recorded" not in line and "simulated" not in line


def test_seed18_is_refused_on_the_imported_root(arch, tmp_path):
    res = run_cli("backtest", "--feature-set", "seed18", "--strategy", "momentum", "--replay",
                  DAY, "--root", str(arch.imported), "--runs", str(tmp_path / "runs"))  # fmt: skip
    assert res.returncode == 1
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in res.stderr
    assert err[0].startswith("polyrl: error: feature set seed18 cannot run on")
    assert "binance.spot.book_ticker" in err[0] and "--feature-set history" in err[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
