"""``polyrl bench replay``: replay throughput, cold (building the day cache) and warm.

- cold: one recording day through the FeatureEngine into the cache — events/s and
  decision ticks/s (all four markets per tick);
- warm: the same day's observations loaded from the cache and touched in full;
- engine: the Engine stepping every tick of the day from the cache with a baseline
  (policy + PaperBroker + run log), ticks/s.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from polyrl.config import Config
from polyrl.features.cache import CACHE_DIR, load_or_build, recording_days
from polyrl.recording.bench import _machine


@dataclass(slots=True)
class ReplayBench:
    """Figures of one ``polyrl bench replay`` run."""

    day: str
    events: int = 0
    ticks: int = 0
    cold_seconds: float = 0.0
    cold_events_per_s: float = 0.0
    cold_ticks_per_s: float = 0.0
    warm_seconds: float = 0.0
    engine_ticks_per_s: float = 0.0
    machine: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def bench_replay(
    root: Path, config: Config, *, day: str | None = None, strategy: str = "momentum"
) -> ReplayBench:
    """Measure on ``day`` (default: the first full day) of the recording under ``root``."""
    from polyrl.features.sets import feature_set
    from polyrl.policies.baselines import make_baseline
    from polyrl.replay import replay_engine, replay_spec

    days = recording_days(root, "*")
    d = day or days[0]
    spec = replay_spec(config)
    shutil.rmtree(Path(root) / CACHE_DIR / "features" / d, ignore_errors=True)
    res = ReplayBench(day=d, machine=_machine())
    t0 = time.perf_counter()
    cache = load_or_build(root, d, spec)
    res.cold_seconds = time.perf_counter() - t0
    res.events = cache.events
    res.ticks = int(cache.arrays["ticks"].shape[0])
    res.cold_events_per_s = res.events / res.cold_seconds
    res.cold_ticks_per_s = res.ticks / res.cold_seconds
    t0 = time.perf_counter()
    warm = load_or_build(root, d, spec)
    total = 0.0
    for a in warm.arrays.values():
        total += float(np.asarray(a).sum(dtype=np.float64) if a.dtype != bool else a.sum())
    res.warm_seconds = time.perf_counter() - t0
    policy = make_baseline(strategy, feature_set(config.features.feature_set), config.baselines)
    t0 = time.perf_counter()
    replay_engine([warm], policy, config, None)
    res.engine_ticks_per_s = res.ticks / (time.perf_counter() - t0)
    return res
