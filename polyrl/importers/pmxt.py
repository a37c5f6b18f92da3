"""PMXT v2 hour rows -> the Polymarket market-channel streams the recorder writes (pure).

The PMXT v2 archive keeps every CLOB market-channel event in one Parquet file per UTC hour
(:data:`PMXT_SCHEMA`, 16 columns; rows ordered by ``(market, asset_id, timestamp_received)``).
:func:`convert_hour` turns the rows of the wanted markets into ``polymarket.book``,
``polymarket.price_change``, ``polymarket.trade`` and ``polymarket.tick_size`` tables with the
live parser's semantics (:mod:`polyrl.sources.polymarket.clob_ws`):

- ``recv_ns`` = ``timestamp_received`` (ms -> ns), ``exch_ns`` = ``timestamp``; ``key`` =
  ``asset_id``; ``market`` = the condition id; ``asset`` from the market's asset;
- decimals (``decimal(9,4)`` prices, ``decimal(18,6)`` sizes) become the float64 nearest to
  their exact decimal value, the double their decimal text parses to as the live parser
  reads the wire's strings (:func:`decimal_floats`: from the unscaled integers, no text);
  ``side`` is ``BUY``/``SELL`` as on the wire;
- ``book`` sides are parsed from the JSON strings and sorted best first (bids descending, asks
  ascending); a side that cannot be read gives an empty book flagged ``bad_value``, so the
  engine unsyncs the token's book rather than trusting it;
- a ``price_change`` row is one entry of a frame: rows of one market sharing ``timestamp`` and
  ``timestamp_received`` came in one frame, and ``entry`` is the row's index among them (file
  order, so the entries of one token keep their order); the archive has no entry hash;
- ``raw``: the archive keeps no wire frame. A ``book`` row's ``raw`` is a JSON text of the
  *archive's row* (times as ms integers, the ``bids``/``asks`` texts as read): its typed
  sides are re-sorted and an unreadable side becomes an empty book, so only that text keeps
  the levels as the archive holds them, for ~3% of the rows. A ``price_change``, ``trade``
  or ``tick_size`` row's ``raw`` is ``""``, as the Binance importer writes: its typed
  columns hold every value of the archive row (each decimal's double maps back to it, the
  times are exact, the strings verbatim), and the ``import`` status rows name the archive
  file; a JSON text per row would cost most of the conversion and add nothing;
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

Everything is vectorised: the rows are ordered once (numpy), each stream's rows gathered once
from the archive's Arrow columns, the value checks computed in numpy; only book rows go
through polars, whose sides are read row by row in Python only in an hour holding a side of
another shape (``[{price, size}]``), unreadable JSON or text that JSON escapes beyond quotes
and backslashes.
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
_MS = 1_000_000
_TOL_NS = int(DEFAULT_EXCH_TOLERANCE_S * 1e9)


def hour_object(date: str, hour: int) -> str:
    """The archive's name of one UTC hour's file."""
    return f"polymarket_orderbook_{date}T{hour:02d}.parquet"


def wanted_rows(table: pa.Table, condition_ids: list[str]) -> pa.Table:
    """The rows of ``table`` whose ``market`` is one of ``condition_ids``."""
    want = pa.array([c.encode() for c in condition_ids], pa.binary(66))
    return table.filter(pc.is_in(table.column("market"), value_set=want))


_EXACT = 1 << 53  # below it an unscaled decimal integer is an exact double


def decimal_floats(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A ``decimal128(p, s)`` column as float64: each value the double nearest its exact
    decimal value (null stays null), the value its decimal text parses to.

    A value is an unscaled integer ``n`` over ``10**s``. When every ``|n| < 2**53`` both are
    exact doubles and one IEEE division is correctly rounded, so ``n / 10**s`` *is* the
    nearest double: read from the 16-byte little-endian buffer, no text. A column holding a
    larger ``n`` goes through its decimal text instead.
    """
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    typ = arr.type
    if not pa.types.is_decimal128(typ) or not 0 <= typ.scale <= 22 or len(arr) == 0:
        return arr.cast(pa.string()).cast(pa.float64())
    words = np.frombuffer(arr.buffers()[1], dtype="<i8")
    words = words[2 * arr.offset : 2 * (arr.offset + len(arr))].reshape(-1, 2)
    lo, hi = words[:, 0], words[:, 1]
    valid = (
        np.ones(len(arr), dtype=bool)
        if arr.null_count == 0
        else arr.is_valid().to_numpy(zero_copy_only=False)
    )
    fits = (hi == (lo >> 63)) & (lo > -_EXACT) & (lo < _EXACT)
    if not fits[valid].all():
        return arr.cast(pa.string()).cast(pa.float64())
    values = lo.astype(np.float64) / float(10**typ.scale)
    return pa.array(values, pa.float64(), mask=None if arr.null_count == 0 else ~valid)


_BOOK_COLS = ("timestamp_received", "timestamp", "bids", "asks")


def _book_frame(table: pa.Table) -> pl.DataFrame:
    """The archive columns a book row uses, for polars: times as ms ints, text as strings."""
    cols: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in ("timestamp_received", "timestamp"):
        cols[name] = table.column(name).cast(pa.int64())
    cols["market"] = table.column("market").cast(pa.binary()).cast(pa.string())
    for name in ("asset_id", "bids", "asks"):
        cols[name] = table.column(name).cast(pa.string())
    return pl.from_arrow(pa.table(cols))  # type: ignore[return-value]


def _quoted(col: str) -> pl.Expr:
    """A string column as a JSON string literal (null stays null)."""
    c = pl.col(col).str.replace_all("\\", "\\\\", literal=True)
    c = c.str.replace_all('"', '\\"', literal=True)
    return pl.concat_str([pl.lit('"'), c, pl.lit('"')])


def _bad_time(df: pl.DataFrame) -> pl.Expr:
    exch, recv = pl.col("exch_ns"), pl.col("recv_ns")
    bad = (exch <= 0) | ((exch - recv).abs() > _TOL_NS)
    return pl.when(bad).then(BAD_TIME).otherwise(0)


def _common(df: pl.DataFrame, assets: Mapping[str, str]) -> pl.DataFrame:
    return df.with_columns(
        recv_ns=pl.col("timestamp_received") * _MS,
        exch_ns=pl.col("timestamp") * _MS,
        key=pl.col("asset_id"),
        asset=pl.col("market").replace_strict(dict(assets), default=None, return_dtype=pl.String),
    )


def _entries(market: np.ndarray, ts: np.ndarray, ts_null: np.ndarray, tsr: np.ndarray):
    """Each row's index among the rows of its frame (same market, ``timestamp`` and
    ``timestamp_received``), in row order: one stable sort of the keys and the position in
    each run. A row without ``timestamp`` is a frame of its own."""
    order = np.lexsort((tsr, ts, market))  # stable: ties keep row order
    ms, tss, tsrs = market[order], ts[order], tsr[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (ms[1:] != ms[:-1]) | (tss[1:] != tss[:-1]) | (tsrs[1:] != tsrs[:-1])
    new |= ts_null[order]
    starts = np.flatnonzero(new)
    pos = np.arange(len(order)) - np.repeat(starts, np.diff(np.append(starts, len(order))))
    entry = np.empty(len(order), dtype=np.int32)
    entry[order] = pos
    return entry


class _Rows:
    """The rows of one event type, in output order, as Arrow arrays and numpy figures."""

    def __init__(self, table: pa.Table, idx: np.ndarray, market_idx: np.ndarray, ctx: dict):
        self.table, self.idx, self.n = table, idx, len(idx)
        self.market_idx = market_idx[idx]
        self.tsr = ctx["tsr"][idx]
        ts = table.column("timestamp").take(idx).cast(pa.int64()).combine_chunks()
        self.ts_null = _nulls(ts)
        self.ts = ts.fill_null(0).to_numpy()
        recv = self.tsr * _MS
        exch = self.ts * _MS
        bad = ~self.ts_null & ((exch <= 0) | (np.abs(exch - recv) > _TOL_NS))
        self.quality = np.where(bad, BAD_TIME, 0).astype(np.uint16)
        market = pa.array(self.market_idx, mask=self.market_idx < 0)
        self.cols: dict[str, pa.Array | pa.ChunkedArray] = {
            "recv_ns": pa.array(recv),
            "exch_ns": pa.array(exch, mask=self.ts_null if self.ts_null.any() else None),
            "key": ctx["token_of"].take(ctx["token"].take(idx)),
            "asset": ctx["asset_of"].take(market),
            "market": ctx["market_of"].take(market),
            "hash": pa.nulls(self.n, pa.string()),
            "raw": pa.repeat("", self.n),
        }

    def take(self, name: str) -> pa.ChunkedArray:
        return self.table.column(name).take(self.idx)

    def floats(self, name: str) -> np.ndarray:
        """A decimal column as float64 (the nearest double; NaN for null) and kept."""
        col = decimal_floats(self.take(name))
        self.cols[name] = col
        return col.fill_null(np.nan).to_numpy()

    def flag(self, flag: int, where: np.ndarray) -> None:
        self.quality |= np.where(where, flag, 0).astype(np.uint16)

    def table_of(self, stream: str) -> pa.Table:
        self.cols["quality"] = pa.array(self.quality)
        full = ARROW_SCHEMAS[stream]
        schema = full.remove(full.get_field_index("seq"))
        return pa.Table.from_arrays([self.cols[f.name] for f in schema], schema=schema)


def _nulls(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.zeros(len(arr), dtype=bool)
    return arr.is_null().to_numpy(zero_copy_only=False)


def _pos(x: np.ndarray) -> np.ndarray:
    """Where a value is not a positive number (NaN: a null, is not)."""
    return ~((x > 0) & np.isfinite(x))


def _unit(x: np.ndarray) -> np.ndarray:
    """Where a price lies outside [0, 1] (NaN: a null, is no price)."""
    return (x < 0) | (x > 1)


def _price_changes(r: _Rows) -> _Rows:
    price, size = r.floats("price"), r.floats("size")
    bid, ask = r.floats("best_bid"), r.floats("best_ask")
    r.flag(BAD_VALUE, _pos(price) | ~((size >= 0) & np.isfinite(size)))
    r.flag(PRICE_RANGE, _unit(price) | _unit(bid) | _unit(ask))
    r.flag(CROSSED, (ask > 0) & (ask <= bid))
    r.cols["side"] = r.take("side")
    r.cols["entry"] = pa.array(_entries(r.market_idx, r.ts, r.ts_null, r.tsr))
    return r


def _trades(r: _Rows) -> _Rows:
    price, size = r.floats("price"), r.floats("size")
    r.flag(BAD_VALUE, _pos(price) | _pos(size))
    r.flag(PRICE_RANGE, _unit(price))
    r.cols["side"] = r.take("side")
    r.cols["fee_rate_bps"] = r.take("fee_rate_bps").cast(pa.float64())
    r.cols["transaction_hash"] = r.take("transaction_hash")
    return r


def _ticks(r: _Rows) -> _Rows:
    old, new = r.floats("old_tick_size"), r.floats("new_tick_size")
    r.flag(BAD_VALUE, _pos(old) | _pos(new))
    r.flag(PRICE_RANGE, _unit(old) | _unit(new))
    return r


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
    "price_change": _price_changes,
    "last_trade_price": _trades,
    "tick_size_change": _ticks,
}


def convert_hour(table: pa.Table, assets: Mapping[str, str]) -> dict[str, pa.Table]:
    """An hour's archive rows (already limited to the wanted markets) -> stream tables.

    ``assets`` maps condition id -> asset (``btc``...). Returns one table per stream of
    :data:`STREAMS` holding rows, in the stream's schema minus ``seq``, ordered by
    ``timestamp_received`` and in file order within one ms: the order the store writes them
    in, so it need not reorder them. Each stream's rows are gathered once, in that order,
    from the archive's Arrow columns.
    Rows of another event type (none are documented) are left out.
    """
    out: dict[str, pa.Table] = {}
    if table.num_rows == 0:
        return out
    # The string columns in one chunk: a gather from a chunked one first concatenates it.
    for name in ("side", "transaction_hash", "bids", "asks"):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, table.column(name).combine_chunks())
    tsr_col = table.column("timestamp_received").cast(pa.int64())
    if tsr_col.null_count:
        raise ValueError("PMXT rows without timestamp_received")
    tsr = tsr_col.to_numpy()
    order = np.argsort(tsr, kind="stable")
    # The markets once (a few per hour): each row's market as an index into them.
    enc = pc.dictionary_encode(table.column("market")).combine_chunks()
    # The tokens too (two a market): a token id is gathered from them, not from the column.
    tokens = pc.dictionary_encode(table.column("asset_id")).combine_chunks()
    names = enc.dictionary.cast(pa.string())
    ctx = {
        "tsr": tsr,
        "market_of": names,
        "token_of": tokens.dictionary,
        "token": tokens.indices,
        "asset_of": pa.array([assets.get(m) for m in names.to_pylist()], pa.string()),
    }
    midx = enc.indices.fill_null(-1).to_numpy().astype(np.int64)
    events = table.column("event_type")
    for event_type, stream in EVENT_STREAM.items():
        mask = pc.fill_null(pc.equal(events, event_type), False).to_numpy()
        idx = order[mask[order]]
        if len(idx) == 0:
            continue
        if event_type == "book":
            cols = {n: table.column(n).take(idx) for n in _BOOK_COLS}
            cols["asset_id"] = tokens.dictionary.take(tokens.indices.take(idx))
            cols["market"] = ctx["market_of"].take(pa.array(midx[idx], mask=midx[idx] < 0))
            out[stream] = _book_table(pa.table(cols), assets)
        else:
            out[stream] = _BUILD[event_type](_Rows(table, idx, midx, ctx)).table_of(stream)
    return out


def _book_table(table: pa.Table, assets: Mapping[str, str]) -> pa.Table:
    part = _books(_common(_book_frame(table), assets))
    full = ARROW_SCHEMAS["polymarket.book"]
    schema = full.remove(full.get_field_index("seq"))
    return part.select([f.name for f in schema]).to_arrow().cast(schema)
