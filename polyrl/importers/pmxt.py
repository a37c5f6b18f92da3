"""PMXT v2 hour rows -> the Polymarket market-channel streams the recorder writes (pure).

The PMXT v2 archive keeps every CLOB market-channel event in one Parquet file per UTC hour
(:data:`PMXT_SCHEMA`, 16 columns; rows ordered by ``(market, asset_id, timestamp_received)``).
:func:`convert_hour` turns the rows of the wanted markets into ``polymarket.book``,
``polymarket.price_change``, ``polymarket.trade`` and ``polymarket.tick_size`` tables with the
live parser's semantics (:mod:`polyrl.sources.polymarket.clob_ws`):

- ``recv_ns`` = ``timestamp_received`` (ms -> ns), ``exch_ns`` = ``timestamp``; ``key`` =
  ``asset_id``; ``market`` = the condition id; ``asset`` from the market's asset;
- decimals (``decimal(9,4)`` prices, ``decimal(18,6)`` sizes) become the float64 nearest to
  their exact decimal value (through their decimal text, as the live parser reads the wire's
  strings); ``side`` is ``BUY``/``SELL`` as on the wire;
- ``book`` sides are parsed from the JSON strings and sorted best first (bids descending, asks
  ascending); a side that cannot be read gives an empty book flagged ``bad_value``, so the
  engine unsyncs the token's book rather than trusting it;
- a ``price_change`` row is one entry of a frame: rows of one market sharing ``timestamp`` and
  ``timestamp_received`` came in one frame, and ``entry`` is the row's index among them (file
  order, so the entries of one token keep their order); the archive has no entry hash;
- ``raw`` is a JSON text of the *archive's row* (its non-null columns, decimals as their
  decimal text, times as ms integers), not the wire frame, which the archive does not keep;
- ``quality`` carries the value checks of :mod:`polyrl.sources.quality` (``bad_value``,
  ``price_range``, ``crossed``, ``bad_time``); ``symbol`` needs the live token map and is not
  checked.

Same-millisecond order. At ms resolution a ``book`` and a ``price_change`` of one token can
share a ``timestamp_received``. A ``price_change`` carries the level's new *absolute* size, so
applying the snapshot first and then the changes gives the right book whichever of the two
came first on the wire (a change already in the snapshot is set again to the same size); the
other order loses a change made after the snapshot. The import store orders a unit's rows by
``(recv_ns, stream, row)`` and ``polymarket.book`` precedes ``polymarket.price_change`` in the
stream order, so its ``seq`` gives exactly that: snapshot first, then the changes in file
order.

Everything is vectorised (pyarrow/polars); book sides are read row by row in Python only in
an hour holding a side of another shape (``[{price, size}]``), unreadable JSON or text that
JSON escapes beyond quotes and backslashes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from polyrl.recording.schema import ARROW_SCHEMAS
from polyrl.sources.quality import (
    BAD_TIME,
    BAD_VALUE,
    CROSSED,
    DEFAULT_EXCH_TOLERANCE_S,
    PRICE_RANGE,
    VALUE_CHECKS,
)

PMXT_SCHEMA = pa.schema(
    [
        pa.field("timestamp_received", pa.timestamp("ms", tz="UTC")),
        pa.field("timestamp", pa.timestamp("ms", tz="UTC")),
        pa.field("market", pa.binary(66)),
        pa.field("event_type", pa.string()),
        pa.field("asset_id", pa.string()),
        pa.field("bids", pa.string()),
        pa.field("asks", pa.string()),
        pa.field("price", pa.decimal128(9, 4)),
        pa.field("size", pa.decimal128(18, 6)),
        pa.field("side", pa.string()),
        pa.field("best_bid", pa.decimal128(9, 4)),
        pa.field("best_ask", pa.decimal128(9, 4)),
        pa.field("fee_rate_bps", pa.uint16()),
        pa.field("transaction_hash", pa.string()),
        pa.field("old_tick_size", pa.decimal128(9, 4)),
        pa.field("new_tick_size", pa.decimal128(9, 4)),
    ]
)
"""The PMXT v2 hour file's 16 columns (FACTS §9), in the file's order."""

STREAMS = ("polymarket.book", "polymarket.price_change", "polymarket.trade", "polymarket.tick_size")
"""The streams an hour converts into."""

EVENT_STREAM = {
    "book": "polymarket.book",
    "price_change": "polymarket.price_change",
    "last_trade_price": "polymarket.trade",
    "tick_size_change": "polymarket.tick_size",
}

_DEC_COLS = ("price", "size", "best_bid", "best_ask", "old_tick_size", "new_tick_size")
_OWNED = {  # event type -> the columns it owns (raw keeps these besides the 5 always set)
    "price_change": ("price", "size", "side", "best_bid", "best_ask"),
    "last_trade_price": ("price", "size", "side", "fee_rate_bps", "transaction_hash"),
    "tick_size_change": ("old_tick_size", "new_tick_size"),
}
_MS = 1_000_000
_TOL_NS = int(DEFAULT_EXCH_TOLERANCE_S * 1e9)


def hour_object(date: str, hour: int) -> str:
    """The archive's name of one UTC hour's file."""
    return f"polymarket_orderbook_{date}T{hour:02d}.parquet"


def wanted_rows(table: pa.Table, condition_ids: list[str]) -> pa.Table:
    """The rows of ``table`` whose ``market`` is one of ``condition_ids``."""
    want = pa.array([c.encode() for c in condition_ids], pa.binary(66))
    return table.filter(pc.is_in(table.column("market"), value_set=want))


def _frame(table: pa.Table) -> pl.DataFrame:
    """The archive columns polars can hold: times as ms ints, decimals as float and text."""
    cols: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in ("timestamp_received", "timestamp"):
        cols[name] = table.column(name).cast(pa.int64())
    cols["market"] = table.column("market").cast(pa.binary()).cast(pa.string())
    for name in ("event_type", "asset_id", "bids", "asks", "side", "transaction_hash"):
        cols[name] = table.column(name).cast(pa.string())
    cols["fee_rate_bps"] = table.column("fee_rate_bps").cast(pa.int32())
    for name in _DEC_COLS:
        text = table.column(name).cast(pa.string())
        cols[f"{name}_s"] = text
        # The decimal text parsed as a double: the float64 nearest the exact decimal value.
        cols[name] = text.cast(pa.float64())
    return pl.from_arrow(pa.table(cols))  # type: ignore[return-value]


def _quoted(col: str, escape: bool = True) -> pl.Expr:
    """A string column as a JSON string literal (null stays null); ``escape=False`` for
    columns known to hold no quote or backslash (see :func:`_plain`)."""
    c = pl.col(col)
    if escape:
        c = c.str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)
    return pl.concat_str([pl.lit('"'), c, pl.lit('"')])


def _plain(df: pl.DataFrame, cols: tuple[str, ...]) -> frozenset[str]:
    """The string columns of ``df`` in which no value holds a quote or a backslash."""
    found = df.select([pl.col(c).str.contains(r'["\\]').any().alias(c) for c in cols]).row(0)
    return frozenset(c for c, bad in zip(cols, found, strict=True) if not bad)


def _raw_expr(event_type: str, plain: frozenset[str] = frozenset()) -> pl.Expr:
    """The JSON text of a row of ``event_type`` (its non-null columns; vectorised).
    ``plain``: string columns that need no escaping (:func:`_plain`)."""
    parts: list[pl.Expr] = [
        pl.lit('{"timestamp_received":'),
        pl.col("timestamp_received").cast(pl.String),
        pl.lit(',"timestamp":'),
        pl.col("timestamp").cast(pl.String),
        pl.lit(',"market":'),
        _quoted("market", "market" not in plain),
        pl.lit(f',"event_type":"{event_type}","asset_id":'),
        _quoted("asset_id", "asset_id" not in plain),
    ]
    for col in _OWNED[event_type]:
        if col in _DEC_COLS:
            value = _quoted(f"{col}_s", escape=False)
        elif col == "fee_rate_bps":
            value = pl.col(col).cast(pl.String)
        else:
            value = _quoted(col, col not in plain)
        parts.append(pl.lit(f',"{col}":'))
        parts.append(value.fill_null("null"))
    parts.append(pl.lit("}"))
    return pl.concat_str(parts)


def _bad_time(df: pl.DataFrame) -> pl.Expr:
    exch, recv = pl.col("exch_ns"), pl.col("recv_ns")
    bad = (exch <= 0) | ((exch - recv).abs() > _TOL_NS)
    return pl.when(bad).then(BAD_TIME).otherwise(0)


def _unit(x: pl.Expr) -> pl.Expr:
    """PRICE_RANGE when a price is outside [0, 1] (null is no price)."""
    return pl.when(x.is_not_null() & ((x < 0) | (x > 1))).then(PRICE_RANGE).otherwise(0)


def _pos(x: pl.Expr) -> pl.Expr:
    return pl.when((x > 0) & x.is_finite()).then(0).otherwise(BAD_VALUE)


def _common(df: pl.DataFrame, assets: Mapping[str, str]) -> pl.DataFrame:
    return df.with_columns(
        recv_ns=pl.col("timestamp_received") * _MS,
        exch_ns=pl.col("timestamp") * _MS,
        key=pl.col("asset_id"),
        asset=pl.col("market").replace_strict(dict(assets), default=None, return_dtype=pl.String),
    )


def _entries(df: pl.DataFrame) -> pl.Series:
    """Each row's index among the rows of its frame (same market, ``timestamp`` and
    ``timestamp_received``), in file order: one stable sort of the keys and the position in
    each run (a grouped window over three keys costs several times more)."""
    m = df["market"].rank("dense").to_numpy()
    ts, tsr = df["timestamp"].to_numpy(), df["timestamp_received"].to_numpy()
    order = np.lexsort((tsr, ts, m))  # stable: ties keep file order
    ms, tss, tsrs = m[order], ts[order], tsr[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (ms[1:] != ms[:-1]) | (tss[1:] != tss[:-1]) | (tsrs[1:] != tsrs[:-1])
    starts = np.flatnonzero(new)
    pos = np.arange(len(order)) - np.repeat(starts, np.diff(np.append(starts, len(order))))
    entry = np.empty(len(order), dtype=np.int32)
    entry[order] = pos
    return pl.Series("entry", entry, dtype=pl.Int32)


def _price_changes(df: pl.DataFrame) -> pl.DataFrame:
    bid, ask = pl.col("best_bid"), pl.col("best_ask")
    crossed = (
        pl.when(bid.is_not_null() & ask.is_not_null() & (ask > 0) & (ask <= bid))
        .then(CROSSED)
        .otherwise(0)
    )
    size_ok = pl.when((pl.col("size") >= 0) & pl.col("size").is_finite()).then(0)
    quality = (
        _pos(pl.col("price"))
        | _unit(pl.col("price"))
        | size_ok.otherwise(BAD_VALUE)
        | _unit(bid)
        | _unit(ask)
        | crossed
        | _bad_time(df)
    )
    return df.with_columns(
        entry=_entries(df),
        hash=pl.lit(None, dtype=pl.String),
        quality=quality.cast(pl.UInt16),
        raw=_raw_expr("price_change", _plain(df, ("market", "asset_id", "side"))),
    )


def _trades(df: pl.DataFrame) -> pl.DataFrame:
    p = pl.col("price")
    quality = _pos(p) | _unit(p) | _pos(pl.col("size")) | _bad_time(df)
    return df.with_columns(
        fee_rate_bps=pl.col("fee_rate_bps").cast(pl.Float64),
        quality=quality.cast(pl.UInt16),
        raw=_raw_expr("last_trade_price"),
    )


def _ticks(df: pl.DataFrame) -> pl.DataFrame:
    old, new = pl.col("old_tick_size"), pl.col("new_tick_size")
    quality = _pos(old) | _pos(new) | _unit(old) | _unit(new) | _bad_time(df)
    return df.with_columns(quality=quality.cast(pl.UInt16), raw=_raw_expr("tick_size_change"))


def _side(text: str | None, *, bids: bool) -> tuple[list[float], list[float]] | None:
    """A JSON side ``[["price","size"], ...]`` (or ``[{price, size}]``) -> best-first lists."""
    if text is None:
        return [], []
    try:
        levels = json.loads(text)
        pairs = [
            (float(lv["price"]), float(lv["size"])) if isinstance(lv, dict) else
            (float(lv[0]), float(lv[1]))
            for lv in levels
        ]  # fmt: skip
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    pairs.sort(reverse=bids)
    return [p for p, _ in pairs], [s for _, s in pairs]


_LEVELS = pl.List(pl.List(pl.String))
_SHAPE = r"^\s*\[\s*[\[\]]"  # a side written as [["price","size"], ...] (or empty)
_ASCII = r"[^\x20-\x7e]"  # a character json.dumps would escape beyond quote and backslash


def _side_frame(df: pl.DataFrame, col: str, *, bids: bool) -> pl.DataFrame | None:
    """One side of every book row, vectorised: ``_r`` (row), ``px``/``sz`` lists sorted best
    first and the figures of the value checks; None when a row needs :func:`_side`'s reading
    (another shape, a level of one value, a number that is not finite)."""
    c = pl.col(col)
    if not df.select((c.is_null() | c.str.contains(_SHAPE)).all()).item():
        return None
    lv = (
        df.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_r"), c.str.json_decode(_LEVELS))
        .explode(col)
        .drop_nulls(col)
    )
    if lv.height and not lv.select((pl.col(col).list.len() >= 2).all()).item():
        return None
    lv = lv.select(
        "_r",
        px=pl.col(col).list.get(0).cast(pl.Float64, strict=True),
        sz=pl.col(col).list.get(1).cast(pl.Float64, strict=True),
    )
    if (
        lv.height
        and not lv.select((pl.col("px").is_finite() & pl.col("sz").is_finite()).all()).item()
    ):
        return None
    lv = lv.sort(["_r", "px", "sz"], descending=[False, bids, bids], maintain_order=True)
    px, sz = pl.col("px"), pl.col("sz")
    return lv.group_by("_r", maintain_order=True).agg(
        px, sz,
        best=px.filter((px > 0) & (sz > 0)).first(),
        ok=(px.min() > 0) & (sz.min() > 0) & (px.sum() < float("inf")) & (sz.sum() < float("inf")),
        out=(px.first() < 0) | (px.first() > 1) | (px.last() < 0) | (px.last() > 1),
    )  # fmt: skip


def _books_vectorised(df: pl.DataFrame) -> pl.DataFrame | None:
    """:func:`_books_rows`' result without per-row Python, or None when some row needs it."""
    text = ("market", "asset_id", "bids", "asks")
    if df.select(pl.any_horizontal([pl.col(c).str.contains(_ASCII).any() for c in text])).item():
        return None
    try:
        b, a = _side_frame(df, "bids", bids=True), _side_frame(df, "asks", bids=False)
    except (pl.exceptions.PolarsError, ValueError):
        return None
    if b is None or a is None:
        return None
    rows = pl.DataFrame({"_r": pl.int_range(df.height, dtype=pl.UInt32, eager=True)})
    sides = rows.join(b, on="_r", how="left").join(a, on="_r", how="left", suffix="_a")
    empty = pl.lit([], dtype=pl.List(pl.Float64))
    bn, an = pl.col("px").is_not_null(), pl.col("px_a").is_not_null()
    bad = pl.when((bn & ~pl.col("ok")) | (an & ~pl.col("ok_a"))).then(BAD_VALUE).otherwise(0)
    rng = pl.when((bn & pl.col("out")) | (an & pl.col("out_a"))).then(PRICE_RANGE).otherwise(0)
    bb, ba = pl.col("best"), pl.col("best_a")
    crossed = pl.when(bn & an & (ba > 0) & (ba <= bb)).then(CROSSED).otherwise(0)
    sides = sides.select(
        bid_px=pl.col("px").fill_null(empty),
        bid_size=pl.col("sz").fill_null(empty),
        ask_px=pl.col("px_a").fill_null(empty),
        ask_size=pl.col("sz_a").fill_null(empty),
        _q=(bad | rng | crossed).cast(pl.UInt16),
    )
    raw = pl.concat_str(
        [
            pl.lit('{"timestamp_received":'), pl.col("timestamp_received").cast(pl.String),
            pl.lit(',"timestamp":'), pl.col("timestamp").cast(pl.String),
            pl.lit(',"market":'), _quoted("market"),
            pl.lit(',"event_type":"book","asset_id":'), _quoted("asset_id"),
            pl.lit(',"bids":'), _quoted("bids").fill_null("null"),
            pl.lit(',"asks":'), _quoted("asks").fill_null("null"),
            pl.lit("}"),
        ]
    )  # fmt: skip
    return pl.concat([df, sides], how="horizontal").with_columns(
        origin=pl.lit("ws"),
        hash=pl.lit(None, dtype=pl.String),
        tick_size=pl.lit(None, dtype=pl.Float64),
        last_trade_price=pl.lit(None, dtype=pl.Float64),
        min_order_size=pl.lit(None, dtype=pl.Float64),
        quality=(pl.col("_q") | _bad_time(df)).cast(pl.UInt16),
        raw=raw,
    )


def _books(df: pl.DataFrame) -> pl.DataFrame:
    """Book rows: vectorised (:func:`_books_vectorised`) when every row allows it, else row
    by row (:func:`_books_rows`); both give the same table."""
    fast = _books_vectorised(df)
    return _books_rows(df) if fast is None else fast


def _books_rows(df: pl.DataFrame) -> pl.DataFrame:
    bid_px, bid_size, ask_px, ask_size, quality, raw = [], [], [], [], [], []
    check = VALUE_CHECKS["polymarket.book"]
    rows = df.select(
        "timestamp_received", "timestamp", "market", "asset_id", "bids", "asks", "exch_ns",
        "recv_ns",
    ).iter_rows()  # fmt: skip
    for tsr, ts, market, asset_id, bids, asks, exch, recv in rows:
        b, a = _side(bids, bids=True), _side(asks, bids=False)
        q = 0
        if b is None or a is None:
            b, a, q = ([], []), ([], []), BAD_VALUE
        f = {"bid_px": b[0], "bid_size": b[1], "ask_px": a[0], "ask_size": a[1],
             "tick_size": None, "last_trade_price": None}  # fmt: skip
        q |= check(f)
        if exch <= 0 or abs(exch - recv) > _TOL_NS:
            q |= BAD_TIME
        bid_px.append(b[0])
        bid_size.append(b[1])
        ask_px.append(a[0])
        ask_size.append(a[1])
        quality.append(q)
        raw.append(
            json.dumps(
                {
                    "timestamp_received": tsr,
                    "timestamp": ts,
                    "market": market,
                    "event_type": "book",
                    "asset_id": asset_id,
                    "bids": bids,
                    "asks": asks,
                },
                separators=(",", ":"),
            )  # fmt: skip
        )
    lst = pl.List(pl.Float64)
    return df.with_columns(
        origin=pl.lit("ws"),
        bid_px=pl.Series(bid_px, dtype=lst),
        bid_size=pl.Series(bid_size, dtype=lst),
        ask_px=pl.Series(ask_px, dtype=lst),
        ask_size=pl.Series(ask_size, dtype=lst),
        hash=pl.lit(None, dtype=pl.String),
        tick_size=pl.lit(None, dtype=pl.Float64),
        last_trade_price=pl.lit(None, dtype=pl.Float64),
        min_order_size=pl.lit(None, dtype=pl.Float64),
        quality=pl.Series(quality, dtype=pl.UInt16),
        raw=pl.Series(raw, dtype=pl.String),
    )


_BUILD = {
    "book": _books,
    "price_change": _price_changes,
    "last_trade_price": _trades,
    "tick_size_change": _ticks,
}


def convert_hour(table: pa.Table, assets: Mapping[str, str]) -> dict[str, pa.Table]:
    """An hour's archive rows (already limited to the wanted markets) -> stream tables.

    ``assets`` maps condition id -> asset (``btc``...). Returns one table per stream of
    :data:`STREAMS` holding rows, in the stream's schema minus ``seq``, ordered by
    ``timestamp_received`` and in file order within one ms: the order the store writes them
    in, so it need not reorder them (sorting here, before the text columns are built, costs
    a fraction of reordering the finished tables).
    Rows of another event type (none are documented) are left out.
    """
    out: dict[str, pa.Table] = {}
    if table.num_rows == 0:
        return out
    df = _common(_frame(table), assets).sort("timestamp_received", maintain_order=True)
    for event_type, build in _BUILD.items():
        part = df.filter(pl.col("event_type") == event_type)
        if part.height == 0:
            continue
        stream = EVENT_STREAM[event_type]
        part = build(part)
        full = ARROW_SCHEMAS[stream]
        schema = full.remove(full.get_field_index("seq"))
        arrow = part.select([f.name for f in schema]).to_arrow()
        out[stream] = arrow.cast(schema)
    return out
