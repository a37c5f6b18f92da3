"""Events -> hive-partitioned Parquet: ``<root>/<stream>/date=YYYY-MM-DD/hour=HH/<file>.parquet``.

The writer buffers rows per stream in column lists and writes one Parquet file (zstd) per
stream whenever a buffer reaches ``max_buffer_rows``, the stream's rows roll into the next
hour, or :meth:`RecordingWriter.flush` is called. Every file is written under a hidden
temporary name in its partition directory, fsynced, then renamed into place, so a reader
never sees a half-written file (readers skip names starting with ``.``). File names are
``part-<first seq>.parquet``: deterministic, unique and ordered within a partition.

The writer assigns ``seq``: a recorder-wide counter, strictly increasing in write order,
continued across restarts from what the root already holds (:func:`next_seq`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import pyarrow.parquet as pq

from polyrl.errors import RecordingError
from polyrl.events import NS_PER_S, STATUS_STREAM, Event, partition_of
from polyrl.recording.files import partition_files, recording_files
from polyrl.recording.provenance import check_entry, note_day
from polyrl.recording.reader import read_file
from polyrl.recording.salvage import parse_error_rows, split_unstorable
from polyrl.recording.schema import ARROW_SCHEMAS, spec
from polyrl.recording.tables import build_table

HOUR_NS = 3600 * NS_PER_S


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingConfig:
    """Where recordings live and how their files are written (``[recording]``)."""

    root: str = "recordings"
    """Recording root directory (relative paths are relative to the working directory)."""
    compression: Literal["zstd", "snappy", "lz4", "none"] = "zstd"
    """Parquet compression codec."""
    compression_level: int = 3
    """zstd level (1 fast .. 19 small)."""
    max_buffer_rows: int = 250_000
    """Rows buffered per stream before a Parquet file is written."""
    fsync: bool = True
    """fsync each file and its directory before it becomes visible (crash safety)."""
    exch_time_tolerance_s: float = 300.0
    """Flag a row `bad_time` when its venue time is further than this from its receive time."""
    checkpoint_s: float = 10.0
    """Recorder: seconds between writing buffered rows to Parquet and rotating the WAL."""
    checkpoint_rows: int = 100_000
    """Recorder: also checkpoint as soon as this many rows are buffered (bounds memory)."""
    wal_flush_s: float = 0.2
    """Recorder: seconds between handing the write-ahead log to the OS (loss on kill -9)."""
    wal_fsync_s: float = 1.0
    """Recorder: seconds between fsyncs of the write-ahead log (loss on power failure)."""
    compact_grace_s: float = 120.0
    """Recorder: compact an hour's part files this long after the hour ends."""
    alert_after_s: float = 60.0
    """Recorder: alert on stderr and in a status row when a channel is down this long (clock s)."""

    def __post_init__(self) -> None:
        if self.max_buffer_rows < 1:
            raise ValueError("max_buffer_rows must be >= 1")
        if self.checkpoint_rows < 1:
            raise ValueError("checkpoint_rows must be >= 1")
        for name in (
            "checkpoint_s",
            "wal_flush_s",
            "wal_fsync_s",
            "compact_grace_s",
            "alert_after_s",
            "exch_time_tolerance_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if not 1 <= self.compression_level <= 22:
            raise ValueError("compression_level must be in 1..22")


def partition_dir(root: Path, stream: str, date: str, hour: int) -> Path:
    """The directory of one stream-hour partition."""
    return root / stream / f"date={date}" / f"hour={hour:02d}"


@dataclass(frozen=True, slots=True)
class PendingFile:
    """Rows taken out of the writer, still to be written to ``path``."""

    stream: str
    path: Path
    cols: dict[str, list[Any]]
    rows: int


class _StreamBuffer:
    """Column lists for one stream's rows of one hour."""

    __slots__ = ("stream", "names", "cols", "hour_start", "date", "hour", "first_seq", "n")

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.names = spec(stream).field_names
        self.cols: dict[str, list[Any]] = {}
        self.hour_start = -1
        self.date = ""
        self.hour = -1
        self.first_seq = -1
        self.n = 0
        self._reset()

    def _reset(self) -> None:
        self.cols = {c: [] for c in ("recv_ns", "seq", "exch_ns", "key", "asset", "quality", "raw")}
        for name in self.names:
            self.cols[name] = []
        self.n = 0
        self.first_seq = -1


class RecordingWriter:
    """Append events; they reach disk as Parquet files on flush, roll or buffer size.

    Use as a context manager (``close`` flushes). ``start_seq=None`` continues after the
    largest ``seq`` already under ``root``. ``provenance``: an entry saying what made the
    rows (:mod:`polyrl.recording.provenance`), added to each day's provenance file when the
    writer writes that day's first file.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        config: RecordingConfig | None = None,
        start_seq: int | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        self.root = Path(root)
        # What made these rows (polyrl.recording.provenance): noted once per day written.
        self.provenance = check_entry(provenance) if provenance is not None else None
        self._noted_days: set[str] = set()
        self.config = config or RecordingConfig()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RecordingError(f"cannot create recording root {self.root}: {e}") from None
        if not os.access(self.root, os.W_OK):
            raise RecordingError(f"recording root {self.root} is not writable")
        self._seq = next_seq(self.root) if start_seq is None else start_seq
        self._buffers: dict[str, _StreamBuffer] = {}
        self.files_written: list[Path] = []
        self._lock = threading.Lock()
        self.rows_written = 0
        self.bytes_written = 0

    @property
    def next_seq(self) -> int:
        """The seq the next appended event will get."""
        return self._seq

    def append(self, event: Event, seq: int | None = None) -> int:
        """Buffer one event and return the seq assigned to it.

        ``seq`` forces the event's seq (crash recovery replays a write-ahead log with the
        seqs the live run assigned); it may skip values but never go back.
        """
        if seq is not None:
            if seq < self._seq:
                raise RecordingError(f"seq {seq} would go back (next is {self._seq})")
            self._seq = seq
        buf = self._buffers.get(event.stream)
        if buf is None:
            spec(event.stream)  # unknown stream -> ConfigError naming it
            buf = self._buffers[event.stream] = _StreamBuffer(event.stream)
        t = event.recv_ns
        if not (buf.hour_start <= t < buf.hour_start + HOUR_NS):
            if buf.n:
                self._flush_buffer(buf)
            date, hour = partition_of(t)
            buf.date, buf.hour = date, hour
            buf.hour_start = t - (t % HOUR_NS)
        seq = self._seq
        self._seq += 1
        cols = buf.cols
        cols["recv_ns"].append(t)
        cols["seq"].append(seq)
        cols["exch_ns"].append(event.exch_ns)
        cols["key"].append(event.key)
        cols["asset"].append(event.asset)
        cols["quality"].append(event.quality)
        cols["raw"].append(event.raw)
        f = event.fields
        for name in buf.names:
            cols[name].append(f.get(name))
        if buf.n == 0:
            buf.first_seq = seq
        buf.n += 1
        if buf.n >= self.config.max_buffer_rows:
            self._flush_buffer(buf)
        return seq

    def extend(self, events: Iterable[Event]) -> None:
        """Append many events in order."""
        for ev in events:
            self.append(ev)

    def buffered_rows(self) -> int:
        """Rows appended but not yet on disk."""
        return sum(b.n for b in self._buffers.values())

    def flush(self) -> None:
        """Write every buffered row to disk now."""
        for buf in self._buffers.values():
            if buf.n:
                self._flush_buffer(buf)

    def close(self) -> None:
        """Flush; the writer may not be used afterwards."""
        self.flush()
        self._buffers.clear()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -----------------------------------------------------------------------------------------

    def detach(self) -> list[PendingFile]:
        """Take every buffered row out of the writer as files still to be written.

        Lets a caller write them on another thread (:meth:`write_pending`) while the writer
        keeps accepting events; each buffer keeps its hour so rows stay partitioned.
        """
        out = []
        for buf in self._buffers.values():
            if buf.n:
                out.append(self._take(buf))
        return out

    def write_pending(self, pending: Iterable[PendingFile]) -> list[Path]:
        """Write detached rows to their Parquet files (safe to call from another thread).

        A row Arrow refuses never costs the others: it is written as a ``recorder.status``
        ``parse_error`` row instead, in that stream's partition of the same hour, keeping its
        ``seq`` (see :mod:`polyrl.recording.salvage`). Returns the files written.
        """
        written: list[Path] = []
        for p in pending:
            try:
                table = build_table(p.stream, p.cols)
            except RecordingError:
                written += self._write_salvaged(p)
            else:
                self._write_table(table, p.path)
                written.append(p.path)
            with self._lock:
                self.rows_written += p.rows
        return written

    def _write_salvaged(self, p: PendingFile) -> list[Path]:
        good, bad = split_unstorable(p.stream, p.cols)
        errors = parse_error_rows(p.stream, p.cols, bad)
        if p.stream == STATUS_STREAM:  # the error rows join the good status rows
            good = {k: v + errors[k] for k, v in good.items()}
            order = sorted(range(len(good["seq"])), key=good["seq"].__getitem__)
            good = {k: [v[i] for i in order] for k, v in good.items()}
            errors = {k: [] for k in errors}
        written = []
        if good["seq"]:
            path = p.path.with_name(f"part-{good['seq'][0]:016d}.parquet")
            self._write_table(build_table(p.stream, good), path)
            written.append(path)
        if errors["seq"]:
            status_dir = self.root / STATUS_STREAM / p.path.parent.parent.name
            path = status_dir / p.path.parent.name / f"part-{errors['seq'][0]:016d}.parquet"
            self._write_table(build_table(STATUS_STREAM, errors), path)
            written.append(path)
        return written

    def _take(self, buf: _StreamBuffer) -> PendingFile:
        directory = partition_dir(self.root, buf.stream, buf.date, buf.hour)
        pending = PendingFile(
            stream=buf.stream,
            path=directory / f"part-{buf.first_seq:016d}.parquet",
            cols=buf.cols,
            rows=buf.n,
        )
        buf._reset()
        return pending

    def _flush_buffer(self, buf: _StreamBuffer) -> None:
        self.write_pending([self._take(buf)])

    def _write_table(self, table: pa.Table, path: Path) -> None:
        _write_parquet(table, path, self.config)
        size = path.stat().st_size
        with self._lock:
            self.files_written.append(path)
            self.bytes_written += size
            if self.provenance is not None:
                date = path.parent.parent.name.removeprefix("date=")
                if date not in self._noted_days:
                    # A provenance file that cannot be written never costs recorded rows: the
                    # next file of the day tries again (until then the day reads unknown).
                    with contextlib.suppress(OSError):
                        note_day(self.root, date, self.provenance, fsync=self.config.fsync)
                        self._noted_days.add(date)


def _fsync_dir(directory: Path, config: RecordingConfig) -> None:
    if config.fsync:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _write_parquet(table: pa.Table, path: Path, cfg: RecordingConfig, **options: Any) -> None:
    """Write ``table`` to ``path`` so that no reader ever sees a partial file (``options``:
    further ``pyarrow.parquet.write_table`` settings, e.g. encodings)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        compression = None if cfg.compression == "none" else cfg.compression
        pq.write_table(
            table,
            tmp,
            compression=compression,
            compression_level=cfg.compression_level if compression == "zstd" else None,
            row_group_size=128 * 1024,
            write_statistics=["recv_ns", "seq"],
            **options,
        )
        if cfg.fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent, cfg)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise RecordingError(f"cannot write {path}: {e}") from None


write_parquet_atomic = _write_parquet
"""Public name of the writer's atomic file write (importers write whole files the same way)."""


def compact_partition(directory: Path, stream: str, config: RecordingConfig) -> Path | None:
    """Merge a partition's part files into one ``part-<first>-<last>.parquet``.

    The merged file becomes visible atomically; the parts it covers are deleted after
    (readers ignore covered parts, so an interruption in between loses and duplicates
    nothing). Returns the new file, or None when there was nothing to merge.
    """
    files = partition_files(directory)
    if len(files) < 2:
        return None
    tables = [read_file(f, stream, None) for f in files]
    table = pa.concat_tables(tables).cast(ARROW_SCHEMAS[stream])
    seq = table.column("seq")
    first, last = pa.compute.min(seq).as_py(), pa.compute.max(seq).as_py()
    target = directory / f"part-{first:016d}-{last:016d}.parquet"
    _write_parquet(table, target, config)
    for f in files:
        if f != target:
            f.unlink(missing_ok=True)
    _fsync_dir(directory, config)
    return target


def max_seq_by_stream(root: Path) -> dict[str, int]:
    """The largest ``seq`` stored per stream under ``root``, from file footers."""
    best: dict[str, int] = {}
    for path in recording_files(root):
        stream = path.relative_to(root).parts[0]
        try:
            md = pq.read_metadata(path)
        except Exception as e:  # noqa: BLE001 - any unreadable footer is named
            raise RecordingError(f"unreadable recording file {path}: {e}") from None
        idx = md.schema.to_arrow_schema().get_field_index("seq")
        for rg in range(md.num_row_groups):
            st = md.row_group(rg).column(idx).statistics
            if st is not None and st.has_min_max:
                best[stream] = max(best.get(stream, -1), int(st.max))
    return best


def next_seq(root: Path) -> int:
    """1 + the largest ``seq`` stored under ``root`` (0 for an empty root), from file footers."""
    return max(max_seq_by_stream(root).values(), default=-1) + 1
