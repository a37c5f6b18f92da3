"""Statistics against values worked out by hand on tiny frames (see frames.py)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from polyrl.analysis.paired import compare, paired_difference_ci
from polyrl.analysis.stats import (
    SUMMARY_COLUMNS,
    bootstrap_mean_ci,
    by_time_left,
    max_drawdown,
    payoff,
    sharpe,
    summarize,
    summary_frame,
    summary_table,
    time_left_table,
)
from polyrl.analysis.trades import positions
from polyrl.runlog import EPISODES

from .frames import W, episode, episodes, trades

approx = pytest.approx


def test_payoff_sharpe_and_drawdown_by_hand() -> None:
    p = payoff(np.array([2.0, -1.0, -1.0, 0.0, 3.0]))
    # wins 2 and 3; losses -1, -1 and 0 (PnL <= 0 is a loss)
    assert p == {"win_rate": 0.4, "avg_win": 2.5, "avg_loss": approx(-2 / 3),
                 "profit_factor": 2.5}  # fmt: skip
    assert all(math.isnan(v) for v in payoff(np.zeros(0)).values())
    assert sharpe(np.array([1.0, 2.0, 3.0])) == approx(2.0)  # mean 2 / sd 1
    assert math.isnan(sharpe(np.array([1.0]))) and math.isnan(sharpe(np.array([2.0, 2.0])))
    # cumulative 0, 1, -2, 0, -1: peak 1, deepest -2
    assert max_drawdown(np.array([1.0, -3.0, 2.0, -1.0])) == 3.0
    assert max_drawdown(np.array([1.0, 2.0])) == 0.0


def test_bootstrap_is_seeded_and_exact_for_constants() -> None:
    assert bootstrap_mean_ci(np.full(7, 1.5)) == (1.5, 1.5)
    x = np.array([-3.0, 0.0, 1.0, 4.0, 10.0])
    a, b, c = (bootstrap_mean_ci(x, seed=s) for s in (1, 1, 2))
    assert a == b and a != c
    lo, hi = a
    assert x.min() <= lo < x.mean() < hi <= x.max()
    assert all(math.isnan(v) for v in bootstrap_mean_ci(np.zeros(0)))


def test_summarize_by_hand() -> None:
    s = summarize(trades(), episodes(), assets=("btc", "eth"), capital_per_slot=10.0)
    t = s["total"]
    assert t["pnl"] == approx(16.7)
    assert t["roi"] == approx(16.7 / 20)
    assert t["fills"] == 4 and t["positions"] == 3
    assert t["win_rate"] == approx(2 / 3)
    assert t["avg_win"] == approx(10.9) and t["avg_loss"] == approx(-5.1)
    assert t["profit_factor"] == approx(21.8 / 5.1)
    assert t["fees"] == approx(0.5)
    assert t["max_drawdown"] == approx(5.1)
    assert (t["windows"], t["windows_traded"]) == (4, 3)
    # Every eligible window counts, w4 (not traded) as 0; the traded windows' figure beside it.
    every = np.array([2.0, -5.1, 19.8, 0.0])
    assert t["pnl_per_window"] == approx(16.7 / 4)
    assert t["sharpe_per_window"] == approx(every.mean() / every.std(ddof=1))
    lo, hi = t["pnl_per_window_ci95"]
    assert -5.1 <= lo < every.mean() < hi <= 19.8
    assert t["clusters"] == 4 and t["block"] == "start"  # four start times
    per = np.array([2.0, -5.1, 19.8])
    assert t["pnl_per_traded_window"] == approx(per.mean())
    tlo, thi = t["pnl_per_traded_window_ci95"]
    assert -5.1 <= tlo < per.mean() < thi <= 19.8 and t["traded_clusters"] == 3
    btc, eth = s["by_asset"]["btc"], s["by_asset"]["eth"]
    assert btc["pnl"] == approx(-3.1) and btc["roi"] == approx(-0.31)
    assert (btc["fills"], btc["positions"]) == (3, 2)
    assert btc["win_rate"] == 0.5 and btc["profit_factor"] == approx(2.0 / 5.1)
    assert btc["max_drawdown"] == approx(5.1) and btc["fees"] == approx(0.3)
    assert eth["pnl"] == approx(19.8) and eth["win_rate"] == 1.0
    assert math.isnan(eth["avg_loss"]) and math.isnan(eth["profit_factor"])
    assert (eth["windows"], eth["windows_traded"]) == (2, 1)
    assert eth["sharpe_per_window"] == approx(9.9 / np.std([19.8, 0.0], ddof=1))
    assert eth["pnl_per_window"] == approx(9.9) and eth["clusters"] == 2
    # One traded window is one cluster: no interval, said as NaN rather than [19.8, 19.8].
    assert eth["pnl_per_traded_window"] == approx(19.8) and eth["traded_clusters"] == 1
    assert all(math.isnan(v) for v in eth["pnl_per_traded_window_ci95"])


def test_max_drawdown_counts_simultaneous_settlements_as_one_step() -> None:
    # Two windows settle at the same instant, +3 and -2: the equity goes 0 -> +1 in one step,
    # whatever order the rows are in.
    tr = (
        trades()
        .filter(pl.col("condition_id") == "w1")
        .with_columns(pl.lit(100).alias("t_ns"), pl.lit("settle").alias("kind"))
    )
    tr = pl.concat([tr.head(1).with_columns(pl.lit(3.0).alias("realized_pnl")),
                    tr.head(1).with_columns(pl.lit(-2.0).alias("realized_pnl"))])  # fmt: skip
    ep = episodes().head(1)
    for rows in (tr, tr.reverse()):
        s = summarize(rows, ep, assets=("btc",), capital_per_slot=10.0)
        assert s["total"]["max_drawdown"] == 0.0


def test_summary_frame_and_table() -> None:
    res = {"a": (trades(), episodes()), "b": (trades().head(0), episodes())}
    df = summary_table(res, assets=("btc", "eth"), capital_per_slot=10.0)
    assert df.columns == ["strategy", "asset", *SUMMARY_COLUMNS]
    assert df.select("strategy", "asset").rows() == [
        ("a", "btc"), ("a", "eth"), ("a", "total"), ("b", "btc"), ("b", "eth"), ("b", "total"),
    ]  # fmt: skip
    total = df.filter((pl.col("strategy") == "a") & (pl.col("asset") == "total")).row(0, named=True)
    assert total["pnl"] == approx(16.7) and total["fills"] == 4
    direct = summarize(trades(), episodes(), assets=("btc", "eth"), capital_per_slot=10.0)
    assert [total["ci_low"], total["ci_high"]] == direct["total"]["pnl_per_window_ci95"]
    assert summary_frame({}).columns == df.columns


def test_by_time_left_by_hand() -> None:
    pos = positions(trades(), episodes())
    assert pos["minutes_left"].to_list() == [14.0, 1.0, 12.0]
    t = by_time_left(pos)
    assert t["bucket"].to_list() == ["0-3 min", "3-6 min", "6-9 min", "9-12 min", ">=12 min"]
    assert t["positions"].to_list() == [1, 0, 0, 0, 2]
    late, early = t.row(0, named=True), t.row(4, named=True)
    assert late["pnl"] == approx(-5.1) and late["win_rate"] == 0.0
    assert late["profit_factor"] == 0.0 and late["fees"] == approx(0.1)
    assert early["pnl"] == approx(21.8) and early["mean_pnl"] == approx(10.9)
    assert early["win_rate"] == 1.0 and math.isnan(early["profit_factor"])
    assert early["fees"] == approx(0.4)
    assert math.isnan(t.row(1, named=True)["mean_pnl"])
    # Other edges: 12 minutes left falls in the last bucket ([edge, inf)).
    t2 = by_time_left(pos, edges_min=(5, 12))
    assert t2["bucket"].to_list() == ["0-5 min", "5-12 min", ">=12 min"]
    assert t2["positions"].to_list() == [1, 0, 2]
    stacked = time_left_table({"x": (trades(), episodes()), "y": (trades(), episodes())})
    assert stacked.height == 10 and stacked["strategy"].unique().sort().to_list() == ["x", "y"]


def _eps(pnl: dict[str, float]) -> pl.DataFrame:
    """One btc window per condition id, each at its own start time (one cluster each)."""
    return pl.DataFrame([episode(0, "btc", cid, ord(cid[0]) * W, "Up", 1, v, 0.0)
                         for cid, v in pnl.items()], schema=EPISODES)  # fmt: skip


def test_compare_pairs_windows_and_reads_the_interval() -> None:
    ref = _eps({"a": 1.0, "b": 2.0, "c": 3.0})
    worse = _eps({"a": 0.0, "b": 1.0, "c": 2.0, "d": 50.0})  # d is not shared: left out
    better = _eps({"a": 2.0, "b": 3.0, "c": 4.0})
    mixed = _eps({"a": 3.0, "b": 0.0, "c": 3.0})
    alone = _eps({"z": 1.0})
    t = compare({"ref": ref, "worse": worse, "better": (None, better), "mixed": mixed,
                 "alone": alone}, reference="ref")  # fmt: skip
    rows = {r["strategy"]: r for r in t.iter_rows(named=True)}
    assert set(rows) == {"worse", "better", "mixed", "alone"}
    w = rows["worse"]
    assert w["windows"] == 3 and w["mean_diff"] == 1.0
    assert (w["ci_low"], w["ci_high"]) == (1.0, 1.0) and w["verdict"] == "better"
    assert w["reference_pnl"] == 2.0 and w["other_pnl"] == 1.0
    assert rows["better"]["mean_diff"] == -1.0 and rows["better"]["verdict"] == "worse"
    m = rows["mixed"]  # differences -2, +2, 0
    assert m["mean_diff"] == 0.0 and m["ci_low"] < 0 < m["ci_high"]
    assert m["verdict"] == "no clear difference"
    assert rows["alone"]["windows"] == 0 and rows["alone"]["verdict"] == "no shared windows"
    assert paired_difference_ci(ref, worse)[0] == 1.0
    with pytest.raises(KeyError, match="nope"):
        compare({"ref": ref}, reference="nope")
