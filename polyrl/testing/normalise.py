"""A recording as the public archives would give it back: the round trip's reference.

:func:`normalise_to_archives` copies a recording (e.g. a simulation) keeping only what
``polyrl import polymarket`` and ``polyrl import binance`` can rebuild from the archives'
formats, timed as the importers time it, so a replay of the copy and of an import of the
exported archives must agree exactly (``tests/integration/test_import_round_trip.py``):

- ``polymarket.book`` / ``price_change`` / ``trade`` / ``tick_size``: ``recv_ns`` and
  ``exch_ns`` floored to the millisecond (PMXT stores ``timestamp_received`` and
  ``timestamp`` in ms);
- ``polymarket.market``: received :data:`~polyrl.importers.gamma.MARKET_LEAD_S` before its
  window starts (the importer's discovery time), ``closed`` False and ``active`` True;
- ``polymarket.resolution``: ``exch_ns`` = Gamma's ``closedTime`` (whole seconds), received
  then, and never before the window end;
- ``binance.spot.trade`` / ``binance.futures.trade``: ``exch_ns`` = the trade time (the
  archive has no event time) and ``recv_ns`` = trade time + the configured per-venue delay;
- ``binance.spot.kline``: the recorded closed bars (the warm-up history a recorder reads at
  start), received as the importer dates an archive bar: at its end (open + interval) +
  the spot delay, ``exch_ns`` its close time. The bars the archive also holds for the
  recorded span (built from the trades) are left out: ``history`` reads bars only before the
  first live trade;
- every other stream is left out: the book ticker, depth, liquidations, the settlement
  reference and Polymarket's ``best_bid_ask`` are in no archive; mark/index prices and open
  interest are, but at other fidelity (one mark row a minute, 5-minute metrics), and the
  ``history`` feature set reads none of them (the round trip compares its decisions
  exactly, which would catch one that mattered).

Rows keep their ``seq``; each stream is rewritten sorted by ``(recv_ns, seq)`` into the
hour partitions of its new receive times (one file per partition).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from polyrl.events import NS_PER_S
from polyrl.importers.config import ImportConfig
from polyrl.importers.gamma import MARKET_LEAD_S
from polyrl.recording.reader import RecordingReader
from polyrl.recording.schema import ARROW_SCHEMAS

MS = 1_000_000
HOUR_NS = 3600 * NS_PER_S
PM_EVENTS = (
    "polymarket.book",
    "polymarket.price_change",
    "polymarket.trade",
    "polymarket.tick_size",
)
KEPT = (*PM_EVENTS, "polymarket.market", "polymarket.resolution",
        "binance.spot.trade", "binance.futures.trade", "binance.spot.kline")  # fmt: skip
INTERVAL_NS = {"1s": NS_PER_S, "1m": 60 * NS_PER_S}


def _ms(c: str) -> pl.Expr:
    return (pl.col(c) // MS * MS).alias(c)


def normalised_stream(stream: str, df: pl.DataFrame, config: ImportConfig) -> pl.DataFrame:
    """One stream's rows as the archives give them back (see the module docstring)."""
    if stream in PM_EVENTS:
        return df.with_columns(_ms("recv_ns"), _ms("exch_ns"))
    if stream == "polymarket.market":
        recv = pl.col("window_start_ns") - MARKET_LEAD_S * NS_PER_S
        return df.with_columns(recv.alias("recv_ns"), closed=False, active=True)
    if stream == "polymarket.resolution":
        closed = pl.col("exch_ns") // NS_PER_S * NS_PER_S
        recv = pl.max_horizontal(closed, pl.col("window_end_ns"))
        return df.with_columns(closed.alias("exch_ns"), recv.alias("recv_ns"))
    if stream in ("binance.spot.trade", "binance.futures.trade"):
        ms = config.binance_spot_delay_ms if ".spot." in stream else config.binance_futures_delay_ms
        delay = round(ms * MS)
        return df.with_columns(
            pl.col("trade_ns").alias("exch_ns"), (pl.col("trade_ns") + delay).alias("recv_ns")
        )
    if stream == "binance.spot.kline":
        delay = round(config.binance_spot_delay_ms * MS)
        end = pl.col("open_ns") + pl.col("interval").replace_strict(INTERVAL_NS)
        return df.filter(pl.col("closed")).with_columns(
            pl.col("close_ns").alias("exch_ns"), (end + delay).alias("recv_ns")
        )
    raise ValueError(f"{stream} is not kept by the archives (see polyrl.testing.normalise)")


def normalise_to_archives(
    src: Path | str, out: Path | str, config: ImportConfig | None = None
) -> dict[str, int]:
    """Write the archive-normalised copy of recording ``src`` to ``out`` (a new directory);
    the rows written per stream."""
    src, out = Path(src), Path(out)
    cfg = config or ImportConfig()
    reader = RecordingReader(src)
    counts: dict[str, int] = {}
    for stream in KEPT:
        df = reader.read_stream(stream)
        if df.is_empty():
            continue
        df = normalised_stream(stream, df, cfg).sort("recv_ns", "seq")
        schema = ARROW_SCHEMAS[stream]
        if "raw" in schema.names and "raw" not in df.columns:
            df = df.with_columns(raw=pl.lit(""))
        df = df.with_columns((pl.col("recv_ns") // HOUR_NS).alias("_hour"))
        for (hour,), part in df.group_by("_hour", maintain_order=True):
            t0 = int(hour) * HOUR_NS
            stamp = pl.from_epoch(pl.Series([t0]), time_unit="ns")
            date = stamp.dt.strftime("%Y-%m-%d")[0]
            d = out / stream / f"date={date}" / f"hour={stamp.dt.hour()[0]:02d}"
            d.mkdir(parents=True, exist_ok=True)
            table = part.drop("_hour").to_arrow().select(schema.names).cast(schema)
            pq.write_table(table, d / f"part-{int(part['seq'][0]):016d}.parquet")
        counts[stream] = len(df)
    if (src / "provenance").is_dir():
        shutil.copytree(src / "provenance", out / "provenance")
    return counts
