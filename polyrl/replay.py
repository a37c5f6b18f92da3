"""Replay recordings through the Engine: the days' cached observations, tick by tick.

``replay_engine`` selects the recording days matching a date glob, loads (or builds) each
day's feature cache, and steps the Engine over every decision tick of every day in order
with one policy, writing a run. It is what ``polyrl backtest`` and ``polyrl parity`` run.

Before any day is built, :func:`check_streams` refuses days that lack a stream the feature
set needs (a listing of the partitions, no data read): ``load_days`` and
``load_days_latencies`` call it, and ``polyrl train`` calls it over all its splits at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polyrl.broker import PaperBroker
from polyrl.config import Config
from polyrl.engine import Engine, TickObs
from polyrl.errors import ConfigError, RecordingError
from polyrl.features.cache import (
    DayCache,
    ReplaySpec,
    load_or_build,
    load_or_build_latencies,
    recording_days,
)
from polyrl.features.markets import Window
from polyrl.features.parallel import DayProgress, build_days, check_options
from polyrl.features.sets import feature_set
from polyrl.features.streams import SPARSE_STREAMS, refusal
from polyrl.policies.base import Policy
from polyrl.recording.provenance import day_provenance
from polyrl.recording.reader import list_partitions
from polyrl.runlog import RunLog
from polyrl.storage import Location


def replay_spec(config: Config) -> ReplaySpec:
    """What the feature cache of a replay under ``config`` depends on."""
    return ReplaySpec(
        assets=tuple(config.assets),
        features=config.features,
        tick_ns=config.engine.tick_ns,
        fill_latency_ns=config.engine.latency_ns,
        resolution_timeout_s=config.engine.resolution_timeout_s,
    )


def day_streams(root: Path | Location, dates: str | Sequence[str]) -> dict[str, set[str]]:
    """``{day: the streams it has}`` for the days matching the glob(s): those with at least
    one partition that day (directory listings, no data read; a missing root or no match is
    a RecordingError), plus the :data:`~polyrl.features.streams.SPARSE_STREAMS` on a day the
    recorder or the simulator made (or one older than provenance files, when only they
    wrote recordings): they subscribe those streams always, and a quiet day has no rows."""
    out: dict[str, set[str]] = {}
    for p in list_partitions(root, dates):
        out.setdefault(p.date, set()).add(p.stream)
    for day, streams in out.items():
        kinds = {e.get("kind") for e in day_provenance(root, day).sources}
        if not kinds or kinds & {"recorded", "simulated"}:
            streams.update(SPARSE_STREAMS)
    return out


def check_streams(root: Path | Location, dates: str | Sequence[str], config: Config) -> None:
    """Refuse, before any work, days that lack a stream the configured feature set needs:
    a :class:`RecordingError` of one line naming the missing streams, the features that
    need them, the days and the sets that would work (see
    :func:`polyrl.features.streams.refusal`). Streams a set only reads when present (the 1 m
    kline warm-up) are never required."""
    fset = feature_set(config.features.feature_set)
    msg = refusal(fset, day_streams(root, dates), str(root))
    if msg is not None:
        raise RecordingError(msg)


def load_days(
    root: Path | Location,
    dates: str | Sequence[str],
    config: Config,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    workers: int = 1,
    ray_address: str | None = None,
    days_progress: DayProgress | None = None,
) -> list[DayCache]:
    """Every selected day's cache, built where missing (errors name the glob and root).
    With ``workers`` > 1 or a ``ray_address``, the missing days are first built in parallel
    (:func:`build_missing`; ``days_progress(day, done, total)`` as each finishes) and then
    loaded."""
    check_streams(root, dates, config)
    spec = replay_spec(config)
    days = recording_days(root, dates)
    build_missing(root, days, config, workers=workers, ray_address=ray_address,
                  progress=progress, days_progress=days_progress)  # fmt: skip
    out = []
    for day in days:
        cb = (lambda h, n, d=day: progress(d, h, n)) if progress is not None else None
        out.append(load_or_build(root, day, spec, progress=cb))
    return out


def load_days_latencies(
    root: Path | Location,
    dates: str | Sequence[str],
    config: Config,
    latencies_ms: Sequence[int],
    *,
    progress: Callable[[str, int, int], None] | None = None,
    workers: int = 1,
    ray_address: str | None = None,
    days_progress: DayProgress | None = None,
) -> dict[int, list[DayCache]]:
    """``{latency_ms: every selected day's cache with fills at that latency}``: each day's
    feature entry is built at most once (it does not depend on the latency) and the fill
    books of the missing latencies in one pass over its market log (a small sidecar each).
    ``workers``, ``ray_address``, ``days_progress``: as in :func:`load_days`."""
    check_streams(root, dates, config)
    spec = replay_spec(config)
    want = [int(x) * 1_000_000 for x in latencies_ms]
    out: dict[int, list[DayCache]] = {int(x): [] for x in latencies_ms}
    days = recording_days(root, dates)
    build_missing(root, days, config, latencies_ms=latencies_ms, workers=workers,
                  ray_address=ray_address, progress=progress,
                  days_progress=days_progress)  # fmt: skip
    for day in days:
        cb = (lambda h, n, d=day: progress(d, h, n)) if progress is not None else None
        got = load_or_build_latencies(root, day, spec, want, progress=cb)
        for ms in out:
            out[ms].append(got[ms * 1_000_000])
    return out


def build_missing(
    root: Path | Location,
    days: Sequence[str],
    config: Config,
    *,
    latencies_ms: Sequence[int] | None = None,
    workers: int = 1,
    ray_address: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    days_progress: DayProgress | None = None,
) -> None:
    """The missing caches of ``days`` (fill books at the config's latency, or at each of
    ``latencies_ms``) built by ``workers`` processes or as Ray tasks on ``ray_address``
    (:func:`polyrl.features.parallel.build_days`); with one worker and no Ray, nothing (the
    days are then built one by one as they are loaded). ``progress`` sees each finished day
    as all 24 of its hours, ``days_progress(day, done, total)`` the days done."""
    check_options(workers, ray_address)
    if workers == 1 and ray_address is None:
        return
    if isinstance(root, Location):
        if not root.is_local:
            raise ConfigError(
                f"--workers/--ray: day caches are built in parallel from a recording on local "
                f"disk only; {root} is on an object store (leave both out to build its days one "
                f"by one)"
            )
        root = Path(root.path)
    check_streams(root, list(days), config)
    spec = replay_spec(config)
    lats = (
        [spec.fill_latency_ns]
        if latencies_ms is None
        else [int(x) * 1_000_000 for x in latencies_ms]
    )

    def done(day: str, k: int, n: int) -> None:
        if progress is not None:
            progress(day, 24, 24)
        if days_progress is not None:
            days_progress(day, k, n)

    build_days(root, days, spec, latencies_ns=lats, workers=workers, ray_address=ray_address,
               progress=done)  # fmt: skip


def windows_of(caches: Sequence[DayCache]) -> tuple[list[Window], list[int]]:
    """All days' windows as one list, and each day's offset into it."""
    out: list[Window] = []
    offsets = []
    for c in caches:
        offsets.append(len(out))
        for row in c.windows.iter_rows(named=True):
            row = dict(row)
            row["index"] = len(out)
            out.append(Window(**row))
    return out, offsets


def cached_outcome(w: Window, t: int) -> tuple[str, str] | None:
    """Settle rule for replay from caches: the outcome fixed at build time, once due."""
    if w.outcome is not None and w.outcome_ns is not None and w.outcome_ns <= t:
        return w.outcome, str(w.outcome_source)
    return None


def final_outcome(w: Window, t: int) -> tuple[str, str]:
    """At the end of a replay: the fixed outcome whenever it is due."""
    if w.outcome is not None:
        return w.outcome, str(w.outcome_source)
    return "missing", "missing"


@dataclass(slots=True)
class ReplayResult:
    """What a replay consumed and produced."""

    days: list[str]
    ticks: int
    events: int
    recording_digests: dict[str, str]
    engine: Engine


def tick_obs(c: DayCache, k: int, offset: int) -> TickObs:
    """Tick ``k`` of a day cache as the Engine's input (window ids made global)."""
    w = np.asarray(c.arrays["window"][k])
    return TickObs(
        t_ns=int(c.arrays["ticks"][k]),
        features=np.asarray(c.arrays["features"][k]),
        tradable=np.asarray(c.arrays["tradable"][k]),
        window=np.where(w >= 0, w + offset, -1).astype(np.int32),
        top_px=np.asarray(c.arrays["top_px"][k]),
        top_size=np.asarray(c.arrays["top_size"][k]),
        fill_px=np.asarray(c.arrays["fill_px"][k]),
        fill_size=np.asarray(c.arrays["fill_size"][k]),
    )


def replay_engine(
    caches: Sequence[DayCache],
    policy: Policy,
    config: Config,
    runlog: RunLog | None,
    *,
    progress: Callable[[int, int], None] | None = None,
    log_decisions: bool = True,
) -> ReplayResult:
    """Step the Engine over every tick of ``caches`` with ``policy``."""
    windows, offsets = windows_of(caches)
    fset = feature_set(config.features.feature_set)
    engine = Engine(
        assets=tuple(config.assets),
        fset=fset,
        policy=policy,
        broker=PaperBroker(len(config.assets), config.broker),
        windows=lambda i: windows[i],
        outcome=cached_outcome,
        runlog=runlog,
        config=config.engine,
        log_decisions=log_decisions,
    )
    total = sum(int(c.arrays["ticks"].shape[0]) for c in caches)
    done = 0
    last_t = 0
    for c, off in zip(caches, offsets, strict=True):
        T = int(c.arrays["ticks"].shape[0])
        for k in range(T):
            engine.step(tick_obs(c, k, off))
            done += 1
            if progress is not None and done % 2000 == 0:
                progress(done, total)
        if T:
            last_t = int(c.arrays["ticks"][T - 1])
    engine.finish(last_t, final_outcome=final_outcome)
    if progress is not None:
        progress(total, total)
    return ReplayResult(
        days=[c.date for c in caches],
        ticks=total,
        events=sum(c.events for c in caches),
        recording_digests={c.date: str(c.meta["recording_digest"]) for c in caches},
        engine=engine,
    )


def events_digest(result: ReplayResult) -> str:
    """One digest of the recording content a replay consumed."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    for d in sorted(result.recording_digests):
        h.update(f"{d}:{result.recording_digests[d]}".encode())
    return h.hexdigest()


def config_dict(config: Config, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The resolved config as plain values (saved into the run directory)."""
    from polyrl.config import to_dict

    out = to_dict(config)
    if extra:
        out.update(extra)
    return out
