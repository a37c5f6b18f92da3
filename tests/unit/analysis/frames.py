"""Tiny hand-built trades and episodes whose statistics the tests work out by hand.

Two assets, $10 per market slot, windows of 15 minutes (900 s); times in s from 0.

====  =====  ==================================================================  =======  =====
win   asset  legs                                                                outcome  pnl
====  =====  ==================================================================  =======  =====
w1    btc    open 12.5 Up @ .40 at 60 s (fee .1); close @ .576 at 300 s (fee .1)  Up       +2.0
w2    btc    open 10 Down @ .50 at 900+840 s (fee .1); settles at 1800 s          Up       -5.1
w3    eth    open 25 Up @ .20 at 1800+180 s (fee .2); settles at 2700 s           Up       +19.8
w4    eth    no trade                                                            Down     0.0
====  =====  ==================================================================  =======  =====

(w1: proceeds 7.2 - fee .1 - cost 5.1 = +2.0; w2: 0 - cost 5.1; w3: 25 - cost 5.2 = +19.8.)
Cumulative realized PnL: 2.0, -3.1, 16.7, so the max drawdown is 5.1.
"""

from __future__ import annotations

import polars as pl

from polyrl.events import NS_PER_S
from polyrl.runlog import EPISODES, TRADES

W = 900 * NS_PER_S
S = NS_PER_S


def _trade(
    t: int, slot: int, asset: str, cid: str, kind: str, token: str, side: int, shares: float,
    price: float, fee: float, pnl: float, rejected: int = 0,
) -> dict:  # fmt: skip
    return {
        "t_ns": t, "slot": slot, "asset": asset, "condition_id": cid, "slug": f"{asset}-{cid}",
        "kind": kind, "action": 1 if token == "Up" else 2, "token": token, "side": side,
        "shares": shares, "avg_price": price, "notional": shares * price, "fee": fee,
        "levels": 1, "partial": False, "rejected": rejected, "realized_pnl": pnl,
    }  # fmt: skip


def _episode(
    slot: int, asset: str, cid: str, start: int, outcome: str, fills: int, pnl: float,
    fees: float,
) -> dict:  # fmt: skip
    return {
        "slot": slot, "asset": asset, "condition_id": cid, "slug": f"{asset}-{cid}",
        "start_ns": start, "end_ns": start + W, "outcome": outcome, "outcome_source": "gamma",
        "gap": False, "settled_ns": start + W, "orders": fills, "fills": fills, "pnl": pnl,
        "fees": fees, "first_entry_ns": -1, "first_entry_time_left": float("nan"),
        "first_entry_price": float("nan"), "first_entry_token": None,
    }  # fmt: skip


def trades() -> pl.DataFrame:
    rows = [
        _trade(60 * S, 0, "btc", "w1", "open", "Up", 1, 12.5, 0.40, 0.1, 0.0),
        _trade(300 * S, 0, "btc", "w1", "close", "Up", -1, 12.5, 0.576, 0.1, 2.0),
        _trade(W + 840 * S, 0, "btc", "w2", "open", "Down", 1, 10.0, 0.50, 0.1, 0.0),
        _trade(W + W, 0, "btc", "w2", "settle", "Down", -1, 10.0, 0.0, 0.0, -5.1),
        _trade(2 * W + 180 * S, 1, "eth", "w3", "open", "Up", 1, 25.0, 0.20, 0.2, 0.0),
        _trade(3 * W, 1, "eth", "w3", "settle", "Up", -1, 25.0, 1.0, 0.0, 19.8),
    ]
    return pl.DataFrame(rows, schema=TRADES)


def episodes() -> pl.DataFrame:
    rows = [
        _episode(0, "btc", "w1", 0, "Up", 2, 2.0, 0.2),
        _episode(0, "btc", "w2", W, "Up", 1, -5.1, 0.1),
        _episode(1, "eth", "w3", 2 * W, "Up", 1, 19.8, 0.2),
        _episode(1, "eth", "w4", 3 * W, "Down", 0, 0.0, 0.0),
    ]
    return pl.DataFrame(rows, schema=EPISODES)


def trade(*args, **kwargs) -> dict:  # type: ignore[no-untyped-def]
    """One trades row (for tests that build their own legs)."""
    return _trade(*args, **kwargs)


def episode(*args, **kwargs) -> dict:  # type: ignore[no-untyped-def]
    """One episodes row."""
    return _episode(*args, **kwargs)
