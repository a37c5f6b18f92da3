"""Fill books at tick + latency: independent of batching, and the cache sidecar agrees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from polyrl.clock import ReplayClock
from polyrl.config import Config
from polyrl.features.cache import load_or_build_latencies
from polyrl.features.engine import FeatureEngine
from polyrl.recording.reader import RecordingReader
from polyrl.replay import replay_spec

CFG = Config()


def _fills(root: Path, lat: int, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fe = FeatureEngine(tuple(CFG.assets), CFG.features, fill_latency_ns=lat)
    ticks, px, size = [], [], []
    clock = ReplayClock(CFG.engine.tick_ns, lookahead_ns=lat)
    for batch, ts in clock.drive(RecordingReader(root).batches(batch_size=batch_size)):
        fe.ingest(batch)
        if ts.shape[0]:
            o = fe.observe_many(ts)
            ticks.append(ts)
            px.append(o.fill_px)
            size.append(o.fill_size)
    return np.concatenate(ticks), np.concatenate(px), np.concatenate(size)


@pytest.mark.slow
def test_fill_books_do_not_depend_on_batching_and_the_sidecar_agrees(
    small_recording: Path,
) -> None:
    """Small chunks and one batch give bit-identical books at t + 700 ms (beyond a tick),
    and the cache's per-latency sidecar holds exactly those books, beside the latency-0
    books of the same feature entry."""
    lat = 700_000_000
    t0, p0, s0 = _fills(small_recording, lat, 997)
    t1, p1, s1 = _fills(small_recording, lat, 10_000_000)
    assert np.isfinite(p0).any()
    assert np.array_equal(t1, t0)
    assert np.array_equal(p1, p0, equal_nan=True)
    assert np.array_equal(s1, s0)
    got = load_or_build_latencies(small_recording, "2024-06-01", replay_spec(CFG), [0, lat])
    assert got[0].path == got[lat].path  # one feature entry for both latencies
    c = got[lat]
    k = np.searchsorted(t0, np.asarray(c.arrays["ticks"]))
    assert np.array_equal(t0[k], c.arrays["ticks"])
    assert np.array_equal(p0[k], c.arrays["fill_px"], equal_nan=True)
    assert np.array_equal(s0[k], c.arrays["fill_size"])
    assert not np.array_equal(got[0].fill_px, c.fill_px, equal_nan=True)
