"""Binance data-archive CSVs -> typed Arrow columns, vectorised, surviving the known defects.

Pure: bytes of one archive zip in, one Arrow table of fixed column names and types out, plus
what was repaired. Columns are read by position under names of our own (the archive's
headers vary: spot files have none, USD-M files gained one in 2022), so:

- a header row is detected per file (the first field of the first line is not a number) and
  skipped, never assumed per type;
- every timestamp column is converted to ns by its magnitude, per file and column: values
  above :data:`US_THRESHOLD` are µs (spot from 2025-01-01), below are ms (spot before, all
  of USD-M), never by the file's date;
- rows out of time or id order (monthly USD-M files) are sorted, exact duplicate rows
  (``metrics``) dropped, each counted in :class:`Parsed`'s ``repairs``.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from polyrl.errors import PolyrlError

US_THRESHOLD = 10**14
"""A timestamp above this is in µs (ms reach it only in the year 5138; µs passed it in 1973)."""

F64 = pa.float64()
I64 = pa.int64()

AGG_TRADES = (
    ("trade_id", I64),
    ("price", F64),
    ("qty", F64),
    ("first_id", I64),
    ("last_id", I64),
    ("time", I64),
    ("buyer_maker", pa.bool_()),
    ("best_match", pa.bool_()),
)
"""Spot ``aggTrades`` (8 columns); USD-M files have the first 7."""

KLINES = (
    ("open_time", I64),
    ("open", F64),
    ("high", F64),
    ("low", F64),
    ("close", F64),
    ("volume", F64),
    ("close_time", I64),
    ("quote_volume", F64),
    ("trades", I64),
    ("taker_buy_base", F64),
    ("taker_buy_quote", F64),
    ("ignore", pa.string()),
)
"""Spot ``klines`` and USD-M ``markPriceKlines`` / ``indexPriceKlines`` (12 columns)."""

METRICS = (
    ("create_time", pa.timestamp("s")),
    ("symbol", pa.string()),
    ("sum_open_interest", F64),
    ("sum_open_interest_value", F64),
    ("count_toptrader_long_short_ratio", F64),
    ("sum_toptrader_long_short_ratio", F64),
    ("count_long_short_ratio", F64),
    ("sum_taker_long_short_vol_ratio", F64),
)
"""USD-M ``metrics``: 5-minute open interest; ``create_time`` is ``YYYY-MM-DD HH:MM:SS``."""

FUNDING = (
    ("calc_time", I64),
    ("funding_interval_hours", I64),
    ("last_funding_rate", F64),
)
"""USD-M ``fundingRate`` (monthly only)."""

LAYOUTS: dict[str, tuple[tuple[str, pa.DataType], ...]] = {
    "aggTrades": AGG_TRADES,
    "klines": KLINES,
    "markPriceKlines": KLINES,
    "indexPriceKlines": KLINES,
    "metrics": METRICS,
    "fundingRate": FUNDING,
}
TIME_COLUMNS = {
    "aggTrades": ("time",),
    "klines": ("open_time", "close_time"),
    "markPriceKlines": ("open_time", "close_time"),
    "indexPriceKlines": ("open_time", "close_time"),
    "metrics": (),
    "fundingRate": ("calc_time",),
}
SORT_KEY = {
    "aggTrades": "trade_id",
    "klines": "open_time",
    "markPriceKlines": "open_time",
    "indexPriceKlines": "open_time",
    "metrics": "create_time",
    "fundingRate": "calc_time",
}


class ArchiveFormatError(PolyrlError):
    """An archive file that cannot be read as its type (named in the message)."""


@dataclass(slots=True)
class Parsed:
    """One file's rows (time columns in ns, sorted, deduplicated) and what was repaired."""

    table: pa.Table
    header: bool
    time_units: dict[str, str] = field(default_factory=dict)
    repairs: dict[str, int] = field(default_factory=dict)


def unzip_csv(data: bytes, name: str) -> bytes:
    """The CSV inside an archive zip (its one ``.csv`` member)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = [m for m in z.namelist() if m.lower().endswith(".csv")]
            if not members:
                raise ArchiveFormatError(f"{name}: no .csv inside the zip")
            return z.read(members[0])
    except zipfile.BadZipFile:
        raise ArchiveFormatError(f"{name}: not a zip file") from None


def has_header(csv: bytes) -> bool:
    """True when the first line is a header (its first field does not start like a number)."""
    head = csv.lstrip(b"\xef\xbb\xbf")[:64].lstrip()
    return bool(head) and not (head[:1].isdigit() or head[:1] in b"-+.")


def to_ns(col: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, str]:
    """An integer ms or µs timestamp column -> int64 ns, the unit decided by magnitude."""
    a = np.asarray(col.to_numpy(), dtype=np.int64)
    if len(a) and int(np.abs(a).max()) > US_THRESHOLD:
        return a * 1_000, "us"
    return a * 1_000_000, "ms"


def parse(kind: str, csv: bytes, name: str) -> Parsed:
    """Parse one archive CSV of ``kind`` (a key of :data:`LAYOUTS`); ``name`` is for errors."""
    layout = LAYOUTS[kind]
    header = has_header(csv)
    lines = csv[:65536].split(b"\n", 2)  # the first lines only: files are 100s of MB
    first = lines[1 if header else 0] if len(lines) > (1 if header else 0) else b""
    ncols = first.count(b",") + 1 if first.strip() else len(layout)
    if ncols > len(layout) or ncols < len(layout) - 1:
        raise ArchiveFormatError(
            f"{name}: {ncols} columns, a {kind} file has {len(layout)}"
            + (f" or {len(layout) - 1}" if kind == "aggTrades" else "")
        )
    cols = layout[:ncols]
    try:
        table = pacsv.read_csv(
            io.BytesIO(csv),
            read_options=pacsv.ReadOptions(
                column_names=[c for c, _ in cols], skip_rows=1 if header else 0
            ),
            convert_options=pacsv.ConvertOptions(column_types=dict(cols)),
        )
    except pa.ArrowInvalid as e:
        raise ArchiveFormatError(f"{name}: {str(e).splitlines()[0]}") from None
    out = Parsed(table, header)
    for c in TIME_COLUMNS[kind]:
        ns, unit = to_ns(table.column(c))
        out.time_units[c] = unit
        table = table.set_column(table.schema.get_field_index(c), c, pa.array(ns))
    if kind == "metrics":
        ns = table.column("create_time").cast(pa.int64()).to_numpy() * 1_000_000_000
        table = table.set_column(0, "create_time", pa.array(ns, pa.int64()))
        n = table.num_rows
        table = _drop_exact_duplicates(table)
        if table.num_rows < n:
            out.repairs["duplicate_rows_dropped"] = n - table.num_rows
    key = table.column(SORT_KEY[kind]).to_numpy()
    if len(key) > 1 and bool(np.any(np.diff(key) < 0)):
        order = np.argsort(key, kind="stable")
        table = table.take(pa.array(order))
        out.repairs["rows_out_of_order_sorted"] = int(np.sum(np.diff(key) < 0))
    out.table = table
    return out


def _drop_exact_duplicates(table: pa.Table) -> pa.Table:
    """Rows equal in every column, after the first, removed (order kept)."""
    if table.num_rows < 2:
        return table
    idx = pa.array(np.arange(table.num_rows))
    keyed = table.append_column("__i", idx)
    names = [c for c in table.column_names]
    firsts = keyed.group_by(names, use_threads=False).aggregate([("__i", "min")])
    keep = np.sort(firsts.column("__i_min").to_numpy())
    if len(keep) == table.num_rows:
        return table
    return table.take(pa.array(keep))


def day_slice(table: pa.Table, column: str, start_ns: int, end_ns: int) -> pa.Table:
    """Rows with ``start_ns <= column < end_ns`` (a monthly file's one day)."""
    c = table.column(column)
    mask = pc.and_(pc.greater_equal(c, start_ns), pc.less(c, end_ns))
    return table.filter(mask)
