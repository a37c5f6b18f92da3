"""`polyrl inspect --book-stats`, and the default simulator held to the real books' figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import polyrl.sections  # noqa: F401 - the small_recording fixture builds a Config
from polyrl.analysis.bookstats import book_stats, format_book_stats

from .conftest import run_cli

pytestmark = pytest.mark.integration

# Real figures (BTC 15-minute markets), computed the way book_stats computes them:
# - a 1 Hz REST poll of the Up and Down books, 2025-12-26 10:34-18:29 UTC, 32 windows
#   (Borisz42/PolymarketAnalyst data/market_data_20251226.csv): top-5 depth per side with
#   10-15 min left 3,239 bid / 3,241 ask shares, last minute 653 / 774; spread with more than
#   a minute left median 0.01, mean 0.0137, p90 0.02, last minute median 0.03, mean 0.038,
#   p90 0.08; 1 s steps with no Up-mid move 0.44 (0.50 counting one-sided books), moves median
#   0.01, p90 0.03; last mid of 31 of 31 complete windows beyond 0.9/0.1;
# - one 1 Hz window, 2026-02-01 14:30 UTC (thevalerka/PolyMarket_15MIN_Bot_Collection
#   analysis_20260201_1430.json): no move in 0.52 of the steps, moves median 0.01, p90 0.04;
#   last-minute spread mean 0.023 against 0.011 before; ends at 0.975;
# - trades: 605,976 last_trade_price frames in one day of the BTC 5-minute series
#   (Ligengxin96/polymarket-data-samples manifest, 2026-07-24) = 3.5 per second per token;
#   samples of the 15-minute markets run 2.5-4.6.
REAL_DEPTH_EARLY = 3_240.0
TOLERANCE = {
    # statistic: (low, high) a default simulated hour must land in
    "depth_early": (0.7 * REAL_DEPTH_EARLY, 1.3 * REAL_DEPTH_EARLY),
    "depth_last_over_early": (0.1, 0.5),  # real 0.20-0.24 (in play), 0.32-0.36 (two-sided)
    "spread_rest_mean": (0.010, 0.018),  # real 0.011-0.014
    "spread_last_mean": (0.015, 0.060),  # real 0.023-0.038
    "mid_still_share": (0.40, 0.60),  # real 0.44-0.52
    "move_median": (0.005, 0.020),  # real 0.01
    "move_p90": (0.020, 0.050),  # real 0.03-0.04
    "trades_per_s_token": (2.5, 4.6),  # real 2.5-4.6
}


def _within(name: str, value: float | None) -> None:
    lo, hi = TOLERANCE[name]
    assert value is not None and lo <= value <= hi, f"{name} = {value}, want [{lo}, {hi}]"


@pytest.mark.slow
def test_a_default_simulated_hour_looks_like_the_real_books(sim_hour: Path) -> None:
    stats = book_stats(sim_hour)
    assert [s.group for s in stats] == ["btc", "eth", "sol", "xrp", "all"]
    s = stats[-1]
    assert s.complete_windows >= 12
    for depth in (s.depth_bid_early, s.depth_ask_early):
        _within("depth_early", depth)
    assert s.depth_bid_early and s.depth_ask_early and s.depth_bid_last and s.depth_ask_last
    _within("depth_last_over_early", s.depth_bid_last / s.depth_bid_early)
    _within("depth_last_over_early", s.depth_ask_last / s.depth_ask_early)
    assert s.spread_rest_median == pytest.approx(0.01)
    _within("spread_rest_mean", s.spread_rest_mean)
    _within("spread_last_mean", s.spread_last_mean)
    assert s.spread_last_mean and s.spread_rest_mean and s.spread_last_mean > s.spread_rest_mean
    _within("mid_still_share", s.mid_still_share)
    _within("move_median", s.move_median)
    _within("move_p90", s.move_p90)
    for group in stats:  # every asset, not only the pool
        _within("trades_per_s_token", group.trades_per_s_token)
    assert s.decided_share == 1.0  # real: every window ends beyond 0.9/0.1


@pytest.mark.slow
def test_inspect_book_stats_on_a_small_recording(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    args = ("--start", "2024-06-01T00:14", "--hours", "0.28", "--assets", "btc", "--seed", "3")
    res = run_cli("simulate", "--out", str(root), *args)
    assert res.returncode == 0, res.stderr
    res = run_cli("inspect", str(root), "--book-stats", "--json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [r["group"] for r in rows] == ["btc", "all"]
    btc, pooled = rows
    assert btc == {**pooled, "group": "btc"}  # one asset: the pool is that asset
    # 00:14-00:30:48 covers the 00:15 window whole (its book subscribed a minute ahead).
    assert btc["complete_windows"] == 1 and btc["windows"] >= 2
    assert 0 < btc["depth_bid_early"] and 0 < btc["depth_ask_early"]
    assert 0.0 <= btc["mid_still_share"] <= 1.0
    assert btc["trades_per_s_token"] > 0
    assert btc["decided_share"] in (0.0, 1.0)
    text = run_cli("inspect", str(root), "--book-stats")
    assert text.returncode == 0, text.stderr
    assert "top-5 bid depth, 10-15 min left" in text.stdout
    assert "trades per s per token" in text.stdout
    assert format_book_stats(book_stats(root)) in text.stdout  # the CLI prints the library's
    missing = run_cli("inspect", str(tmp_path / "nope"), "--book-stats")
    assert missing.returncode != 0
    assert "nope" in missing.stderr and "Traceback" not in missing.stderr
