"""RecordingReader: select partitions by date glob and stream, merge them in ``(recv_ns, seq)``.

The reader works one hour at a time (partitions are cut by the hour of ``recv_ns``, so hours
never interleave): it reads the hour's files of every selected stream, checks each file
against its stream's schema, sorts, and hands out :class:`MergedBatch` objects — columnar,
for speed — whose rows, taken in order, are the total order ``(recv_ns, seq)`` across all
streams. :meth:`RecordingReader.events` gives the same order one :class:`Event` at a time.
Memory is bounded by one hour of the selected columns, never a whole day.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from polyrl.errors import RecordingError, SchemaMismatch
from polyrl.events import Event
from polyrl.recording.columns import StreamCols
from polyrl.recording.files import visible_names
from polyrl.recording.schema import ABSENT_VALUES, ARROW_SCHEMAS, STREAM_IDS, spec
from polyrl.recording.tables import build_table
from polyrl.storage import Location, locate, object_uri, storage_error

COMMON = ("recv_ns", "seq", "exch_ns", "key", "asset", "quality")
FETCH_THREADS = 16
"""Files of one hour fetched at once from an object store."""


@dataclass(frozen=True, slots=True)
class Partition:
    """One stream-hour directory and its visible Parquet files (in seq order).

    ``fs``: the object store the files lie in (their paths are then ``bucket/key``, read
    through it); ``None`` for local disk, where ``files`` are real paths."""

    stream: str
    date: str
    hour: int
    files: tuple[PurePath, ...]
    fs: pafs.FileSystem | None = None


@dataclass(frozen=True, slots=True)
class MergedBatch:
    """A run of events in the total order ``(recv_ns, seq)``, columnar.

    ``stream_code[i]`` indexes ``streams``; the rows of stream ``s`` in this batch are
    ``tables[s]`` in order, so the k-th event of stream ``s`` in the batch is row k of
    ``tables[s]``. Arrays have shape ``[n]``.
    """

    streams: tuple[str, ...]
    stream_code: np.ndarray
    recv_ns: np.ndarray
    seq: np.ndarray
    tables: Mapping[str, pl.DataFrame]
    live: Mapping[str, Sequence[Event]] | None = None
    """For a batch built from live events: each stream's events (``tables`` is then empty
    until asked for); the feature engine reads them without building frames."""

    def __len__(self) -> int:
        return int(self.recv_ns.shape[0])

    @classmethod
    def from_events(cls, events: Sequence[Event], *, frames: bool = False) -> MergedBatch:
        """A batch of events already in ``(recv_ns, seq)`` order (live mode's per-tick batch).

        The feature engine reads the events directly (cheap: a live tick is short); with
        ``frames=True`` the per-stream polars frames are built too, with exactly the columns
        and types a RecordingReader batch has (without ``raw``).
        """
        streams = tuple(sorted({e.stream for e in events}))
        code = {s: i for i, s in enumerate(streams)}
        by: dict[str, list[Event]] = {s: [] for s in streams}
        for e in events:
            by[e.stream].append(e)
        tables: dict[str, pl.DataFrame] = {}
        if frames:
            for s, evs in by.items():
                names = ARROW_SCHEMAS[s].names
                c: dict[str, list[Any]] = {n: [] for n in names}
                for e in evs:
                    c["recv_ns"].append(e.recv_ns)
                    c["seq"].append(e.seq)
                    c["exch_ns"].append(e.exch_ns)
                    c["key"].append(e.key)
                    c["asset"].append(e.asset)
                    c["quality"].append(e.quality)
                    c["raw"].append("")
                    for k, v in e.fields.items():
                        c[k].append(v)
                df = pl.from_arrow(build_table(s, c).drop_columns(["raw"]))
                assert isinstance(df, pl.DataFrame)
                tables[s] = df
        return cls(
            streams=streams,
            stream_code=np.array([code[e.stream] for e in events], dtype=np.uint8),
            recv_ns=np.array([e.recv_ns for e in events], dtype=np.int64),
            seq=np.array([e.seq for e in events], dtype=np.int64),
            tables=tables,
            live=by,
        )

    @property
    def columns(self) -> dict[str, Any]:
        """Each stream's rows as :class:`~polyrl.recording.columns.StreamCols`."""
        if self.live is not None:
            return {s: StreamCols.of_events(evs) for s, evs in self.live.items()}
        return {s: StreamCols.of_frame(t) for s, t in self.tables.items()}

    def slice(self, a: int, b: int | None = None) -> MergedBatch:
        """Events ``a`` to ``b`` (exclusive) of the merged order, as a batch."""
        n = len(self)
        b = n if b is None else min(b, n)
        a = max(0, min(a, b))
        before = np.bincount(self.stream_code[:a], minlength=len(self.streams))
        inside = np.bincount(self.stream_code[a:b], minlength=len(self.streams))
        tables = {}
        for s, t in self.tables.items():
            i = self.streams.index(s)
            if inside[i]:
                tables[s] = t.slice(int(before[i]), int(inside[i]))
        live = None
        if self.live is not None:
            live = {}
            for s, evs in self.live.items():
                i = self.streams.index(s)
                if inside[i]:
                    live[s] = evs[int(before[i]) : int(before[i]) + int(inside[i])]
        return MergedBatch(self.streams, self.stream_code[a:b], self.recv_ns[a:b],
                           self.seq[a:b], tables, live)  # fmt: skip

    def events(self) -> Iterator[Event]:
        """The batch's events one by one, in merged order (convenient, not fast)."""
        cols: dict[str, dict[str, list]] = {
            s: t.to_dict(as_series=False) for s, t in self.tables.items()
        }
        fields = {s: [c for c in cols[s] if c not in COMMON and c != "raw"] for s in cols}
        cursor = dict.fromkeys(self.tables, 0)
        for code in self.stream_code.tolist():
            s = self.streams[code]
            i = cursor[s]
            cursor[s] = i + 1
            c = cols[s]
            yield Event(
                stream=s,
                recv_ns=c["recv_ns"][i],
                seq=c["seq"][i],
                exch_ns=c["exch_ns"][i],
                key=c["key"][i],
                asset=c["asset"][i],
                fields={f: c[f][i] for f in fields[s]},
                raw=c["raw"][i] if "raw" in c else "",
                quality=c["quality"][i] if "quality" in c else 0,
            )


def list_partitions(
    root: Path | str | Location,
    dates: str | Sequence[str] = "*",
    streams: Sequence[str] | None = None,
) -> list[Partition]:
    """Partitions under ``root`` (a path, a URI or a :class:`~polyrl.storage.Location`) whose
    date matches any glob in ``dates`` (``2024-06-*``).

    Pruning is by listing: a stream's keys are listed under ``date=<d>/`` for each literal
    date, or under the stream for a glob, and no file is opened. Errors: a missing root, an
    unknown stream, or no partition matching the globs — each a :class:`RecordingError`
    naming the globs and the root (a :class:`~polyrl.errors.StorageError` for an object
    store that refuses).
    """
    loc = locate(root)
    if not loc.is_dir():
        raise RecordingError(f"recording root {loc.uri} does not exist or is not a directory")
    globs = [dates] if isinstance(dates, str) else list(dates)
    if streams is None:
        wanted = [n for n in loc.subdirs() if n in STREAM_IDS]
    else:
        for s in streams:
            spec(s)
        wanted = list(streams)
    literal = not any(ch in g for g in globs for ch in "*?[")
    fs = None if loc.is_local else loc.fs
    parts: list[Partition] = []
    for stream in wanted:
        under = [f"date={g}" for g in sorted(set(globs))] if literal else [""]
        found: dict[tuple[str, int, str], list[str]] = {}
        for sub in under:
            for info in _files_below(loc.child(stream, sub) if sub else loc.child(stream)):
                hdir, _, name = info.path.rpartition("/")
                ddir, _, hname = hdir.rpartition("/")
                dname = ddir.rpartition("/")[2]
                if not (dname.startswith("date=") and hname.startswith("hour=")):
                    continue
                date = dname[5:]
                try:
                    hour = int(hname[5:])
                except ValueError:
                    continue
                if any(fnmatch.fnmatchcase(date, g) for g in globs):
                    found.setdefault((date, hour, hdir), []).append(name)
        for (date, hour, hdir), names in sorted(found.items()):
            files = tuple(loc.file(f"{hdir}/{n}") for n in visible_names(names))
            if files:
                parts.append(Partition(stream, date, hour, files, fs))
    if not parts:
        which = ", ".join(globs)
        what = f" for streams {', '.join(wanted)}" if streams is not None else ""
        raise RecordingError(f"no partition matches dates {which!r}{what} under {loc.uri}")
    return parts


def _files_below(loc: Location) -> list[pafs.FileInfo]:
    """Every file below ``loc`` (one recursive listing; none when it does not exist)."""
    sel = pafs.FileSelector(loc.path, allow_not_found=True, recursive=True)
    try:
        infos = loc.fs.get_file_info(sel)
    except OSError as e:
        raise storage_error(loc.uri, e) from None
    return [i for i in infos if i.type == pafs.FileType.File]


def read_file(
    path: PurePath, stream: str, columns: Sequence[str] | None, fs: pafs.FileSystem | None = None
) -> pa.Table:
    """One Parquet file of ``stream`` checked against the stream's schema.

    ``columns=None`` reads every column. A nullable column missing from the file (written
    before the schema grew) reads as nulls, a column of
    :data:`~polyrl.recording.schema.ABSENT_VALUES` as its value there; a wrong type or another
    missing required column is a :class:`SchemaMismatch` naming stream, column and file; an
    unreadable file is a :class:`RecordingError` naming it. ``fs``: the object store ``path``
    lies in (``None``: local disk); there only the footer and the wanted columns' byte ranges
    are fetched, and a connection that fails or stalls past the ``[storage]`` timeouts is a
    :class:`~polyrl.errors.StorageError` naming the object.
    """
    expected = ARROW_SCHEMAS[stream]
    want = list(expected.names) if columns is None else list(columns)
    shown = str(path) if fs is None else object_uri(fs, str(path))
    try:
        if fs is None:
            pf = pq.ParquetFile(path)
        else:
            pf = pq.ParquetFile(fs.open_input_file(str(path)), pre_buffer=True)
        found = pf.schema_arrow
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for bad files
        raise _unreadable(shown, e, fs) from None
    present = []
    for name in want:
        idx = expected.get_field_index(name)
        if idx < 0:
            raise SchemaMismatch(f"{stream}: no column {name!r} in the schema (reading {shown})")
        fld = expected.field(idx)
        fidx = found.get_field_index(name)
        if fidx < 0:
            if not fld.nullable and name not in ABSENT_VALUES:
                raise SchemaMismatch(f"{stream}: column {name!r} missing from {shown}")
            continue
        if not _compatible(found.field(fidx).type, fld.type):
            raise SchemaMismatch(
                f"{stream}: column {name!r} is {found.field(fidx).type} in {shown}, "
                f"expected {fld.type}"
            )
        present.append(name)
    try:
        table = pf.read(columns=present, use_threads=True)
    except Exception as e:  # noqa: BLE001
        raise _unreadable(shown, e, fs) from None
    if any(not table.schema.field(n).type.equals(expected.field(n).type) for n in present):
        # Same logical type, other physical one (e.g. large_string from another writer).
        table = table.cast(pa.schema([expected.field(n) for n in present]))
    if len(present) != len(want):
        n = table.num_rows
        cols = []
        for name in want:
            if name in present:
                cols.append(table.column(name))
            elif name in ABSENT_VALUES:
                t = expected.field(name).type
                cols.append(pa.repeat(pa.scalar(ABSENT_VALUES[name], type=t), n))
            else:
                cols.append(pa.nulls(n, type=expected.field(name).type))
        table = pa.Table.from_arrays(cols, schema=pa.schema([expected.field(n) for n in want]))
    return table


def _unreadable(shown: str, e: Exception, fs: pafs.FileSystem | None) -> RecordingError:
    """A failed read: on an object store an I/O error is the store's (a StorageError)."""
    if fs is not None and isinstance(e, OSError):
        return storage_error(shown, e)
    return RecordingError(f"unreadable recording file {shown}: {e}")


def read_frame(
    path: PurePath, stream: str, columns: Sequence[str] | None, fs: pafs.FileSystem | None = None
) -> pl.DataFrame:
    """:func:`read_file` as a polars frame."""
    df = pl.from_arrow(read_file(path, stream, columns, fs))
    if not isinstance(df, pl.DataFrame):  # from_arrow gives a Series only for an Arrow array
        raise TypeError(f"{path}: read as {type(df).__name__}, not a table")
    return df


def _compatible(found: pa.DataType, want: pa.DataType) -> bool:
    """Equal, or the same logical type in another width (large_string, large_list, view)."""
    if found.equals(want):
        return True
    if pa.types.is_string(want):
        return pa.types.is_large_string(found) or pa.types.is_string_view(found)
    if pa.types.is_list(want):
        return (pa.types.is_large_list(found) or pa.types.is_list(found)) and _compatible(
            found.value_type, want.value_type
        )
    return False


def _columns_for(
    stream: str, columns: Mapping[str, Sequence[str]] | Sequence[str] | None, raw: bool
) -> list[str]:
    names = list(ARROW_SCHEMAS[stream].names)
    if columns is None:
        chosen = names
    elif isinstance(columns, Mapping):
        extra = columns.get(stream)
        chosen = names if extra is None else [*COMMON, *[c for c in extra if c not in COMMON]]
    else:
        chosen = [*COMMON, *[c for c in columns if c in names and c not in COMMON]]
    if not raw:
        chosen = [c for c in chosen if c != "raw"]
    elif "raw" not in chosen:
        chosen.append("raw")
    return chosen


class RecordingReader:
    """Reads a recording root: partitions by date glob and stream, merged in ``(recv_ns, seq)``.

    ``root``: a directory, a URI (``s3://bucket/prefix``, ``gs://``, ``file://``) or a
    :class:`~polyrl.storage.Location` (one built with a ``[storage]`` config's endpoint).

    ``columns``: ``None`` for every typed column; a list of field names (applied to every
    stream that has them); or ``{stream: [fields]}``. The common columns are always read.
    ``raw=True`` also reads the raw frame text (slower and larger).
    """

    def __init__(
        self,
        root: Path | str | Location,
        *,
        dates: str | Sequence[str] = "*",
        streams: Sequence[str] | None = None,
        columns: Mapping[str, Sequence[str]] | Sequence[str] | None = None,
        raw: bool = False,
    ) -> None:
        self.location = locate(root)
        self.root: Path | str = (
            Path(self.location.path) if self.location.is_local else self.location.uri
        )
        """The root as given (a path), or the store's URI."""
        self.dates = dates
        self.partitions = list_partitions(self.location, dates, streams)
        self.streams: tuple[str, ...] = tuple(sorted({p.stream for p in self.partitions}))
        self._codes = {s: i for i, s in enumerate(self.streams)}
        self._columns = {s: _columns_for(s, columns, raw) for s in self.streams}

    def hours(self) -> list[tuple[str, int]]:
        """The (date, hour) partitions selected, in time order."""
        return sorted({(p.date, p.hour) for p in self.partitions})

    def read_hour(self, date: str, hour: int) -> dict[str, pl.DataFrame]:
        """Every selected stream's rows of one hour, each sorted by ``(recv_ns, seq)``."""
        out: dict[str, pl.DataFrame] = {}
        parts = [p for p in self.partitions if p.date == date and p.hour == hour]
        fetched = self._fetch([(f, p.stream, p.fs) for p in parts for f in p.files])
        for p in parts:
            tables = [fetched[(str(f), p.stream)] for f in p.files]
            table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
            df = pl.from_arrow(table)
            assert isinstance(df, pl.DataFrame)
            out[p.stream] = _sorted(df)
        return out

    def _fetch(
        self, jobs: list[tuple[PurePath, str, pafs.FileSystem | None]]
    ) -> dict[tuple[str, str], pa.Table]:
        """Each (file, stream) read; from an object store several at once (each request
        waits on the network, not the CPU), from local disk one after another."""

        def one(job: tuple[PurePath, str, pafs.FileSystem | None]) -> pa.Table:
            f, stream, fs = job
            return read_file(f, stream, self._columns[stream], fs)

        remote = any(fs is not None for _, _, fs in jobs)
        if remote and len(jobs) > 1:
            with ThreadPoolExecutor(max_workers=min(FETCH_THREADS, len(jobs))) as pool:
                tables = list(pool.map(one, jobs))
        else:
            tables = [one(j) for j in jobs]
        return {(str(f), s): t for (f, s, _), t in zip(jobs, tables, strict=True)}

    def read_stream(self, stream: str) -> pl.DataFrame:
        """One stream's selected rows across all selected hours, sorted (for analysis)."""
        frames = [
            read_frame(f, p.stream, self._columns[p.stream], p.fs)
            for p in self.partitions
            if p.stream == stream
            for f in p.files
        ]
        if not frames:
            raise RecordingError(f"no {stream} rows for dates {self.dates!r} under {self.root}")
        return _sorted(pl.concat(frames, how="vertical"))

    def batches(self, batch_size: int = 65_536) -> Iterator[MergedBatch]:
        """The whole selection as merged columnar batches of at most ``batch_size`` events.
        From an object store the next hour is fetched while this one is merged and used (so
        at most two hours are in memory)."""
        hours = self.hours()
        if self.location.is_local or len(hours) < 2:
            for date, hour in hours:
                yield from self.hour_batches(date, hour, batch_size)
            return
        with ThreadPoolExecutor(max_workers=1) as ahead:
            nxt = ahead.submit(self.read_hour, *hours[0])
            for i in range(len(hours)):
                frames = nxt.result()
                if i + 1 < len(hours):
                    nxt = ahead.submit(self.read_hour, *hours[i + 1])
                yield from self._merge(frames, batch_size)

    def hour_batches(self, date: str, hour: int, batch_size: int = 65_536) -> Iterator[MergedBatch]:
        """One hour partition's events as merged columnar batches."""
        yield from self._merge(self.read_hour(date, hour), batch_size)

    def events(self) -> Iterator[Event]:
        """The whole selection one event at a time, in ``(recv_ns, seq)`` order."""
        for batch in self.batches():
            yield from batch.events()

    def _merge(self, frames: dict[str, pl.DataFrame], batch_size: int) -> Iterator[MergedBatch]:
        if not frames:
            return
        names = list(frames)
        codes = np.concatenate(
            [np.full(frames[s].height, self._codes[s], dtype=np.uint8) for s in names]
        )
        recv = np.concatenate([frames[s]["recv_ns"].to_numpy() for s in names])
        seq = np.concatenate([frames[s]["seq"].to_numpy() for s in names])
        order = _merge_order(recv, seq)
        codes, recv, seq = codes[order], recv[order], seq[order]
        offsets = dict.fromkeys(names, 0)
        n = recv.shape[0]
        for a in range(0, n, batch_size):
            b = min(a + batch_size, n)
            c = codes[a:b]
            counts = np.bincount(c, minlength=len(self.streams))
            tables = {}
            for s in names:
                k = int(counts[self._codes[s]])
                if k:
                    tables[s] = frames[s].slice(offsets[s], k)
                    offsets[s] += k
            yield MergedBatch(self.streams, c, recv[a:b], seq[a:b], tables)


def _sorted(df: pl.DataFrame) -> pl.DataFrame:
    """Sort by (recv_ns, seq) unless already in that order (the usual case: cheap check)."""
    recv = df["recv_ns"].to_numpy()
    seq = df["seq"].to_numpy()
    if recv.shape[0] < 2:
        return df
    d_recv = np.diff(recv)
    if np.all((d_recv > 0) | ((d_recv == 0) & (np.diff(seq) > 0))):
        return df
    return df.sort(["recv_ns", "seq"])


def _merge_order(recv: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Permutation sorting rows by (recv_ns, seq); seq is unique so the order is total."""
    by_seq = np.argsort(seq, kind="stable")
    r = recv[by_seq]
    if r.shape[0] < 2 or bool(np.all(np.diff(r) >= 0)):
        # The usual case: receive times never step back in seq order.
        return by_seq
    return np.lexsort((seq, recv))
