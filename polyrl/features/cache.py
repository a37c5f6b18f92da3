"""The per-day feature cache: the market part of every observation, computed once.

Market features and order books do not depend on what the agent does, so a replay of a
recording day through the FeatureEngine is stored and reused by every backtest and by
training. A cache entry is keyed by the day's recording content (a digest of its files'
bytes, and of the warm-up hour before it and the hour after it), the feature set and its
version, the quality flags the engine skips (:data:`~polyrl.features.flags.SKIP_MASK`), the
assets, the tick interval, the fill latency and the book depth: change any of them and the
entry is rebuilt.

Building a day: the last hour of the previous day (when recorded) warms the engine up
without ticks; every decision tick of the day is observed; the first hour of the next day
is read for resolutions and reference ticks only, so the day's last windows get their
outcome. The windows table records each window's outcome as the Engine will use it:
the recorded resolution if it arrived within ``resolution_timeout_s`` of the window's end,
else the verdict of the window's own reference feed (``reference_feed``: the Chainlink TWAP
its market config names, else the instantaneous price; Up iff the tick stamped at the end >=
the tick stamped at the start, ticks received by end + timeout), flagged ``outcome_source =
"reference"`` and ``reference_stale`` when a boundary tick was older than ``[features]
reference_max_age_s``. A window whose own feed has no ticks while another feed has is left
without an outcome and flagged ``reference_mismatch``.

Arrays (``.npy``, memory-mapped on load) — T ticks, M markets, F market features, L levels:
``ticks`` int64 [T]; ``features`` float32 [T, M, F]; ``ready``, ``tradable`` bool [T, M];
``window`` int32 [T, M]; ``top_px``/``top_size`` float64 [T, M, 2, 2] (best level at the
tick: position PnL); ``fill_px``/``fill_size`` float64 [T, M, 2, 2, L] (books at tick +
latency: fills; the entry's own are at latency 0, a sidecar's at its latency).
``windows.parquet`` and ``meta.json`` complete it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePath, PurePosixPath

import numpy as np
import polars as pl

from polyrl.clock import ReplayClock
from polyrl.errors import RecordingError, StorageError
from polyrl.events import NS_PER_S, iso_to_ns
from polyrl.features.engine import FeatureConfig, FeatureEngine, ObsBatch
from polyrl.features.fills import FillBooks
from polyrl.features.flags import SKIP_MASK
from polyrl.features.markets import LOG_STREAMS, Window
from polyrl.features.sets import FEATURE_CODE_VERSION, feature_set
from polyrl.recording.reader import RecordingReader, list_partitions
from polyrl.storage import CACHE_DIR_VAR, Location, is_uri, locate, storage_error

CACHE_DIR = ".cache"
CACHE_FORMAT = 2
_ARRAYS = ("ticks", "features", "ready", "tradable", "window", "top_px", "top_size",
           "fill_px", "fill_size")  # fmt: skip
HOUR_NS = 3600 * NS_PER_S


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaySpec:
    """Everything a cache entry depends on besides the recording itself."""

    assets: tuple[str, ...]
    features: FeatureConfig
    tick_ns: int
    fill_latency_ns: int
    """Which fill books :func:`load_or_build` returns (not part of the key)."""
    resolution_timeout_s: float

    def key_parts(self) -> dict[str, object]:
        fs = feature_set(self.features.feature_set)
        return {
            "format": CACHE_FORMAT,
            "feature_code": FEATURE_CODE_VERSION,
            "feature_set": fs.name,
            "feature_set_version": fs.version,
            # Which flagged rows the engine skips: an entry built under another policy (or
            # before rows had flags) must not be reused for a recording that has them.
            "skip_flags": SKIP_MASK,
            "features": asdict(self.features),
            "assets": list(self.assets),
            "tick_ns": self.tick_ns,
            "resolution_timeout_s": self.resolution_timeout_s,
        }


@dataclass(slots=True)
class DayCache:
    """One day's cached observations (see the module doc for the arrays)."""

    date: str
    key: str
    path: Path
    arrays: dict[str, np.ndarray]
    windows: pl.DataFrame
    meta: dict[str, object]

    fill_latency_ns: int = 0

    @property
    def events(self) -> int:
        """Events the day's build replayed (``meta.json``'s ``events``, checked on load)."""
        return _meta_int(self.meta, "events", self.path)

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.arrays[name]
        except KeyError:
            raise AttributeError(name) from None

    def with_fills(self, lat: int, px: np.ndarray, size: np.ndarray) -> DayCache:
        """The same day with the fill books at latency ``lat``."""
        arrays = {**self.arrays, "fill_px": px, "fill_size": size}
        return DayCache(self.date, self.key, self.path, arrays, self.windows, self.meta, lat)


def _file_digest(path: PurePath, memo: dict[str, list[object]], loc: Location) -> str:
    """blake2b of a file's bytes, memoised by (size, mtime): on an object store the mtime is
    the object's last-modified time, which changes whenever the object is written again."""
    if loc.is_local:
        st = Path(path).stat()
        size, mtime, k = st.st_size, st.st_mtime_ns, str(path)
    else:
        k = loc.show(str(path))
        try:
            info = loc.fs.get_file_info(str(path))
        except OSError as e:
            raise storage_error(k, e) from None
        size, mtime = info.size, info.mtime_ns
    hit = memo.get(k)
    if hit is not None and hit[0] == size and hit[1] == mtime and mtime is not None:
        return str(hit[2])
    h = hashlib.blake2b(digest_size=16)
    try:
        with loc.fs.open_input_stream(str(path)) as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    except OSError as e:
        if loc.is_local:
            raise
        raise storage_error(k, e) from None
    d = h.hexdigest()
    memo[k] = [size, mtime, d]
    return d


def recording_digest(
    root: Path | str | Location, files: Sequence[PurePath], memo_path: Path | None = None
) -> str:
    """A digest of the recording files' names (relative to ``root``) and bytes, memoised by
    size and mtime: the same files give the same digest wherever they lie (a local copy, an
    object store), so a cache built on one machine is valid on another."""
    loc = locate(root)
    memo: dict[str, list[object]] = {}
    if memo_path is not None and memo_path.exists():
        try:
            memo = json.loads(memo_path.read_text())
        except ValueError:
            memo = {}
    base = Path(loc.path) if loc.is_local else PurePosixPath(loc.path)
    h = hashlib.blake2b(digest_size=16)
    named = sorted(((f.relative_to(base), f) for f in files), key=lambda rf: rf[0].parts)
    for rel, f in named:  # in path order, as PurePath sorts
        h.update(str(rel).encode())
        h.update(_file_digest(f, memo, loc).encode())
    if memo_path is not None:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_suffix(f".{os.getpid()}.tmp")  # builders in parallel: one each
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, memo_path)
    return h.hexdigest()


def cache_dir(root: Path | str | Location) -> Path:
    """Where a recording's day caches live: ``<root>/.cache`` for a local recording; for
    one on an object store a local folder, ``POLYRL_CACHE_DIR`` when set, else
    ``~/.cache/polyrl`` (entries are keyed by content, so recordings may share it)."""
    loc = locate(root)
    if loc.is_local:
        return Path(loc.path) / CACHE_DIR
    return Path(os.environ.get(CACHE_DIR_VAR) or "~/.cache/polyrl").expanduser()


def _day_bounds(date: str) -> tuple[int, int]:
    start = iso_to_ns(f"{date}T00:00:00Z")
    return start, start + 24 * HOUR_NS


def _neighbour(date: str, days: int) -> str:
    d = _dt.date.fromisoformat(date) + _dt.timedelta(days=days)
    return d.isoformat()


def _day_files(
    root: Path | str | Location, date: str, hours: set[int] | None = None
) -> list[PurePath]:
    try:
        parts = list_partitions(root, date)
    except StorageError:
        raise
    except RecordingError:
        return []
    return [f for p in parts if hours is None or p.hour in hours for f in p.files]


def cache_key(root: Path | str | Location, date: str, spec: ReplaySpec) -> tuple[str, str]:
    """(key, recording digest) of one day under ``root`` for ``spec``."""
    loc = locate(root)
    memo = cache_dir(loc) / "digests.json"
    files = (
        _day_files(loc, _neighbour(date, -1), {23})
        + _day_files(loc, date)
        + _day_files(loc, _neighbour(date, 1), {0})
    )
    if not _day_files(loc, date):
        raise RecordingError(f"no recording for {date} under {loc.uri}")
    digest = recording_digest(loc, files, memo)
    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps(spec.key_parts(), sort_keys=True).encode())
    h.update(digest.encode())
    return h.hexdigest(), digest


def recording_days(root: Path | str | Location, dates: str | Sequence[str]) -> list[str]:
    """The recording days under ``root`` matching the date glob(s), in order."""
    return sorted({p.date for p in list_partitions(root, dates)})


def build_day(
    root: Path | str | Location,
    date: str,
    spec: ReplaySpec,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, np.ndarray], list[Window], dict[str, object]]:
    """Replay one day through the FeatureEngine (see the module doc)."""
    day0, day1 = _day_bounds(date)
    fe = FeatureEngine(spec.assets, spec.features)
    chunks: list[ObsBatch] = []
    events = 0
    prev = _neighbour(date, -1)
    if _day_files(root, prev, {23}):
        warm = RecordingReader(root, dates=prev)
        for b in warm.hour_batches(prev, 23):
            fe.ingest(b)
            events += len(b)
    reader = RecordingReader(root, dates=date)
    hours = reader.hours()
    clock = ReplayClock(spec.tick_ns)
    first = None

    # Drive over the day's hours in order, ticking within the day only.
    def day_batches():
        for d, h in hours:
            yield from reader.hour_batches(d, h)
            if progress is not None:
                progress(h + 1, 24)

    for batch, ticks in clock.drive(day_batches()):
        fe.ingest(batch)
        events += len(batch)
        if first is None:
            first = int(batch.recv_ns[0])
        ticks = ticks[(ticks >= day0) & (ticks < day1)]
        if ticks.shape[0]:
            chunks.append(fe.observe_many(ticks))
    # Outcomes that arrive after midnight: read the next day's first hour (resolutions and
    # reference ticks only) without ticking.
    nxt = _neighbour(date, 1)
    tail_streams = ["polymarket.resolution", "reference.price", "polymarket.market"]
    if _day_files(root, nxt, {0}):
        try:
            tail = RecordingReader(
                root, dates=nxt, streams=[s for s in tail_streams if _has_stream(root, s)]
            )
            for b in tail.hour_batches(nxt, 0):
                fe.ingest(b)
        except RecordingError:
            pass
    if not chunks:
        raise RecordingError(f"{date}: no decision ticks (no events under {root})")
    arrays = _stack(chunks)
    windows = fe.finalize_outcomes(day1 + HOUR_NS, int(spec.resolution_timeout_s * NS_PER_S))
    meta: dict[str, object] = {
        "date": date,
        "events": events,
        "ticks": int(arrays["ticks"].shape[0]),
    }
    return arrays, windows, meta


def _stack(chunks: list[ObsBatch]) -> dict[str, np.ndarray]:
    return {
        "ticks": np.concatenate([c.ticks for c in chunks]),
        "features": np.concatenate([c.features for c in chunks]),
        "ready": np.concatenate([c.ready for c in chunks]),
        "tradable": np.concatenate([c.tradable for c in chunks]),
        "window": np.concatenate([c.window for c in chunks]),
        "top_px": np.concatenate([c.book_px[..., 0] for c in chunks]),
        "top_size": np.concatenate([c.book_size[..., 0] for c in chunks]),
        "fill_px": np.concatenate([c.fill_px for c in chunks]),
        "fill_size": np.concatenate([c.fill_size for c in chunks]),
    }


def windows_frame(windows: Sequence[Window]) -> pl.DataFrame:
    """The windows table (one row per window, in index order)."""
    rows = [asdict(w) for w in windows]
    schema = {
        "index": pl.Int32, "asset": pl.String, "slot": pl.Int32, "condition_id": pl.String,
        "slug": pl.String, "up_token": pl.String, "down_token": pl.String,
        "start_ns": pl.Int64, "end_ns": pl.Int64, "known_ns": pl.Int64,
        "tick_size": pl.Float64, "min_size": pl.Float64, "fees_enabled": pl.Boolean,
        "fee_rate": pl.Float64, "fee_exponent": pl.Float64, "outcome": pl.String,
        "outcome_source": pl.String, "outcome_ns": pl.Int64, "gap": pl.Boolean,
        "fee_schedule_assumed": pl.Boolean, "reference_feed": pl.String,
        "reference_mismatch": pl.Boolean, "reference_stale": pl.Boolean,
    }  # fmt: skip
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def load_or_build(
    root: Path | str | Location,
    date: str,
    spec: ReplaySpec,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> DayCache:
    """The day's cache entry with fills at ``spec.fill_latency_ns``, building (and storing)
    the entry and the latency's sidecar first if needed."""
    return load_or_build_latencies(root, date, spec, [spec.fill_latency_ns], progress=progress)[
        spec.fill_latency_ns
    ]


def load_or_build_latencies(
    root: Path | str | Location,
    date: str,
    spec: ReplaySpec,
    latencies_ns: Sequence[int],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[int, DayCache]:
    """The day's entry once per latency (fill books at that latency); the feature entry is
    built at most once and the missing sidecars in one pass over the market log. ``root``:
    a directory, a URI or a :class:`~polyrl.storage.Location` (see :func:`cache_dir`)."""
    root = locate(root) if isinstance(root, Location) or is_uri(root) else Path(root)
    base = _load_or_build_base(root, date, spec, progress=progress)
    want = sorted({int(x) for x in latencies_ns if int(x) != 0})
    missing = [lat for lat in want if not (base.path / _fills_dir(lat) / "done").exists()]
    if missing:
        built = build_fills(root, date, spec, base, missing)
        for lat, (px, size) in built.items():
            d = base.path / _fills_dir(lat)
            tmp = d.with_name(f".{d.name}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            np.save(tmp / "fill_px.npy", px, allow_pickle=False)
            np.save(tmp / "fill_size.npy", size, allow_pickle=False)
            (tmp / "done").write_text("")
            shutil.rmtree(d, ignore_errors=True)
            os.replace(tmp, d)
    out = {}
    for lat in {int(x) for x in latencies_ns}:
        if lat == 0:
            out[lat] = base
            continue
        d = base.path / _fills_dir(lat)
        px = np.load(d / "fill_px.npy", mmap_mode="r", allow_pickle=False)
        size = np.load(d / "fill_size.npy", mmap_mode="r", allow_pickle=False)
        out[lat] = base.with_fills(lat, px, size)
    return out


def _fills_dir(lat: int) -> str:
    return f"fills-{lat}"


def build_fills(
    root: Path | str | Location,
    date: str,
    spec: ReplaySpec,
    base: DayCache,
    latencies_ns: Sequence[int],
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The fill books at every tick of ``base`` + each latency: the warm-up hour, the day and
    the next day's first hour of the market log only, each tick taken once every event up to
    tick + latency is in (so batching never changes a book)."""
    streams = [s for s in LOG_STREAMS if _has_stream(root, s)]
    fb = FillBooks(spec.assets, latencies_ns, spec.features.book_levels)
    ticks = np.asarray(base.arrays["ticks"])
    window = np.asarray(base.arrays["window"])
    wins = base.windows
    toks = list(zip(wins["up_token"].to_list(), wins["down_token"].to_list(), strict=True))
    pairs = [[toks[w] if w >= 0 else None for w in row] for row in window.tolist()]
    out: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {
        lat: ([], []) for lat in latencies_ns
    }
    done = dict.fromkeys(latencies_ns, 0)

    def batches():
        prev, nxt = _neighbour(date, -1), _neighbour(date, 1)
        if _day_files(root, prev, {23}):
            yield from RecordingReader(root, dates=prev, streams=streams).hour_batches(prev, 23)
        reader = RecordingReader(root, dates=date, streams=streams)
        for d, h in reader.hours():
            yield from reader.hour_batches(d, h)
        if _day_files(root, nxt, {0}):
            try:
                tail = RecordingReader(root, dates=nxt, streams=streams)
                yield from tail.hour_batches(nxt, 0)
            except RecordingError:
                return

    def take(lat: int, upto: int) -> None:
        k0 = done[lat]
        k1 = int(np.searchsorted(ticks, upto - lat, side="right"))
        if k1 > k0:
            px, size = fb.observe(lat, ticks[k0:k1], pairs[k0:k1])
            out[lat][0].append(px)
            out[lat][1].append(size)
            done[lat] = k1

    it = iter(batches())
    cur = next(it, None)
    while cur is not None:
        nxt = next(it, None)
        fb.ingest(cur)
        if nxt is not None and len(nxt):
            for lat in latencies_ns:
                take(lat, int(nxt.recv_ns[0]) - 1)
        cur = nxt
    for lat in latencies_ns:
        take(lat, int(ticks[-1]) + lat)
    return {lat: (np.concatenate(p), np.concatenate(s)) for lat, (p, s) in out.items()}


def _load_or_build_base(
    root: Path | Location,
    date: str,
    spec: ReplaySpec,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> DayCache:
    key, digest = cache_key(root, date, spec)
    path = cache_dir(root) / "features" / date / key
    if (path / "meta.json").exists():
        try:
            return _load(path, date, key)
        except (OSError, ValueError, KeyError):
            shutil.rmtree(path, ignore_errors=True)
    arrays, windows, meta = build_day(root, date, spec, progress=progress)
    meta.update({"key": key, "recording_digest": digest, **spec.key_parts()})
    tmp = path.with_name(f".{key}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in _ARRAYS:
        np.save(tmp / f"{name}.npy", arrays[name], allow_pickle=False)
    windows_frame(windows).write_parquet(tmp / "windows.parquet")
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return _load(path, date, key)


def _has_stream(root: Path | str | Location, stream: str) -> bool:
    return locate(root).child(stream).is_dir()


def _load(path: Path, date: str, key: str) -> DayCache:
    arrays = {n: np.load(path / f"{n}.npy", mmap_mode="r", allow_pickle=False) for n in _ARRAYS}
    meta = json.loads((path / "meta.json").read_text())
    if not isinstance(meta, dict):
        raise ValueError(f"{path / 'meta.json'}: not a JSON object")
    _meta_int(meta, "events", path)  # checked now: an entry without it is rebuilt, not trusted
    return DayCache(date, key, path, arrays, pl.read_parquet(path / "windows.parquet"), meta)


def _meta_int(meta: dict[str, object], name: str, path: Path) -> int:
    v = meta.get(name)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{path / 'meta.json'}: {name} is {v!r}, not an integer")
    return v
