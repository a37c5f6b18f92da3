"""Stale books and dated outages: a Polymarket book that stops updating without a disconnect
is not tradable once older than ``book_stale_s``; an outage is dated from the recorder's
``gap_start_ns`` in the window flags, never in tradability (that would look ahead)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from polyrl.events import ASSETS, CH_POLYMARKET_WS, NS_PER_S, WINDOW_NS
from polyrl.features.cache import windows_frame
from polyrl.features.engine import FeatureConfig, FeatureEngine, ObsBatch
from polyrl.features.markets import TOUCH_STREAMS
from polyrl.recording.reader import MergedBatch, RecordingReader

TICK = 500_000_000
BOOK_STREAMS = ("polymarket.book", "polymarket.price_change")
CHANNEL_STREAMS = (*BOOK_STREAMS, *TOUCH_STREAMS)
SILENCE_NS = 25 * NS_PER_S


@pytest.fixture(scope="module")
def batch(small_recording: Path) -> MergedBatch:
    batches = list(RecordingReader(small_recording).batches(batch_size=1_000_000))
    assert len(batches) == 1
    return batches[0]


def _without(b: MergedBatch, streams: tuple[str, ...], lo: int, hi: int) -> MergedBatch:
    """``b`` without the rows of ``streams`` received in [lo, hi)."""
    codes = [b.streams.index(s) for s in streams if s in b.streams]
    gone = np.isin(b.stream_code, codes) & (b.recv_ns >= lo) & (b.recv_ns < hi)
    tables = {
        s: (t.filter(~pl.col("recv_ns").is_between(lo, hi, closed="left")) if s in streams else t)
        for s, t in b.tables.items()
    }
    keep = ~gone
    return MergedBatch(b.streams, b.stream_code[keep], b.recv_ns[keep], b.seq[keep], tables)


def _with_status(b: MergedBatch, rows: list[dict[str, object]]) -> MergedBatch:
    """``b`` with status rows merged in at their receive times."""
    s = "recorder.status"
    status = b.tables[s]
    extra = pl.DataFrame(
        [
            {n: None for n in status.columns}
            | {"seq": 10**12 + i, "quality": 0, "message": "test"}
            | r
            for i, r in enumerate(rows)
        ],
        schema=status.schema,
    )
    code = b.streams.index(s)
    recv = np.concatenate([b.recv_ns, extra["recv_ns"].to_numpy()])
    seq = np.concatenate([b.seq, extra["seq"].to_numpy()])
    codes = np.concatenate([b.stream_code, np.full(extra.height, code, dtype=b.stream_code.dtype)])
    order = np.lexsort((seq, recv))
    tables = dict(b.tables)
    tables[s] = pl.concat([status, extra]).sort(["recv_ns", "seq"])
    return MergedBatch(b.streams, codes[order], recv[order], seq[order], tables)


def _observe(b: MergedBatch, **cfg: float) -> tuple[FeatureEngine, ObsBatch]:
    fe = FeatureEngine(ASSETS, FeatureConfig(feature_set="seed18", **cfg))  # type: ignore[arg-type]
    fe.ingest(b)
    ticks = np.arange((int(b.recv_ns[0]) // TICK + 1) * TICK, int(b.recv_ns[-1]), TICK)
    return fe, fe.observe_many(ticks)


def _age_ok(b: MergedBatch, fe: FeatureEngine, o: ObsBatch, max_age_ns: int) -> np.ndarray:
    """[T, M]: both tokens of the tick's window have a market-channel row received within
    ``max_age_ns`` before the tick (computed from the batch's tables, not the engine)."""
    heard = pl.concat(
        [b.tables[s].select("recv_ns", "key") for s in CHANNEL_STREAMS if s in b.tables]
    )
    groups = heard.group_by("key", maintain_order=True)
    by_token = {k: np.sort(g["recv_ns"].to_numpy()) for (k,), g in groups}

    def age(tok: str, t: np.ndarray) -> np.ndarray:
        r = by_token.get(tok, np.array([], dtype=np.int64))
        i = np.searchsorted(r, t, side="right") - 1
        return np.where(i >= 0, t - r[np.maximum(i, 0)], np.iinfo(np.int64).max)

    ok = np.zeros(o.window.shape, dtype=bool)
    for m in range(o.window.shape[1]):
        for wi in np.unique(o.window[:, m]):
            if wi < 0:
                continue
            rows = o.window[:, m] == wi
            w = fe.windows[int(wi)]
            t = o.ticks[rows]
            ok[rows, m] = (age(w.up_token, t) <= max_age_ns) & (age(w.down_token, t) <= max_age_ns)
    return ok


def test_a_book_that_stops_updating_without_a_disconnect_is_not_tradable(
    batch: MergedBatch,
) -> None:
    """The issue's case: 25 s with no market-channel message for any token and no status
    row. Without the age rule every tick of the silence stays tradable against the frozen
    book; with the default (5 s) none older than 5 s is, and trading resumes once the
    tokens are heard from again."""
    t0 = int(batch.recv_ns[0]) + 20 * 60 * NS_PER_S
    quiet = _without(batch, CHANNEL_STREAMS, t0, t0 + SILENCE_NS)
    limit = int(FeatureConfig().book_stale_s * NS_PER_S)
    assert limit == 5 * NS_PER_S

    _, old = _observe(quiet, book_stale_s=1e6)
    fe, new = _observe(quiet)
    last = max(int(quiet.tables[s].filter(pl.col("recv_ns") < t0)["recv_ns"].max())
               for s in CHANNEL_STREAMS if s in quiet.tables)  # fmt: skip
    silent = (old.ticks > last) & (old.ticks < t0 + SILENCE_NS)
    stale = silent & (old.ticks - last > limit)
    assert stale.sum() >= 40
    # Before: the markets traded on throughout, against a book frozen at its last update.
    assert old.tradable[silent].all()
    frozen = old.book_px[silent][:, :, 0, 1, 0]  # Up best ask, [ticks, markets]
    assert (frozen == frozen[0]).all()
    # Now: tradable only while both tokens were heard from within the limit.
    assert not new.tradable[stale].any()
    assert new.tradable[silent & ~stale].any()
    expected = old.tradable & _age_ok(quiet, fe, old, limit)
    assert np.array_equal(new.tradable, expected)
    after = new.ticks >= t0 + SILENCE_NS + 2 * NS_PER_S
    assert new.tradable[after & (new.ticks < t0 + SILENCE_NS + 60 * NS_PER_S)].all()
    # Only tradability changes: the features, books and readiness are the same numbers.
    for f in ("features", "ready", "window", "book_px", "book_size"):
        assert np.array_equal(getattr(old, f), getattr(new, f), equal_nan=True), f


def test_trades_and_tick_size_rows_count_as_hearing_from_a_token(batch: MergedBatch) -> None:
    """Age is the time since any market-channel row for the token (book, price_change,
    last_trade_price, tick_size_change, best_bid_ask), not since the last book change: with
    only trades arriving for a minute, a market is tradable exactly while both its tokens
    traded within the limit."""
    t0 = int(batch.recv_ns[0]) + 19 * 60 * NS_PER_S
    quiet = _without(batch, (*BOOK_STREAMS, "polymarket.best_bid_ask"), t0, t0 + 60 * NS_PER_S)
    limit = 2 * NS_PER_S
    _, old = _observe(quiet, book_stale_s=1e6)
    fe, new = _observe(quiet, book_stale_s=2.0)
    expected = old.tradable & _age_ok(quiet, fe, old, limit)
    assert np.array_equal(new.tradable, expected)
    quiet_ticks = (old.ticks > t0 + limit) & (old.ticks < t0 + 60 * NS_PER_S)
    # Some quiet ticks stay tradable on trades alone, and some go stale between them.
    assert new.tradable[quiet_ticks].any() and not new.tradable[quiet_ticks].all()
    assert old.tradable[quiet_ticks].all()


def test_book_stale_s_must_be_positive() -> None:
    with pytest.raises(ValueError, match="book_stale_s"):
        FeatureConfig(book_stale_s=0)
    assert replace(FeatureConfig(), book_stale_s=2.5).book_stale_s == 2.5


def test_an_outage_is_dated_from_gap_start_in_flags_not_in_tradability(
    batch: MergedBatch,
) -> None:
    """The CLOB goes silent at 00:14:52 (the last frame), the watchdog disconnects at 00:15:10,
    the reconnect at 00:15:20 writes a ``gap`` row from 00:14:52. The 00:00 windows ended
    inside the silence, before the disconnect row: they are flagged gap (from gap_start_ns)
    and the outage runs from 00:14:52. Tradability at each tick uses only rows received by
    it: the gap row changes no tick's tradability; the stale-book rule covers the silence."""
    start = int(batch.recv_ns[0]) // WINDOW_NS * WINDOW_NS
    roll = start + WINDOW_NS
    gap_start = roll - 8 * NS_PER_S
    t_drop, t_back = roll + 10 * NS_PER_S, roll + 20 * NS_PER_S
    quiet = _without(batch, CHANNEL_STREAMS, gap_start, t_back)
    status = [
        {"recv_ns": t_drop, "key": CH_POLYMARKET_WS, "kind": "disconnect"},
        {"recv_ns": t_back, "key": CH_POLYMARKET_WS, "kind": "connect"},
    ]
    dated = status + [
        {"recv_ns": t_back + 1, "key": CH_POLYMARKET_WS, "kind": "gap",
         "gap_start_ns": gap_start, "gap_end_ns": t_back},
    ]  # fmt: skip
    fe_row, by_row = _observe(_with_status(quiet, status))
    fe, o = _observe(_with_status(quiet, dated))

    first = [w for w in fe.windows if w.end_ns == roll]
    second = [w for w in fe.windows if w.start_ns == roll]
    assert len(first) == len(second) == 4
    # Dated from the disconnect row, the 00:00 windows looked clean; from gap_start they are not.
    assert not any(w.gap for w in fe_row.windows if w.end_ns == roll)
    assert all(w.gap for w in first) and all(w.gap for w in second)
    assert fe.outages == [(CH_POLYMARKET_WS, gap_start, t_back)]
    assert fe_row.outages == [(CH_POLYMARKET_WS, t_drop, t_back)]
    table = windows_frame(fe.windows)
    assert table.filter(pl.col("end_ns") == roll)["gap"].all()
    # No look-ahead: the gap row (received at the reconnect) changes no observation.
    for f in ("features", "ready", "tradable", "window", "book_px"):
        assert np.array_equal(getattr(o, f), getattr(by_row, f), equal_nan=True), f
    # Between the last frame and the disconnect row the markets were tradable only while
    # their books were younger than the limit.
    limit = int(FeatureConfig().book_stale_s * NS_PER_S)
    silent = (o.ticks > gap_start + limit) & (o.ticks <= t_drop)
    assert silent.sum() >= 25 and not o.tradable[silent].any()
