"""PMXT v2 hour rows -> the Polymarket market-channel streams the recorder writes (pure).

The PMXT v2 archive keeps every CLOB market-channel event in one Parquet file per UTC hour
(:data:`~polyrl.importers.pmxt_format.PMXT_SCHEMA`, 16 columns; rows ordered by
``(market, asset_id, timestamp_received)``).
:func:`convert_hour` turns the rows of the wanted markets into ``polymarket.book``,
``polymarket.price_change``, ``polymarket.trade`` and ``polymarket.tick_size`` tables with the
live parser's semantics (:mod:`polyrl.sources.polymarket.clob_ws`):

- ``recv_ns`` = ``timestamp_received`` (ms -> ns), ``exch_ns`` = ``timestamp``; ``key`` =
  ``asset_id``; ``market`` = the condition id; ``asset`` from the market's asset;
- decimals (``decimal(9,4)`` prices, ``decimal(18,6)`` sizes) become the float64 nearest to
  their exact decimal value, the double their decimal text parses to as the live parser
  reads the wire's strings (:mod:`~polyrl.importers.pmxt_decimal`: from the unscaled
  integers, no text);
  ``side`` is ``BUY``/``SELL`` as on the wire;
- ``book`` sides are parsed from the JSON strings and sorted best first (bids descending, asks
  ascending); a side that cannot be read gives an empty book flagged ``bad_value``, so the
  engine unsyncs the token's book rather than trusting it (:mod:`~polyrl.importers.pmxt_book`);
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
through polars (:mod:`~polyrl.importers.pmxt_book`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from polyrl.importers.pmxt_book import BOOK_COLS, book_table
from polyrl.importers.pmxt_decimal import decimal_floats
from polyrl.importers.pmxt_format import EVENT_STREAM, MS_NS, TOL_NS
from polyrl.recording.schema import ARROW_SCHEMAS
from polyrl.sources.quality import BAD_TIME, BAD_VALUE, CROSSED, PRICE_RANGE


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
        """``table``: the rows' columns already in output order; ``idx``: their positions in
        the hour's rows (for the figures of the whole hour in ``ctx``)."""
        self.table, self.idx, self.n = table, idx, len(idx)
        self.market_idx = market_idx[idx]
        self.tsr = ctx["tsr"][idx]
        ts = table.column("timestamp").cast(pa.int64()).combine_chunks()
        self.ts_null = _nulls(ts)
        self.ts = ts.fill_null(0).to_numpy()
        recv = self.tsr * MS_NS
        exch = self.ts * MS_NS
        bad = ~self.ts_null & ((exch <= 0) | (np.abs(exch - recv) > TOL_NS))
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
        return self.table.column(name)

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


_BUILD = {
    "price_change": _price_changes,
    "last_trade_price": _trades,
    "tick_size_change": _ticks,
}

_COLUMNS = {
    "book": BOOK_COLS,
    "price_change": ("timestamp", "price", "size", "best_bid", "best_ask", "side"),
    "last_trade_price": ("timestamp", "price", "size", "side", "fee_rate_bps", "transaction_hash"),
    "tick_size_change": ("timestamp", "old_tick_size", "new_tick_size"),
}
"""The archive columns each event type's rows are gathered from (``market``, ``asset_id`` and
``timestamp_received`` are read once for the hour)."""


def _gather(table: pa.Table, names: tuple[str, ...], idx: np.ndarray) -> pa.Table:
    """Columns ``names`` of the rows at ``idx``, in that order: one gather from the hour's
    (chunked) columns, which Arrow does chunk by chunk without concatenating them first."""
    return table.select(list(names)).take(pa.array(idx))


def convert_hour(table: pa.Table, assets: Mapping[str, str]) -> dict[str, pa.Table]:
    """An hour's archive rows (already limited to the wanted markets) -> stream tables.

    ``assets`` maps condition id -> asset (``btc``...). Returns one table per stream of
    :data:`~polyrl.importers.pmxt_format.STREAMS` holding rows, in the stream's schema minus
    ``seq``, ordered by ``timestamp_received`` and in file order within one ms: the order
    the store writes them in, so it need not reorder them. Each stream's rows are gathered
    once, in that order, from the archive's Arrow columns (:func:`_gather`).
    Rows of another event type (none are documented) are left out.
    """
    out: dict[str, pa.Table] = {}
    if table.num_rows == 0:
        return out
    tsr_col = table.column("timestamp_received").cast(pa.int64())
    if tsr_col.null_count:
        raise ValueError("PMXT rows without timestamp_received")
    tsr = tsr_col.to_numpy()
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
        pos = np.flatnonzero(mask)
        if len(pos) == 0:
            continue
        # By timestamp_received, file order within one ms (a stable sort of the rows' times).
        order = np.argsort(tsr[pos], kind="stable")
        idx = pos[order]
        sub = _gather(table, _COLUMNS[event_type], idx)
        if event_type == "book":
            cols = {n: sub.column(n) for n in BOOK_COLS}
            cols["asset_id"] = tokens.dictionary.take(tokens.indices.take(idx))
            cols["market"] = ctx["market_of"].take(pa.array(midx[idx], mask=midx[idx] < 0))
            out[stream] = book_table(pa.table(cols), assets)
        else:
            out[stream] = _BUILD[event_type](_Rows(sub, idx, midx, ctx)).table_of(stream)
    return out
