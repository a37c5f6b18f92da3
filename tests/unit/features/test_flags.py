"""The FeatureEngine and quality flags: a skipped row changes no feature (it is as if it never
came), a kept one is used, and a skipped Polymarket book row unsyncs that book until the next
full book. Live (events) and replay (frames) batches agree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from polyrl.events import NS_PER_S, Event, iso_to_ns
from polyrl.features.engine import FeatureConfig, FeatureEngine, ObsBatch
from polyrl.features.flags import POLICY, SKIP_MASK, without_skipped
from polyrl.recording.reader import MergedBatch, RecordingReader
from polyrl.recording.writer import RecordingConfig
from polyrl.sections import Config
from polyrl.sim.record import simulate_to_recording
from polyrl.sources.quality.flags import BAD_VALUE, FLAG_BY_NAME, FLAGS

T0 = iso_to_ns("2024-06-01T00:00:00Z")
TICKS = np.arange(T0 + 60 * NS_PER_S, T0 + 8 * 60 * NS_PER_S, 500_000_000)
AT = T0 + 6 * 60 * NS_PER_S  # where a row is slipped in: the market is tradable by then


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[Event]:
    """Eight simulated minutes of btc, recorded through the real parsers and writer."""
    root = tmp_path_factory.mktemp("flags") / "rec"
    cfg = Config(assets=("btc",), recording=RecordingConfig(fsync=False))
    simulate_to_recording(root, start_ns=T0, end_ns=T0 + 8 * 60 * NS_PER_S, seed=3, config=cfg)
    evs = list(RecordingReader(root).events())
    assert all(e.quality == 0 for e in evs)  # simulated data carries no flag
    return evs


def _observe(evs: Sequence[Event], *, frames: bool = False) -> ObsBatch:
    fe = FeatureEngine(("btc",), FeatureConfig(feature_set="full"))
    b = MergedBatch.from_events(evs, frames=frames)
    if frames:  # the replay path: polars frames only, as a RecordingReader batch has
        b = MergedBatch(b.streams, b.stream_code, b.recv_ns, b.seq, b.tables)
    fe.ingest(b)
    return fe.observe_many(TICKS)


def _same(a: ObsBatch, b: ObsBatch, sel: np.ndarray | slice = slice(None)) -> bool:
    return bool(
        np.array_equal(a.features[sel], b.features[sel])
        and np.array_equal(a.ready[sel], b.ready[sel])
        and np.array_equal(a.tradable[sel], b.tradable[sel])
        and np.array_equal(a.book_px[sel], b.book_px[sel], equal_nan=True)
    )


def _slip_in(evs: list[Event], stream: str, change: dict[str, float], quality: int) -> list[Event]:
    """``evs`` with a copy of the last ``stream`` row before the first tick after AT, its
    fields scaled by ``change`` and carrying ``quality``, placed right after the original (so
    it is the stream's latest value at that tick)."""
    tick = int(TICKS[TICKS > AT][0])
    i = max(k for k, e in enumerate(evs) if e.stream == stream and e.recv_ns <= tick)
    e = evs[i]
    fields = {**e.fields, **{k: e.fields[k] * v for k, v in change.items()}}
    extra = replace(e, fields=fields, quality=quality, seq=e.seq)
    return evs[: i + 1] + [extra] + evs[i + 1 :]


# Rows whose use would move a feature: a huge trade, a moved quote, a moved reference price.
ROWS = [
    ("binance.futures.trade", {"qty": 1000.0}),
    ("binance.spot.book_ticker", {"bid_px": 1.01, "ask_px": 1.01}),
    ("reference.price", {"value": 1.05}),
]


@pytest.fixture(scope="module")
def reference_runs(events: list[Event]) -> dict[str, ObsBatch]:
    """The observations without any slipped-in row, and with each one used (unflagged)."""
    runs = {"clean": _observe(events)}
    for stream, change in ROWS:
        runs[stream] = _observe(_slip_in(events, stream, change, 0))
    return runs


@pytest.mark.parametrize("stream,change", ROWS, ids=[s for s, _ in ROWS])
@pytest.mark.parametrize("flag", [f.name for f in FLAGS])
def test_a_row_is_skipped_or_used_as_the_policy_says(
    events: list[Event],
    reference_runs: dict[str, ObsBatch],
    stream: str,
    change: dict[str, float],
    flag: str,
) -> None:
    clean, used = reference_runs["clean"], reference_runs[stream]
    assert not _same(clean, used), "the slipped-in row must matter when it is used"
    flagged = _slip_in(events, stream, change, FLAG_BY_NAME[flag].mask)
    skipped, _why = POLICY[flag]
    assert _same(_observe(flagged), clean if skipped else used)


def test_live_and_replay_batches_skip_the_same_rows(events: list[Event]) -> None:
    flagged = _slip_in(events, "binance.futures.trade", {"qty": 1000.0}, BAD_VALUE)
    assert _same(_observe(flagged, frames=True), _observe(flagged))
    assert _same(_observe(flagged, frames=True), _observe(events))


def test_an_unflagged_batch_is_passed_through_untouched(events: list[Event]) -> None:
    b = MergedBatch.from_events(events[:1000])
    assert without_skipped(b) is b
    flagged = _slip_in(events, "binance.futures.trade", {"qty": 2.0}, SKIP_MASK)
    b2 = without_skipped(MergedBatch.from_events(flagged))
    assert len(b2) == len(flagged) - 1 and b2.live is not None
    assert not any(e.quality for evs in b2.live.values() for e in evs)


def test_a_skipped_polymarket_level_unsyncs_its_book_until_the_next_full_book(
    events: list[Event],
) -> None:
    def next_book(k: int) -> int:
        key = events[k].key
        return next(
            e.recv_ns for e in events[k + 1 :] if e.stream == "polymarket.book" and e.key == key
        )

    def spans_a_tick(k: int) -> bool:
        nb = next_book(k)
        return nb < TICKS[-1] and bool(np.any((events[k].recv_ns <= TICKS) & (TICKS < nb)))

    # A level update whose token gets its next full book only after a decision tick.
    i = next(
        k
        for k, e in enumerate(events)
        if e.stream == "polymarket.price_change" and e.recv_ns >= AT and spans_a_tick(k)
    )
    resync = next_book(i)
    bad = replace(events[i], fields={**events[i].fields, "price": -1.0}, quality=BAD_VALUE)
    flagged = events[: i + 1] + [bad] + events[i + 1 :]
    clean, got = _observe(events), _observe(flagged)
    before = TICKS < bad.recv_ns
    during = (TICKS >= bad.recv_ns) & (TICKS < resync)
    after = TICKS >= resync
    assert during.any() and after.any()
    assert clean.tradable[during].all()
    assert _same(got, clean, before)
    assert not got.tradable[during].any()
    assert _same(got, clean, after)
