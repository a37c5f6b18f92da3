"""first_divergence: the first row and column where a live table and its replay differ."""

from __future__ import annotations

import math

import polars as pl

from polyrl.parity import first_divergence


def _table(pnl: list[float], side: list[str | None]) -> pl.DataFrame:
    n = len(pnl)
    ts, slots = [10 * (i + 1) for i in range(n)], [i % 2 for i in range(n)]
    return pl.DataFrame({"t_ns": ts, "slot": slots, "pnl": pnl, "side": side})


def test_equal_tables_and_nans_in_the_same_place_do_not_diverge() -> None:
    a = _table([1.0, math.nan, 3.0], ["up", None, "down"])
    assert first_divergence("trades", a, a.clone()) is None


def test_the_first_differing_row_is_named_with_its_time_slot_and_values() -> None:
    live = _table([1.0, 2.0, 3.0, 4.0], ["up", "up", "down", "down"])
    replay = _table([1.0, 2.0, 3.5, 4.5], ["up", "up", "down", "up"])
    d = first_divergence("trades", live, replay)
    assert d is not None
    assert (d.row, d.column, d.live, d.replay) == (2, "pnl", 3.0, 3.5)
    assert (d.t_ns, d.slot) == (30, 0)
    # A null against a value differs; a NaN against a number differs.
    d = first_divergence("trades", live, _table([1.0, 2.0, 3.0, 4.0], ["up", None, "down", "down"]))
    assert d is not None and (d.row, d.column, d.live, d.replay) == (1, "side", "up", None)
    d = first_divergence("trades", live, _table([1.0, math.nan, 3.0, 4.0], list(live["side"])))
    assert d is not None and (d.row, d.column) == (1, "pnl")


def test_a_longer_table_diverges_at_the_first_row_the_other_lacks() -> None:
    live = _table([1.0, 2.0, 3.0], ["up", "up", "down"])
    d = first_divergence("decisions", live, live.head(2))
    assert d is not None
    assert (d.row, d.column, d.live, d.replay, d.t_ns) == (2, "(row count)", 3, 2, 30)
