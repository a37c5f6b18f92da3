"""Imported rows -> a recording root, deterministically, atomically and without mixing.

An import is made of *units*: one source's rows for one UTC hour (PMXT, Gamma) or one UTC
day (Binance's daily files). :func:`write_unit` takes a unit's tables (any order, every
column of the stream's schema except ``seq``), and:

- orders all its rows by ``(recv_ns, stream, row)`` and numbers them ``seq`` =
  :func:`seq_base` + rank: a pure function of the unit and its content, so importing twice
  gives the same rows, and two units (or an import and a recording) never share a ``seq``;
- adds one ``recorder.status`` row of kind ``import`` per archive object it read (source,
  file or URL, checksum or ETag, bytes, polyrl version, receive delay: :data:`IMPORT_KIND`)
  and one ``gap`` row per stretch the archive lacks (a missing hour or day, a window whose
  market it does not hold), keyed ``import.<source>``, so replay honours the gap as it does
  a recorder's outage;
- writes each stream-hour partition the rows fall in (by ``recv_ns``; a row delayed past
  the hour lands in the next) as ``import-<unit>.parquet``, under a hidden temporary name
  then renamed, never a partial file visible; files the unit wrote before (an earlier run
  with other settings) and no longer writes are removed after the new ones are in place;
- refuses, naming them, partitions that hold recorded files (``part-*.parquet``) unless
  ``allow_mixed``: imported and recorded rows of one stream-hour are never silently mixed;
- notes the day's provenance (``kind = "imported"``) and finally writes the unit's marker
  (``<root>/.import/<source>/<unit>.json``): a unit with a marker is done, so an interrupted
  import resumes at the first unit without one (:func:`unit_done`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from polyrl.errors import RecordingError
from polyrl.events import NS_PER_S, STATUS_STREAM, partition_of
from polyrl.recording.origin import IMPORT_FILE_PREFIX as FILE_PREFIX
from polyrl.recording.provenance import note_day
from polyrl.recording.schema import ARROW_SCHEMAS, STREAM_IDS
from polyrl.recording.writer import RecordingConfig, partition_dir, write_parquet_atomic

SOURCE_CODES: dict[str, int] = {"pmxt": 1, "gamma": 2, "binance": 3}
"""Every import source and its code in :func:`seq_base` (a new source takes a new code)."""

IMPORT_KIND = "import"
"""``recorder.status`` kind of a provenance row: ``message`` is the JSON of one archive object."""

MARKER_DIR = ".import"
HOUR_NS = 3600 * NS_PER_S
_ROW_BITS = 28
_SOURCE_BITS = 4
_STREAM_RANK = {s: i for i, s in enumerate(STREAM_IDS)}


@dataclass(frozen=True, slots=True)
class Gap:
    """A stretch an archive lacks: ``[start_ns, end_ns)``, for one stream or all of a source."""

    start_ns: int
    end_ns: int
    what: str
    stream: str | None = None


@dataclass(frozen=True, slots=True)
class Unit:
    """One source's rows for one UTC hour (``hour`` set) or day (``hour`` None)."""

    source: str
    date: str
    hour: int | None
    tables: Mapping[str, pa.Table] = field(default_factory=dict)
    objects: Sequence[Mapping[str, Any]] = ()
    """One JSON-ready dict per archive object read (``url`` or ``file``, ``sha256`` or
    ``etag``, ``bytes``, ...): each becomes an ``import`` status row."""
    gaps: Sequence[Gap] = ()
    info: Mapping[str, Any] = field(default_factory=dict)
    """Anything the unit reports (repairs, counts); kept in its marker."""

    @property
    def name(self) -> str:
        """``pmxt-2026-05-01T13`` or ``binance-2026-05-01``: the files' and marker's name."""
        return f"{self.source}-{self.date}" + ("" if self.hour is None else f"T{self.hour:02d}")

    @property
    def start_ns(self) -> int:
        d = _dt.datetime.strptime(self.date, "%Y-%m-%d").replace(tzinfo=_dt.UTC)
        return int(d.timestamp()) * NS_PER_S + (self.hour or 0) * HOUR_NS


@dataclass(frozen=True, slots=True)
class WriteResult:
    unit: str
    files: tuple[Path, ...]
    rows: dict[str, int]
    removed: tuple[Path, ...]


@contextmanager
def system_allocator() -> Iterator[None]:
    """Arrow allocates from the system allocator inside the block (restored after).

    An import allocates and frees hundreds of MB per unit; with pyarrow's default mimalloc
    pool the process spends about twice the kernel time (pages returned and faulted in again)
    as with the system allocator: ~2.7 CPU-seconds of a Binance day's ~13. Buffers keep the
    pool they came from, so switching is safe while arrays of the other pool live."""
    before = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(before)


def import_entry(source: str, archive: str, **extra: Any) -> dict[str, Any]:
    """The provenance entry of a day imported from ``archive`` by ``source``'s importer
    (``kind = "imported"``, ``source``, ``archive`` and what else the importer states, e.g.
    the receive delay); what ``polyrl inspect`` reads to say where a stream came from."""
    return {
        "kind": "imported",
        "by": f"polyrl import ({source})",
        "source": source,
        "archive": archive,
        **extra,
    }


def seq_base(unit: Unit) -> int:
    """First ``seq`` of a unit: (hours since the epoch << 32) | (source code << 28)."""
    try:
        code = SOURCE_CODES[unit.source]
    except KeyError:
        raise RecordingError(f"unknown import source {unit.source!r}") from None
    hours = unit.start_ns // HOUR_NS
    return (hours << (_ROW_BITS + _SOURCE_BITS)) | (code << _ROW_BITS)


def marker_path(root: Path | str, unit: Unit) -> Path:
    return Path(root) / MARKER_DIR / unit.source / f"{unit.name}.json"


def unit_done(root: Path | str, unit: Unit) -> dict[str, Any] | None:
    """The marker of a finished unit (what it wrote and reported), or None."""
    try:
        return json.loads(marker_path(root, unit).read_text())
    except (OSError, ValueError):
        return None


def polyrl_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("polyrl")
    except PackageNotFoundError:
        from polyrl import __version__

        return __version__


def status_table(unit: Unit) -> pa.Table:
    """The unit's ``import`` and ``gap`` status rows (without ``seq``)."""
    channel = f"import.{unit.source}"
    version = polyrl_version()
    rows: list[dict[str, Any]] = []
    for obj in unit.objects:
        msg = json.dumps({"source": unit.source, "polyrl": version, **obj}, sort_keys=True)
        rows.append(
            {
                "recv_ns": unit.start_ns,
                "kind": IMPORT_KIND,
                "stream_id": obj.get("stream"),
                "message": msg,
                "gap_start_ns": None,
                "gap_end_ns": None,
            }
        )
    for g in unit.gaps:
        rows.append(
            {
                "recv_ns": max(unit.start_ns, g.start_ns),
                "kind": "gap",
                "stream_id": g.stream,
                "message": f"{unit.source}: {g.what}",
                "gap_start_ns": g.start_ns,
                "gap_end_ns": g.end_ns,
            }
        )
    n = len(rows)
    cols: dict[str, Any] = {
        "recv_ns": [r["recv_ns"] for r in rows],
        "exch_ns": [None] * n,
        "key": [channel] * n,
        "asset": [None] * n,
        "quality": [0] * n,
        "kind": [r["kind"] for r in rows],
        "stream_id": [r["stream_id"] for r in rows],
        "message": [r["message"] for r in rows],
        "gap_start_ns": [r["gap_start_ns"] for r in rows],
        "gap_end_ns": [r["gap_end_ns"] for r in rows],
        "raw": [""] * n,
    }
    schema = _without_seq(STATUS_STREAM)
    return pa.Table.from_pydict({f.name: cols[f.name] for f in schema}, schema=schema)


def _without_seq(stream: str) -> pa.Schema:
    s = ARROW_SCHEMAS[stream]
    return s.remove(s.get_field_index("seq"))


def _conform(stream: str, table: pa.Table) -> pa.Table:
    """The table in the stream's schema minus ``seq``; a missing or mistyped column is named."""
    want = _without_seq(stream)
    cols = []
    for f in want:
        if f.name not in table.column_names:
            raise RecordingError(f"import of {stream}: column {f.name!r} missing")
        col = table.column(f.name)
        if not col.type.equals(f.type):
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise RecordingError(f"import of {stream}: column {f.name!r}: {e}") from None
        if not f.nullable and col.null_count:
            raise RecordingError(f"import of {stream}: column {f.name!r} has nulls")
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=want)


def _take(table: pa.Table, idx: np.ndarray) -> pa.Table:
    """``table.take(idx)``, column by column over contiguous arrays (a take over the many
    chunks of concatenated CSV reads, or a whole-table ``combine_chunks``, costs several
    times more)."""
    at = pa.array(idx)
    cols = [c.combine_chunks().take(at) for c in table.columns]
    return pa.Table.from_arrays(cols, schema=table.schema)


def sequenced(unit: Unit) -> dict[str, pa.Table]:
    """The unit's tables (status rows added), each sorted by ``(recv_ns, seq)`` with ``seq``."""
    tables = {s: _conform(s, t) for s, t in unit.tables.items() if t.num_rows}
    status = status_table(unit)
    if status.num_rows:
        if STATUS_STREAM in tables:
            tables[STATUS_STREAM] = pa.concat_tables([tables[STATUS_STREAM], status])
        else:
            tables[STATUS_STREAM] = status
    streams = sorted(tables, key=lambda s: _STREAM_RANK[s])
    if not streams:
        return {}
    recv = np.concatenate([tables[s].column("recv_ns").to_numpy() for s in streams])
    if len(recv) >= 1 << _ROW_BITS:
        raise RecordingError(f"import unit {unit.name} has too many rows ({len(recv)})")
    # The rows are concatenated in (stream rank, row) order, so a stable sort by recv_ns
    # alone orders them by (recv_ns, stream rank, row).
    order = np.argsort(recv, kind="stable")
    seq = np.empty(len(order), dtype=np.int64)
    seq[order] = seq_base(unit) + np.arange(len(order), dtype=np.int64)
    out: dict[str, pa.Table] = {}
    at = 0
    for s in streams:
        t = tables[s]
        n = t.num_rows
        mine = seq[at : at + n]
        at += n
        if n > 1 and bool(np.any(np.diff(mine) < 0)):
            idx = np.argsort(mine, kind="stable")
            t = _take(t, idx)
            mine = mine[idx]
        t = t.add_column(1, ARROW_SCHEMAS[s].field("seq"), [mine])
        out[s] = t.cast(ARROW_SCHEMAS[s])
    return out


def _hour_slices(table: pa.Table) -> list[tuple[str, int, pa.Table]]:
    recv = table.column("recv_ns").to_numpy()
    hours = recv // HOUR_NS
    out = []
    bounds = np.flatnonzero(np.diff(hours)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(recv)]])
    for a, b in zip(starts, ends, strict=True):
        date, hour = partition_of(int(recv[a]))
        out.append((date, hour, table.slice(int(a), int(b - a))))
    return out


_DICT_SAMPLE = 4096
_DICT_MAX = 256


def _parquet_options(table: pa.Table) -> dict[str, Any]:
    """Encodings for one imported file, chosen from its content (so deterministic): 64-bit
    integers (times, ``seq``, ids: mostly increasing) delta-encoded; a string column
    dictionary-encoded when its first rows hold few distinct values (``key``, ``asset``,
    an empty ``raw``), plain otherwise (a JSON ``raw`` would only fill a dictionary and
    fall back). Against the defaults (a dictionary tried on every column) this writes an
    imported day in about half the time and two thirds of the bytes; every Parquet reader
    (pyarrow, polars) reads both encodings."""
    delta: dict[str, str] = {}
    dictionary: list[str] = []
    for f in table.schema:
        if pa.types.is_integer(f.type) and f.type.bit_width == 64:
            delta[f.name] = "DELTA_BINARY_PACKED"
        elif pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
            head = table.column(f.name).slice(0, _DICT_SAMPLE)
            if pc.count_distinct(head, mode="all").as_py() <= _DICT_MAX:
                dictionary.append(f.name)
    return {"use_dictionary": dictionary, "column_encoding": delta}


def _write_parquet(table: pa.Table, path: Path, cfg: RecordingConfig) -> None:
    """The recording writer's atomic write (hidden name, fsync, rename, directory fsync)
    with the encodings of :func:`_parquet_options`."""
    write_parquet_atomic(table, path, cfg, **_parquet_options(table))


def _recorded_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.glob("*.parquet")
        if not p.name.startswith(".") and not p.name.startswith(FILE_PREFIX)
    )


def _earlier_files(root: Path, unit: Unit) -> list[Path]:
    d = _dt.date.fromisoformat(unit.date)
    dates = [(d + _dt.timedelta(days=k)).isoformat() for k in (-1, 0, 1)]
    name = f"{FILE_PREFIX}{unit.name}.parquet"
    out: list[Path] = []
    for date in dates:
        out.extend(root.glob(f"*/date={date}/hour=*/{name}"))
    return sorted(out)


def write_unit(
    root: Path | str,
    unit: Unit,
    *,
    entry: Mapping[str, Any],
    allow_mixed: bool = False,
    config: RecordingConfig | None = None,
) -> WriteResult:
    """Write one unit into ``root`` (see the module docstring); ``entry`` is the day's
    provenance entry (``kind = "imported"``)."""
    with system_allocator():
        return _write_unit(root, unit, entry=entry, allow_mixed=allow_mixed, config=config)


def _write_unit(
    root: Path | str,
    unit: Unit,
    *,
    entry: Mapping[str, Any],
    allow_mixed: bool,
    config: RecordingConfig | None,
) -> WriteResult:
    root = Path(root)
    cfg = config or RecordingConfig()
    tables = sequenced(unit)
    plan: list[tuple[str, Path, pa.Table]] = []
    for stream, table in tables.items():
        for date, hour, part in _hour_slices(table):
            plan.append((stream, partition_dir(root, stream, date, hour), part))
    if not allow_mixed:
        for stream, directory, _ in plan:
            rec = _recorded_files(directory)
            if rec:
                raise RecordingError(
                    f"{stream} {directory.parent.name} {directory.name} already holds recorded "
                    f"rows ({rec[0].name}); importing there would mix imported and recorded "
                    "rows (pass --allow-mixed to do it anyway)"
                )
    before = set(_earlier_files(root, unit))
    name = f"{FILE_PREFIX}{unit.name}.parquet"
    written: list[Path] = []
    days = sorted({d.parent.name.removeprefix("date=") for _, d, _ in plan} | {unit.date})
    for day in days:
        note_day(root, day, entry, fsync=cfg.fsync)
    for _, directory, part in plan:
        path = directory / name
        _write_parquet(part, path, cfg)
        written.append(path)
    removed = tuple(sorted(before - set(written)))
    for p in removed:
        p.unlink(missing_ok=True)
    rows = {s: t.num_rows for s, t in tables.items()}
    marker = marker_path(root, unit)
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(f".{marker.name}.tmp")
    tmp.write_text(
        json.dumps(
            {
                "unit": unit.name,
                "files": [str(p.relative_to(root)) for p in written],
                "rows": rows,
                "gaps": [
                    {"start_ns": g.start_ns, "end_ns": g.end_ns, "what": g.what, "stream": g.stream}
                    for g in unit.gaps
                ],
                "objects": list(unit.objects),
                "info": dict(unit.info),
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
    os.replace(tmp, marker)
    return WriteResult(unit.name, tuple(written), rows, removed)
