"""From a run's order legs to positions and an equity curve (pure: polars in, polars out).

A *position* is what one market slot holds from an ``open`` leg until it is emptied: its
``add`` legs, the ``close`` legs that sell it (a partial close leaves the rest held) and,
if it is still held at the window's end, its ``settle`` row. Realized PnL is booked on the
close and settle rows and is net of every fee of the position (the PaperBroker's cost basis
holds the buy fees), so a position's PnL is the sum of its rows' ``realized_pnl``.

The *equity curve* is cumulative realized PnL over time: one point per instant at which
PnL was realized (positions settled at the same instant are one step), and its drawdown is
the fall from the running peak, the peak starting at 0 (no PnL yet).
"""

from __future__ import annotations

import polars as pl

from polyrl.events import NS_PER_S

CLOSING = ("close", "settle")

POSITIONS = {
    "asset": pl.String, "slot": pl.Int8, "condition_id": pl.String, "slug": pl.String,
    "token": pl.String, "entry_ns": pl.Int64, "exit_ns": pl.Int64, "exit": pl.String,
    "entry_price": pl.Float64, "shares": pl.Float64, "cost": pl.Float64, "fees": pl.Float64,
    "pnl": pl.Float64, "legs": pl.UInt32, "start_ns": pl.Int64, "end_ns": pl.Int64,
    "outcome": pl.String, "time_left": pl.Float64, "minutes_left": pl.Float64,
    "won": pl.Boolean,
}  # fmt: skip
"""Columns of :func:`positions` (see its doc)."""


def without_no_outcome(
    trades: pl.DataFrame, episodes: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """The tables without the windows that have no outcome, and how many windows that was.

    A window with no outcome (episodes ``no_outcome``, PnL null: no resolution was recorded
    and the reference feed could not decide it) has no PnL to count: its episode row and
    every trades row of its ``condition_id`` are left out of PnL statistics, whatever the
    policy did in it, so that the set of windows does not depend on the policy. Tables
    written before the column existed have none.
    """
    if "no_outcome" not in episodes.columns:
        return trades, episodes, 0
    gone = episodes.filter(pl.col("no_outcome").fill_null(False))
    if gone.is_empty():
        return trades, episodes, 0
    cids = gone["condition_id"].implode()
    return (
        trades.filter(~pl.col("condition_id").is_in(cids)),
        episodes.filter(~pl.col("no_outcome").fill_null(False)),
        gone.height,
    )


def positions(trades: pl.DataFrame, episodes: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per position, in order of entry (schema :data:`POSITIONS`).

    From ``trades`` (rejected legs left out): ``token`` held (``Up``/``Down``), ``entry_ns``
    (the open leg), ``exit_ns`` (the last leg), ``exit`` (``close``, ``settle``, ``void``
    when the window could not be settled, ``open`` while still held), ``entry_price`` (mean
    price paid per share over the buy legs), ``shares`` and ``cost`` (USDC) bought, ``fees``
    (every leg), ``pnl`` (realized, fees included), ``legs``.

    From ``episodes`` (joined on the window's ``condition_id``; null without them):
    ``start_ns``/``end_ns`` of the window, its ``outcome``, ``time_left`` (share of the
    window left at entry, 1 = at the open), ``minutes_left`` at entry, and ``won`` (the held
    token is the window's outcome; null when the window has no outcome).
    """
    t = trades.filter(pl.col("rejected") == 0) if "rejected" in trades.columns else trades
    if t.is_empty():
        return pl.DataFrame(schema=POSITIONS)
    t = t.with_columns(
        (pl.col("kind") == "open").cum_sum().over(["condition_id", "slot"]).alias("_pid")
    ).filter(pl.col("_pid") > 0)
    buy = pl.col("side") > 0
    p = t.group_by(["condition_id", "slot", "_pid"], maintain_order=True).agg(
        pl.col("asset").first(),
        pl.col("slug").first(),
        pl.col("token").first(),
        pl.col("t_ns").first().alias("entry_ns"),
        pl.col("t_ns").last().alias("exit_ns"),
        pl.col("kind").last().alias("_last"),
        (pl.col("avg_price") * pl.col("shares")).filter(buy).sum().alias("_paid"),
        pl.col("shares").filter(buy).sum().alias("shares"),
        pl.col("notional").filter(buy).sum().alias("cost"),
        pl.col("fee").sum().alias("fees"),
        pl.col("realized_pnl").sum().alias("pnl"),
        pl.len().alias("legs"),
    )
    p = p.with_columns(
        (pl.col("_paid") / pl.col("shares")).alias("entry_price"),
    ).sort("entry_ns", maintain_order=True)
    if episodes is not None and not episodes.is_empty():
        ep = episodes.select("condition_id", "start_ns", "end_ns", "outcome").unique(
            "condition_id", keep="first", maintain_order=True
        )
        p = p.join(ep, on="condition_id", how="left")
    else:
        p = p.with_columns(
            pl.lit(None, pl.Int64).alias("start_ns"),
            pl.lit(None, pl.Int64).alias("end_ns"),
            pl.lit(None, pl.String).alias("outcome"),
        )
    settled = pl.col("outcome").is_in(["Up", "Down"])
    p = p.with_columns(
        pl.when(pl.col("_last").is_in(CLOSING))
        .then(pl.col("_last"))
        .when(pl.col("outcome") == "missing")
        .then(pl.lit("void"))
        .otherwise(pl.lit("open"))
        .alias("exit"),
        ((pl.col("end_ns") - pl.col("entry_ns")) / (pl.col("end_ns") - pl.col("start_ns"))).alias(
            "time_left"
        ),
        ((pl.col("end_ns") - pl.col("entry_ns")) / (60 * NS_PER_S)).alias("minutes_left"),
        pl.when(settled).then(pl.col("token") == pl.col("outcome")).alias("won"),
    )
    return p.select([pl.col(c).cast(d) for c, d in POSITIONS.items()])


def closed_pnl(trades: pl.DataFrame) -> pl.DataFrame:
    """Realized PnL per instant: ``t_ns``, ``pnl`` [one row per distinct time at which a
    close or settle realized PnL, in time order]."""
    c = trades.filter(pl.col("kind").is_in(CLOSING))
    if "rejected" in c.columns:
        c = c.filter(pl.col("rejected") == 0)
    return (
        c.group_by("t_ns")
        .agg(pl.col("realized_pnl").sum().alias("pnl"))
        .sort("t_ns")
        .select(pl.col("t_ns").cast(pl.Int64), pl.col("pnl").cast(pl.Float64))
    )


def equity(trades: pl.DataFrame) -> pl.DataFrame:
    """The equity curve of realized PnL: ``t_ns``, ``pnl`` (realized at that instant),
    ``equity`` (cumulative), ``peak`` (running maximum, from 0) and ``drawdown``
    (``peak - equity`` >= 0), one row per instant of :func:`closed_pnl`."""
    c = closed_pnl(trades)
    return (
        c.with_columns(pl.col("pnl").cum_sum().alias("equity"))
        .with_columns(pl.max_horizontal(pl.col("equity").cum_max(), pl.lit(0.0)).alias("peak"))
        .with_columns((pl.col("peak") - pl.col("equity")).alias("drawdown"))
    )
