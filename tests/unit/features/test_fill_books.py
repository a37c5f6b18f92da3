"""Fill books at tick + latency: independent of batching, and the cache sidecar agrees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from polyrl.clock import ReplayClock
from polyrl.events import NS_PER_S, iso_to_ns
from polyrl.features.cache import load_or_build_latencies
from polyrl.features.engine import FeatureEngine
from polyrl.recording.reader import RecordingReader
from polyrl.recording.writer import RecordingConfig
from polyrl.replay import replay_spec
from polyrl.sections import Config
from polyrl.sim.config import SimConfig
from polyrl.sim.record import simulate_to_recording

# Binance message rates are cut to save simulation time; the Polymarket books (what fills
# read) are as usual. Two assets, four minutes across the 00:15 window boundary.
CFG = Config(
    assets=("btc", "eth"),
    sim=SimConfig(spot_trade_rate=(3.0,) * 4, futures_trade_rate=(4.0,) * 4,
                  book_ticker_rate=(4.0,) * 4),
    recording=RecordingConfig(fsync=False),
)  # fmt: skip
LATENCIES_NS = (0, 200_000_000, 700_000_000)  # none, below a tick, beyond a tick
BATCH_SIZES = (499, 4_999, 10_000_000)  # small chunks, medium, one batch


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fill-books") / "rec"
    start = iso_to_ns("2024-06-01T00:13:00Z")
    simulate_to_recording(root, start_ns=start, end_ns=start + 4 * 60 * NS_PER_S, seed=5,
                          config=CFG)  # fmt: skip
    return root


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
def test_fill_books_do_not_depend_on_batching_and_the_sidecar_agrees(recording: Path) -> None:
    """At 0, 200 and 700 ms (beyond a tick), chunks of 499 and 4,999 events and one batch give
    bit-identical books at t + latency; the cache's per-latency sidecars hold exactly those
    books, beside one latency-independent feature entry."""
    got = load_or_build_latencies(recording, "2024-06-01", replay_spec(CFG), LATENCIES_NS)
    assert len({c.path for c in got.values()}) == 1  # one feature entry for every latency
    books = {}
    for lat in LATENCIES_NS:
        t0, p0, s0 = _fills(recording, lat, BATCH_SIZES[0])
        assert np.isfinite(p0).any()
        for bs in BATCH_SIZES[1:]:
            t1, p1, s1 = _fills(recording, lat, bs)
            assert np.array_equal(t1, t0), (lat, bs)
            assert np.array_equal(p1, p0, equal_nan=True), (lat, bs)
            assert np.array_equal(s1, s0), (lat, bs)
        c = got[lat]
        k = np.searchsorted(t0, np.asarray(c.arrays["ticks"]))
        assert np.array_equal(t0[k], c.arrays["ticks"])
        assert np.array_equal(p0[k], c.arrays["fill_px"], equal_nan=True), lat
        assert np.array_equal(s0[k], c.arrays["fill_size"]), lat
        books[lat] = np.asarray(c.arrays["fill_px"])
    # The latencies see different books (the sidecars are not copies of one another).
    assert not np.array_equal(books[0], books[200_000_000], equal_nan=True)
    assert not np.array_equal(books[200_000_000], books[700_000_000], equal_nan=True)
