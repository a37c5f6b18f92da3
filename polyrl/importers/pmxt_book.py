"""PMXT ``book`` rows -> ``polymarket.book`` rows (pure; see :mod:`polyrl.importers.pmxt`).

``bids``/``asks`` are JSON texts ``[["price","size"], ...]`` (best last, as on the wire).
Each side is parsed and sorted best first (bids descending, asks ascending); a side that
cannot be read gives an empty book flagged ``bad_value``, so the engine unsyncs the token's
book rather than trusting it. The value checks of :mod:`polyrl.sources.quality` are computed
on the sorted sides. A row's ``raw`` is a JSON text of the *archive's row* (times as ms
integers, the side texts as read): only that text keeps the levels as the archive holds them.

Vectorised in polars (:func:`_books_vectorised`); an hour holding a side of another shape
(``[{price, size}]``), unreadable JSON or text that JSON escapes beyond quotes and
backslashes is read row by row in Python (:func:`_books_rows`), which gives the same table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from polyrl.importers.pmxt_format import MS_NS, TOL_NS
from polyrl.recording.schema import ARROW_SCHEMAS
from polyrl.sources.quality import BAD_TIME, BAD_VALUE, CROSSED, PRICE_RANGE, VALUE_CHECKS

BOOK_COLS = ("timestamp_received", "timestamp", "bids", "asks")
"""The archive columns a book row takes as they are (``market`` and ``asset_id`` besides)."""


def _book_frame(table: pa.Table) -> pl.DataFrame:
    """The archive columns a book row uses, for polars: times as ms ints, text as strings."""
    cols: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in ("timestamp_received", "timestamp"):
        cols[name] = table.column(name).cast(pa.int64())
    cols["market"] = table.column("market").cast(pa.binary()).cast(pa.string())
    for name in ("asset_id", "bids", "asks"):
        cols[name] = table.column(name).cast(pa.string())
    df = pl.from_arrow(pa.table(cols))
    assert isinstance(df, pl.DataFrame)  # a table gives a frame (a Series only from an array)
    return df


def _quoted(col: str) -> pl.Expr:
    """A string column as a JSON string literal (null stays null)."""
    c = pl.col(col).str.replace_all("\\", "\\\\", literal=True)
    c = c.str.replace_all('"', '\\"', literal=True)
    return pl.concat_str([pl.lit('"'), c, pl.lit('"')])


def _bad_time(df: pl.DataFrame) -> pl.Expr:
    exch, recv = pl.col("exch_ns"), pl.col("recv_ns")
    bad = (exch <= 0) | ((exch - recv).abs() > TOL_NS)
    return pl.when(bad).then(BAD_TIME).otherwise(0)


def _common(df: pl.DataFrame, assets: Mapping[str, str]) -> pl.DataFrame:
    return df.with_columns(
        recv_ns=pl.col("timestamp_received") * MS_NS,
        exch_ns=pl.col("timestamp") * MS_NS,
        key=pl.col("asset_id"),
        asset=pl.col("market").replace_strict(dict(assets), default=None, return_dtype=pl.String),
    )


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
    """One side of every book row, vectorised: ``_r`` (row, only rows with levels), ``px``
    /``sz`` lists sorted best first and the figures of the value checks (``best``, ``ok``,
    ``out``); None when a row needs :func:`_side`'s reading (another shape, a level of one
    value, a number that is not finite). :func:`_side_frame_flat` when the side allows it,
    else :func:`_side_frame_exploded`: the same frame."""
    fast = _side_frame_flat(df, col, bids=bids)
    return _side_frame_exploded(df, col, bids=bids) if fast is None else fast


def _side_frame_flat(df: pl.DataFrame, col: str, *, bids: bool) -> pl.DataFrame | None:
    """:func:`_side_frame_exploded`'s frame from the decoded side's flat Arrow buffers and
    numpy (~2.5x cheaper: no exploded frame, sort, join or group-by), for sides in the
    archive's plain shape only: every level exactly two non-null numbers, none zero (so no
    signed zero or removal decides an order or ``best``) and all finite. A row whose levels
    come best last with strictly monotone prices (the wire's order) is reversed, which is
    the stable sort's order; the levels of other rows are ordered by a stable lexsort.
    None otherwise (the exploded frame)."""
    c = pl.col(col)
    if not df.select((c.is_null() | c.str.contains(_SHAPE)).all()).item():
        return None
    dec = (
        df.select(c.str.json_decode(_LEVELS))
        .to_series()
        .to_arrow(compat_level=pl.CompatLevel.newest())
    )
    if isinstance(dec, pa.ChunkedArray):
        dec = dec.combine_chunks()
    lens = dec.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    levels = dec.flatten()
    if levels.null_count or (len(levels) and pc.min(levels.value_lengths()).as_py() != 2):
        return None
    values = pl.Series(levels.flatten())
    if values.null_count():
        return None
    try:
        num = values.cast(pl.Float64, strict=True).to_numpy()
    except pl.exceptions.PolarsError:
        return None
    px, sz = num[0::2], num[1::2]
    if not (np.isfinite(num).all() and (num != 0).all()):
        return None
    rows = np.flatnonzero(lens)
    if not len(rows):
        return None  # no levels at all (the exploded frame is empty)
    n = lens[rows]
    starts = np.cumsum(n) - n
    r = np.repeat(np.arange(len(rows)), n)
    same = np.zeros(len(px), dtype=bool)
    same[1:] = r[1:] == r[:-1]
    # The wire's order is best last: a row whose prices strictly go towards the best is
    # reversed; the levels of any other row are ordered by a stable lexsort.
    best_last = (px[1:] > px[:-1]) if bids else (px[1:] < px[:-1])
    pos = np.arange(len(px)) - starts[r]
    order = starts[r] + (n[r] - 1 - pos)
    bad_row = np.zeros(len(rows), dtype=bool)
    bad_row[r[1:][same[1:] & ~best_last]] = True
    if bad_row.any():
        sub = np.flatnonzero(bad_row[r])
        key_p, key_s = (-px[sub], -sz[sub]) if bids else (px[sub], sz[sub])
        order[sub] = sub[np.lexsort((key_s, key_p, r[sub]))]
    px, sz = px[order], sz[order]
    ends = starts + n - 1
    pos_ok = (px > 0) & (sz > 0)
    first_ok = np.minimum.reduceat(np.where(pos_ok, np.arange(len(px)), len(px)), starts)
    has = first_ok <= ends
    best = np.where(has, px[np.minimum(first_ok, len(px) - 1)], np.nan)
    ok = (np.minimum.reduceat(px, starts) > 0) & (np.minimum.reduceat(sz, starts) > 0)
    ok &= (np.add.reduceat(px, starts) < np.inf) & (np.add.reduceat(sz, starts) < np.inf)
    out = (px[starts] < 0) | (px[starts] > 1) | (px[ends] < 0) | (px[ends] > 1)
    offsets = pa.array(np.append(starts, len(px)).astype(np.int64))
    return pl.DataFrame(
        {
            "_r": pl.Series(rows.astype(np.uint32), dtype=pl.UInt32),
            "px": pl.Series(pa.LargeListArray.from_arrays(offsets, pa.array(px))),
            "sz": pl.Series(pa.LargeListArray.from_arrays(offsets, pa.array(sz))),
            "best": pl.Series(best).fill_nan(None),
            "ok": pl.Series(ok),
            "out": pl.Series(out),
        }
    )


def _side_frame_exploded(df: pl.DataFrame, col: str, *, bids: bool) -> pl.DataFrame | None:
    """:func:`_side_frame` through an exploded frame of levels, a sort and a group-by."""
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
        if exch <= 0 or abs(exch - recv) > TOL_NS:
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


def book_table(table: pa.Table, assets: Mapping[str, str]) -> pa.Table:
    """The book rows of an hour (archive columns: times, ``market``, ``asset_id``, sides) as
    ``polymarket.book`` rows, in the stream's schema minus ``seq``, in the given order."""
    part = _books(_common(_book_frame(table), assets))
    full = ARROW_SCHEMAS["polymarket.book"]
    schema = full.remove(full.get_field_index("seq"))
    return part.select([f.name for f in schema]).to_arrow().cast(schema)
