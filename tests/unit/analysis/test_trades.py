"""Positions and the equity curve from order legs, checked by hand."""

from __future__ import annotations

import polars as pl
import pytest

from polyrl.analysis.trades import POSITIONS, closed_pnl, equity, positions
from polyrl.runlog import EPISODES, TRADES

from .frames import S, W, episode, episodes, trade, trades

approx = pytest.approx


def test_positions_of_the_hand_built_run() -> None:
    p = positions(trades(), episodes())
    assert dict(p.schema) == POSITIONS
    assert p["condition_id"].to_list() == ["w1", "w2", "w3"]
    assert p["token"].to_list() == ["Up", "Down", "Up"]
    assert p["exit"].to_list() == ["close", "settle", "settle"]
    assert p["pnl"].to_list() == approx([2.0, -5.1, 19.8])
    assert p["fees"].to_list() == approx([0.2, 0.1, 0.2])
    assert p["entry_price"].to_list() == approx([0.4, 0.5, 0.2])
    assert p["cost"].to_list() == approx([5.0, 5.0, 5.0])
    assert p["legs"].to_list() == [2, 2, 2]
    assert p["entry_ns"].to_list() == [60 * S, W + 840 * S, 2 * W + 180 * S]
    assert p["time_left"].to_list() == approx([840 / 900, 60 / 900, 720 / 900])
    assert p["won"].to_list() == [True, False, True]
    # Without episodes the window columns are null but the legs still make positions.
    bare = positions(trades())
    assert bare["pnl"].to_list() == approx([2.0, -5.1, 19.8])
    assert bare["minutes_left"].null_count() == 3 and bare["won"].null_count() == 3
    assert positions(pl.DataFrame(schema=TRADES)).is_empty()


def test_adds_partial_closes_flips_voids_and_rejections() -> None:
    rows = [
        # x1: rejected buy (no position), open 10 @ .30, add 10 @ .50, sell half, settle the rest
        trade(10 * S, 0, "btc", "x1", "open", "Up", 1, 0.0, 0.0, 0.0, 0.0, rejected=4),
        trade(20 * S, 0, "btc", "x1", "open", "Up", 1, 10.0, 0.30, 0.1, 0.0),
        trade(30 * S, 0, "btc", "x1", "add", "Up", 1, 10.0, 0.50, 0.1, 0.0),
        trade(40 * S, 0, "btc", "x1", "close", "Up", -1, 10.0, 0.60, 0.1, 1.8),
        trade(W, 0, "btc", "x1", "settle", "Up", -1, 10.0, 1.0, 0.0, 5.9),
        # x2: a flip: close Up and open Down at the same tick, then the window is voided
        trade(W + 10 * S, 1, "eth", "x2", "open", "Up", 1, 10.0, 0.50, 0.1, 0.0),
        trade(W + 20 * S, 1, "eth", "x2", "close", "Up", -1, 10.0, 0.40, 0.1, -1.2),
        trade(W + 20 * S, 1, "eth", "x2", "open", "Down", 1, 10.0, 0.60, 0.1, 0.0),
    ]
    eps = pl.DataFrame([episode(0, "btc", "x1", 0, "Up", 4, 7.7, 0.3),
                        episode(1, "eth", "x2", W, "missing", 3, -1.2, 0.3)],
                       schema=EPISODES)  # fmt: skip
    p = positions(pl.DataFrame(rows, schema=TRADES), eps)
    assert p.height == 3
    first, flipped, held = p.rows(named=True)
    assert first["legs"] == 4 and first["shares"] == 20.0
    assert first["entry_price"] == approx(0.40)  # (10 x .30 + 10 x .50) / 20
    assert first["pnl"] == approx(7.7) and first["fees"] == approx(0.3)
    assert first["exit"] == "settle" and first["won"] is True
    assert (flipped["token"], flipped["exit"], flipped["pnl"]) == ("Up", "close", approx(-1.2))
    assert (held["token"], held["exit"], held["pnl"]) == ("Down", "void", 0.0)
    assert flipped["won"] is None  # the window has no outcome


def test_equity_and_drawdown_by_instant() -> None:
    e = equity(trades())
    assert e["t_ns"].to_list() == [300 * S, 2 * W, 3 * W]
    assert e["equity"].to_list() == approx([2.0, -3.1, 16.7])
    assert e["peak"].to_list() == approx([2.0, 2.0, 16.7])
    assert e["drawdown"].to_list() == approx([0.0, 5.1, 0.0])
    # A first loss draws down from the starting peak of 0; simultaneous rows are one step.
    tr = pl.DataFrame([trade(5, 0, "btc", "a", "settle", "Up", -1, 1.0, 1.0, 0.0, -1.0),
                       trade(9, 0, "btc", "b", "settle", "Up", -1, 1.0, 1.0, 0.0, 4.0),
                       trade(9, 1, "eth", "c", "settle", "Up", -1, 1.0, 1.0, 0.0, -3.0)],
                      schema=TRADES)  # fmt: skip
    assert closed_pnl(tr).rows() == [(5, -1.0), (9, 1.0)]
    e = equity(tr)
    assert e["drawdown"].to_list() == approx([1.0, 0.0])
    assert e["peak"].to_list() == approx([0.0, 0.0])
    assert equity(pl.DataFrame(schema=TRADES)).is_empty()
