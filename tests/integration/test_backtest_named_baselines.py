"""`polyrl backtest --strategy hold|fair_gap`: named-only baselines through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import polyrl.sections  # noqa: F401 - the small_recording fixture builds a Config

from .conftest import run_cli

pytestmark = pytest.mark.integration


def test_hold_and_fair_gap_run_by_name(small_recording: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    same = ("--replay", "2024-06-01", "--root", str(small_recording), "--runs", str(runs))
    # hold: never a fill, PnL 0 in every window it played.
    res = run_cli("backtest", "--strategy", "hold", *same)
    assert res.returncode == 0, res.stderr
    total = json.loads((runs / "backtest-hold" / "summary.json").read_text())["stats"]["total"]
    assert total["fills"] == 0 and total["pnl"] == 0 and total["windows"] > 0
    # fair_gap on the feature set that has fair_gap: it trades, BUY only where the gap is
    # positive and SELL only where it is negative (the decisions log against the features).
    res = run_cli("backtest", "--strategy", "fair_gap", "--feature-set", "full", *same)
    assert res.returncode == 0, res.stderr
    assert "fair_gap" in res.stdout
    dec = pl.read_parquet(runs / "backtest-fair_gap" / "decisions.parquet")
    assert dec.filter(pl.col("action") != 0).height > 0
    summary = json.loads((runs / "backtest-fair_gap" / "summary.json").read_text())
    assert summary["strategy"] == "fair_gap" and summary["stats"]["total"]["fills"] > 0


def test_fair_gap_without_the_feature_is_a_clear_error(tmp_path: Path) -> None:
    res = run_cli("backtest", "--strategy", "fair_gap", "--replay", "sample",
                  "--feature-set", "seed18", "--runs", str(tmp_path / "runs"))  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stderr
    err = res.stderr.strip()
    assert "--strategy fair_gap" in err and "fair_gap" in err and "--feature-set" in err
    assert not (tmp_path / "runs").exists()
