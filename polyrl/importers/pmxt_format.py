"""The PMXT v2 archive's hour file: its 16 columns, its name, and the stream each event
type converts into (FACTS §9)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from polyrl.sources.quality import DEFAULT_EXCH_TOLERANCE_S

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

MS_NS = 1_000_000
"""Nanoseconds in one of the archive's milliseconds."""
TOL_NS = int(DEFAULT_EXCH_TOLERANCE_S * 1e9)
"""How far ``exch_ns`` may lie from ``recv_ns`` before a row is flagged ``bad_time``."""


def hour_object(date: str, hour: int) -> str:
    """The archive's name of one UTC hour's file."""
    return f"polymarket_orderbook_{date}T{hour:02d}.parquet"


def wanted_rows(table: pa.Table, condition_ids: list[str]) -> pa.Table:
    """The rows of ``table`` whose ``market`` is one of ``condition_ids``."""
    want = pa.array([c.encode() for c in condition_ids], pa.binary(66))
    return table.filter(pc.is_in(table.column("market"), value_set=want))
