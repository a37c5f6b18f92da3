"""Read one PMXT hour: only the row groups that can hold the wanted markets, then the rows.

The hour file is opened through :class:`~polyrl.importers.fetch.Archive` (a local folder,
or HTTP with ``Range`` reads: pyarrow fetches the footer and the column chunks it reads).
The file is sorted by ``market``, so each row group's min/max statistics of ``market`` say
whether it can hold a wanted condition id; only those row groups are read (a row group
without statistics is read), and then only the wanted rows are kept. When those row groups
are nearly all of the file (:data:`WHOLE_FILE_SHARE`), or the file is small (:data:`SMALL_FILE`),
it is read in one request instead. From a local folder the wanted rows' ranges come from the
``market`` chunks' dictionary pages (:mod:`~polyrl.importers.pmxt_pages`) and polars decodes
those rows only. A missing hour (no
file, HTTP 404) reads as ``table = None``: the importer makes it a gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from polyrl.errors import PolyrlError
from polyrl.importers.fetch import Archive, LocalArchive
from polyrl.importers.pmxt_format import PMXT_SCHEMA, wanted_rows
from polyrl.importers.pmxt_pages import market_column, market_runs, merged

SMALL_FILE = 1 << 20
"""A file this small is read in one request (its footer alone would cost a range read)."""
WHOLE_FILE_SHARE = 0.9
"""When the wanted row groups hold at least this share of the file, it is read whole.

pyarrow coalesces the column chunks of adjacent wanted row groups into one range request,
so reading the row groups costs at most a request per run of them (22 for a real hour's 44
row groups); below 90% the bytes a whole read adds (up to 10% of 100-800 MB) cost more
than those requests."""


@dataclass(frozen=True, slots=True)
class HourRead:
    """One hour's wanted rows (None: the hour is missing) and what reading them cost."""

    table: pa.Table | None
    location: str
    size: int
    etag: str
    bytes_fetched: int
    row_groups: int
    row_groups_read: int


def _as_bytes(v: object) -> bytes | None:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode()
    return None


def _compressed(rg: pq.RowGroupMetaData) -> int:
    return sum(rg.column(j).total_compressed_size for j in range(rg.num_columns))


def groups_for(meta: pq.FileMetaData, condition_ids: list[str]) -> list[int]:
    """The row groups whose ``market`` min/max range holds one of ``condition_ids``."""
    want = sorted(c.encode() for c in condition_ids)
    if not want:
        return []
    col = meta.schema.names.index("market")
    out = []
    for i in range(meta.num_row_groups):
        st = meta.row_group(i).column(col).statistics
        lo = _as_bytes(st.min) if st is not None and st.has_min_max else None
        hi = _as_bytes(st.max) if st is not None and st.has_min_max else None
        if lo is None or hi is None or any(lo <= c <= hi for c in want):
            out.append(i)
    return out


def _local_rows(
    path: Path, meta: pq.FileMetaData, groups: list[int], condition_ids: list[str]
) -> pa.Table:
    """The rows of ``condition_ids`` in a local hour file, in file order, as
    :func:`~polyrl.importers.pmxt_format.wanted_rows` over the whole file gives them.

    Their row ranges come from the ``market`` chunks' dictionary pages
    (:func:`~polyrl.importers.pmxt_pages.market_runs`: a few ms instead of decoding 66
    bytes a row), polars decodes the other columns of those ranges only and ``market`` is
    built from the runs' values; a file whose ``market`` chunks are
    not in the archive's layout is filtered on the decoded column instead (same rows)."""
    runs = market_runs(path, meta, groups, condition_ids)
    if runs is None:
        want = pl.Series([c.encode() for c in condition_ids], dtype=pl.Binary)
        df = pl.scan_parquet(path).filter(pl.col("market").is_in(want.implode())).collect()
    elif not runs:
        return PMXT_SCHEMA.empty_table()
    else:
        # Slice, then select: polars decodes the other columns of the ranges only (selecting
        # first makes it ~40% dearer).
        scan = pl.scan_parquet(path)
        others = [n for n in PMXT_SCHEMA.names if n != "market"]
        df = pl.concat([scan.slice(a, b - a).select(others) for a, b in merged(runs)]).collect()
    # Arrow's view types, as polars holds them: no copy here, and the cast to the archive's
    # types copies only the values. (The older large types copy every string column whole,
    # with every buffer its views point into: a bids column of 3% book rows ~15x its text.)
    arrow = df.to_arrow(compat_level=pl.CompatLevel.newest())
    cols = {n: arrow.column(n) for n in arrow.column_names}
    if runs:  # the market column from the runs (a cast from polars' values costs ~0.15 s)
        cols["market"] = pa.chunked_array([market_column(runs)])
    return pa.Table.from_arrays([cols[f.name].cast(f.type) for f in PMXT_SCHEMA],
                                schema=PMXT_SCHEMA)  # fmt: skip


def read_hour(archive: Archive, rel: str, condition_ids: list[str]) -> HourRead:
    """The rows of ``condition_ids`` in the hour file ``rel`` (see the module docstring)."""
    info = archive.stat(rel)
    location = archive.location(rel)
    if info is None:
        return HourRead(None, location, 0, "", 0, 0, 0)
    before = archive.stats.by_object.get(rel, 0)
    try:
        small = info.size <= SMALL_FILE
        src = pa.BufferReader(archive.read(rel)) if small else archive.open(rel, info)
        pf = pq.ParquetFile(src)
        names = pf.schema_arrow.names
        if names != PMXT_SCHEMA.names:
            raise PolyrlError(
                f"{location}: not a PMXT v2 hour file (columns {', '.join(names[:16])})"
            )
        groups = groups_for(pf.metadata, condition_ids)
        planned = sum(_compressed(pf.metadata.row_group(i)) for i in groups)
        local = isinstance(archive, LocalArchive)
        if not small and not local and groups and planned >= WHOLE_FILE_SHARE * info.size:
            # Most of the file is wanted (a small file, or a busy hour): one read of the rest
            # costs less than a range request per column chunk.
            pf = pq.ParquetFile(pa.BufferReader(archive.read(rel)))
        if groups and isinstance(archive, LocalArchive):
            # A local file: polars decodes the market column, then the other columns of the
            # wanted rows only: several times cheaper than decoding the row groups whole.
            # What it reads is counted as the row groups' bytes (the footer is counted).
            if not small:
                archive.stats.add(rel, planned)
            table = _local_rows(archive.root / rel, pf.metadata, groups, condition_ids)
        elif groups:
            table = pf.read_row_groups(groups)
            table = wanted_rows(table, condition_ids)
        else:
            table = PMXT_SCHEMA.empty_table()
        n_groups = pf.metadata.num_row_groups
    except (OSError, pa.ArrowException, pl.exceptions.PolarsError) as e:
        raise PolyrlError(f"{location}: cannot read as Parquet ({e})") from None
    fetched = archive.stats.by_object.get(rel, 0) - before
    return HourRead(table, location, info.size, info.etag, fetched, n_groups, len(groups))
