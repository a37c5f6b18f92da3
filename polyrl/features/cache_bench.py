"""``polyrl bench cache``: cold day-cache builds of several days, one by one and in parallel.

Each measurement starts from no cache at all (the recording's ``.cache/`` removed) and times
:func:`~polyrl.features.parallel.build_days` over every day, worker start-up included (a
spawned interpreter per process; ``ray.init`` and shutdown for a local Ray). The input is a
simulated recording of ``days`` days, each its first ``hours`` hours (all four assets), made
once under the work directory and reused.
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from polyrl.config import Config
from polyrl.events import NS_PER_S, iso_to_ns
from polyrl.features.cache import CACHE_DIR, recording_days
from polyrl.features.parallel import build_days
from polyrl.recording.bench import _machine


@dataclass(slots=True)
class CacheBench:
    """Figures of one ``polyrl bench cache`` run: seconds per cold build of all the days."""

    days: int
    events: int
    seconds: dict[str, list[float]] = field(default_factory=dict)
    """``{"workers=N" or "ray local N": [seconds of each repeat]}``."""
    cpu_seconds: dict[str, list[float]] = field(default_factory=dict)
    """CPU seconds (user + system, this process and its reaped workers) of each build with
    local workers: the work done, whatever else shares the cores (not measured for Ray,
    whose workers are not this process's children)."""
    speedup: dict[str, float] = field(default_factory=dict)
    """Median seconds of ``workers=1`` over the median of each setting."""
    machine: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def ensure_days(
    work: Path, *, days: int, hours: float, seed: int, config: Config,
    progress: Callable[[str], None] | None = None,
) -> Path:  # fmt: skip
    """A recording of ``days`` days from 2024-06-01, each its first ``hours`` simulated hours
    (seed ``seed + i`` on day i): made once under ``work``, then reused."""
    from polyrl.sim.record import simulate_to_recording

    src = work / f"days-{days}x{hours:g}h-seed{seed}"
    root = src / "rec"
    if (src / "COMPLETE").exists():
        return root
    shutil.rmtree(src, ignore_errors=True)
    for i in range(days):
        day = f"2024-06-{i + 1:02d}"
        if progress is not None:
            progress(f"simulating {hours:g} h of {day} into {src} (once; reused later)")
        part = src / f"run{i}"
        start = iso_to_ns(f"{day}T00:00:00Z")
        simulate_to_recording(part, start_ns=start, end_ns=start + int(hours * 3600) * NS_PER_S,
                              seed=seed + i, config=config, by="polyrl bench")  # fmt: skip
        for stream in (p for p in part.iterdir() if p.is_dir()):
            for d in stream.iterdir():
                if d.is_dir():
                    shutil.copytree(d, root / stream.name / d.name)
                else:  # provenance/<day>.json
                    (root / stream.name).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(d, root / stream.name / d.name)
        shutil.rmtree(part)
    (src / "COMPLETE").write_text("ok")
    return root


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bench_cache(
    root: Path,
    config: Config,
    *,
    workers: Sequence[int],
    ray: bool = False,
    repeat: int = 3,
    progress: Callable[[str], None] | None = None,
) -> CacheBench:
    """Time cold builds of every day under ``root`` with each worker count (and a local Ray
    with the largest count when ``ray``), ``repeat`` times each, interleaved so a load that
    comes and goes touches every setting alike."""
    from polyrl.features.cache import load_or_build
    from polyrl.replay import replay_spec

    spec = replay_spec(config)
    days = recording_days(root, "*")
    settings: list[tuple[str, int, str | None]] = [(f"workers={w}", w, None) for w in workers]
    if ray:
        settings.append((f"ray local {max(workers)}", max(workers), "local"))
    res = CacheBench(days=len(days), events=0, machine=_machine())
    for r in range(repeat):
        for label, w, address in settings:
            shutil.rmtree(Path(root) / CACHE_DIR, ignore_errors=True)
            c0 = _cpu()
            t0 = time.perf_counter()
            build_days(root, days, spec, workers=w, ray_address=address)
            dt = time.perf_counter() - t0
            cpu = _cpu() - c0
            res.seconds.setdefault(label, []).append(dt)
            if address is None:
                res.cpu_seconds.setdefault(label, []).append(cpu)
            if progress is not None:
                progress(f"repeat {r + 1}/{repeat} {label}: {dt:.2f} s")
    res.events = sum(load_or_build(root, d, spec).events for d in days)
    base = statistics.median(res.seconds[settings[0][0]])
    res.speedup = {k: base / statistics.median(v) for k, v in res.seconds.items()}
    return res
