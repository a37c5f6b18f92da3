"""A feature set on a recording that lacks a stream it needs: refused before any work, in one
line; the ``history`` set on the same recording (only what public archives hold) runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.integration

NOT_ARCHIVED = (
    "binance.spot.book_ticker",
    "binance.spot.depth",
    "reference.price",
    "polymarket.best_bid_ask",
    "binance.futures.liquidation",
)
"""Streams the public archives do not hold."""


@pytest.fixture(scope="module")
def archive_rec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """18 simulated minutes of btc and eth (the 00:00 window resolved, 00:15 begun) without
    the streams no archive holds, its day said to be imported (so an absent liquidation
    stream is missing, not a quiet day of a recorder that always subscribes it)."""
    rec = tmp_path_factory.mktemp("archive-rec") / "rec"
    res = run_cli("simulate", "--out", str(rec), "--start", "2024-06-01T00:00",
                  "--hours", "0.3", "--seed", "5", "--assets", "btc,eth")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert (rec / "binance.spot.book_ticker").is_dir()
    for s in NOT_ARCHIVED:
        shutil.rmtree(rec / s, ignore_errors=True)
    prov = rec / "provenance" / "2024-06-01.json"
    prov.write_text(json.dumps({"format": 1, "sources": [{"kind": "imported", "by": "a test"}]}))
    return rec


def _refused(res, runs: Path, rec: Path) -> str:  # type: ignore[no-untyped-def]
    assert res.returncode == 1, res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert not runs.exists()  # nothing written
    assert not (rec / ".cache").exists()  # no day built
    return lines[0]


def test_backtest_refuses_seed18_without_the_spot_book(archive_rec: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    res = run_cli("backtest", "--strategy", "random", "--feature-set", "seed18", "--replay",
                  "2024-06-*", "--root", str(archive_rec), "--runs", str(runs))  # fmt: skip
    line = _refused(res, runs, archive_rec)
    assert line.startswith(f"polyrl: error: feature set seed18 cannot run on {archive_rec}: ")
    assert (
        "binance.spot.book_ticker (needed by returns_1m, returns_5m, returns_10m, vol_5m, "
        "vol_expansion, vol_regime, trend_regime) is missing from 2024-06-01" in line
    )
    assert "binance.spot.depth (needed by ob_imbalance_l1, ob_imbalance_l5)" in line
    assert line.endswith("use --feature-set history")


def test_train_refuses_full_without_the_reference(archive_rec: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    res = run_cli("train", "--replay", "2024-06-01", "--root", str(archive_rec),
                  "--feature-set", "full", "--updates", "1", "--runs", str(runs))  # fmt: skip
    line = _refused(res, runs, archive_rec)
    assert "reference.price (needed by ref_move, fair_up, fair_gap)" in line
    assert "binance.futures.liquidation (needed by liq_intensity)" in line
    assert line.endswith("use --feature-set history")


def test_history_runs_where_seed18_is_refused(archive_rec: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    res = run_cli("backtest", "--strategy", "random", "--feature-set", "history",
                  "--replay", "2024-06-*", "--root", str(archive_rec), "--runs", str(runs),
                  "--name", "h")  # fmt: skip
    assert res.returncode == 0, res.stderr
    summary = json.loads((runs / "h" / "summary.json").read_text())
    # random trades only where a market is tradable: the history features were ready.
    assert summary["stats"]["total"]["fills"] > 0
    cfg = json.loads((runs / "h" / "config.json").read_text())
    assert cfg["features"]["feature_set"] == "history"


def test_features_lists_the_history_set_and_what_it_needs() -> None:
    res = run_cli("features", "--set", "history")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "needs streams: polymarket.market, polymarket.book, polymarket.price_change, " in out
    assert "binance.spot.trade" in out and "binance.spot.book_ticker" not in out
    assert "reads if present: binance.spot.kline" in out
    assert "up_imbalance_l1" in out and "the last Binance spot aggTrade price" in out


def test_train_runs_on_history(archive_rec: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    res = run_cli("train", "--replay", "2024-06-01", "--root", str(archive_rec),
                  "--feature-set", "history", "--updates", "1", "--envs", "2",
                  "--runs", str(runs), "--name", "t")  # fmt: skip
    assert res.returncode == 0, res.stderr
    summary = json.loads((runs / "t" / "summary.json").read_text())
    assert summary["updates"] == 1
    assert (runs / "t" / "checkpoints" / "last").is_dir()
