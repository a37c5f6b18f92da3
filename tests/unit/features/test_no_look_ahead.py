"""No look-ahead on hard recordings: outages, restarts, late and duplicate reference ticks.

The property, for a recording R edited by hypothesis, a batch size B and a fill latency L:
replaying R in batches of B rows, the observation at every tick t <= c (features, ready,
tradable, window, the books at the tick) equals the observation replayed from R truncated to
the events received by c (``recv_ns <= c``) in the same batches, and so do the books at
t + L for every tick with t + L <= c. Across batch sizes the observation at the tick is the
same as replaying R in one batch, the fill books at t + L included (the replay clock hands
out tick t only once every event received by t + L is in). The windows table the day cache
writes and training reads (outcome, outcome_source,
outcome_ns, the window's market fields, gap) obeys: a window's outcome is readable at c
(``outcome_ns <= c``) in the full replay iff it is in the truncated one, and then it is
the same; every window discovered by c has the same market fields; the gap flag only
turns on as events arrive (truncated gap implies full gap), and once the window has ended
and no channel is down at c it equals the full replay's flag.

Why that is the property training needs: the day cache writes the windows table once, after
the day (``finalize_outcomes``); ``EpisodeStore.build`` reads ``gap`` and ``outcome`` from it
to choose episodes (gap windows left out) and to settle each episode after its last step.
Neither is ever part of an observation, so no decision reads them; the outcome a window is
settled with depends only on events received by its ``outcome_ns`` (the resolution's arrival
within the timeout, else end + timeout with reference ticks received by then). ``gap`` is a
hindsight flag by design: an outage later in a window removes the whole window from training
(a selection on a data-quality event, not on prices).

Edits drawn per example: Polymarket and Binance spot outages (disconnect, the channel's rows
dropped, connect, optionally a ``gap`` row), a recorder restart (``start``, ``seq`` counting
again from 0, every channel's ``connect`` repeated), reference ticks duplicated late and
ticks stamped before a window start arriving after the tick stamped at it (the ref_move
case), batches of 2,000 rows up to the whole recording with up to three 100-row stretches
read 1-25 rows at a time, fill latencies 0-1.3 s (beyond the 500 ms tick too), and
resolution timeouts of 5 s to 1 h (the recorded resolution arrives 40 s after the window's end).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from polyrl.clock import ReplayClock
from polyrl.events import (
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_WS,
    CH_POLYMARKET_WS,
    CH_RECORDER,
    NS_PER_S,
    iso_to_ns,
)
from polyrl.features.engine import FeatureConfig, FeatureEngine, ObsBatch
from polyrl.features.markets import Window
from polyrl.recording.reader import MergedBatch, RecordingReader

S = NS_PER_S
TICK = 500_000_000
T0 = iso_to_ns("2024-06-01T00:12:00Z")
SPAN = 5 * 60 * S + 30 * S
W_START = iso_to_ns("2024-06-01T00:15:00Z")
MARKETS = ("btc", "eth")
"""Two of the four assets (the engine's cost is per row: a lean recording, more examples)."""
_UNUSED = ("binance.spot.trade", "polymarket.trade", "polymarket.best_bid_ask")
"""Streams the FeatureEngine does not read."""
AT_TICK = ("features", "ready", "tradable", "window", "book_px", "book_size")


@pytest.fixture(scope="module")
def short_batch(tmp_path_factory: pytest.TempPathFactory) -> MergedBatch:
    """5.5 simulated minutes of btc and eth (00:12:00-00:17:30, seed 7) through the real
    parsers and writer, read back as one merged batch (streams the engine does not read
    left out): the 00:00 window ends and resolves at 00:15:40, 00:15 opens."""
    from polyrl.recording.writer import RecordingConfig
    from polyrl.sections import Config
    from polyrl.sim.record import simulate_to_recording

    root = tmp_path_factory.mktemp("short-rec") / "rec"
    simulate_to_recording(
        root,
        start_ns=T0,
        end_ns=T0 + SPAN,
        seed=7,
        config=Config(assets=MARKETS, recording=RecordingConfig(fsync=False)),
    )
    (b,) = list(RecordingReader(root).batches(batch_size=10**9))
    return _rebuild(b.streams, {s: t for s, t in b.tables.items() if s not in _UNUSED})


# ---------------------------------------------------------------------------------------------
# editing a merged batch


def _rebuild(streams: tuple[str, ...], tables: dict[str, pl.DataFrame]) -> MergedBatch:
    """A merged batch of ``tables`` in ``(recv_ns, seq)`` order (ties keep table order)."""
    streams = tuple(sorted(set(streams) | set(tables)))
    parts = []
    out: dict[str, pl.DataFrame] = {}
    for code, s in enumerate(streams):
        t = tables.get(s)
        if t is None or t.height == 0:
            continue
        t = t.with_row_index("_pos").sort(["recv_ns", "seq", "_pos"]).drop("_pos")
        out[s] = t
        parts.append((t["recv_ns"].to_numpy(), t["seq"].to_numpy(), np.full(t.height, code)))
    recv = np.concatenate([p[0] for p in parts])
    seq = np.concatenate([p[1] for p in parts])
    code = np.concatenate([p[2] for p in parts]).astype(np.int16)
    pos = np.concatenate([np.arange(p[0].shape[0]) for p in parts])
    order = np.lexsort((pos, code, seq, recv))
    return MergedBatch(streams, code[order], recv[order], seq[order], out)


def _slice(b: MergedBatch, lo: int, hi: int) -> MergedBatch:
    codes = b.stream_code[lo:hi]
    before = np.bincount(b.stream_code[:lo], minlength=len(b.streams))
    count = np.bincount(codes, minlength=len(b.streams))
    tables = {
        s: t.slice(int(before[i]), int(count[i]))
        for s, t in b.tables.items()
        if count[(i := b.streams.index(s))]
    }
    return MergedBatch(b.streams, codes, b.recv_ns[lo:hi], b.seq[lo:hi], tables)


def _status(template: pl.DataFrame, rows: list[tuple[int, int, str, str, int | None]]):
    """recorder.status rows (recv_ns, seq, channel, kind, gap_start_ns)."""
    return pl.DataFrame(
        {
            "recv_ns": [r[0] for r in rows],
            "seq": [r[1] for r in rows],
            "exch_ns": [None] * len(rows),
            "key": [r[2] for r in rows],
            "asset": [None] * len(rows),
            "quality": [0] * len(rows),
            "kind": [r[3] for r in rows],
            "stream_id": [None] * len(rows),
            "message": ["edited"] * len(rows),
            "gap_start_ns": [r[4] for r in rows],
            "gap_end_ns": [r[0] if r[4] is not None else None for r in rows],
        },
        schema=template.schema,
    )


@dataclass(frozen=True)
class Edits:
    outages: tuple[tuple[str, int, int, bool], ...]
    """(channel, start offset ns, length ns, with a gap row)."""
    restart_at: int | None
    late_refs: tuple[tuple[int, int], ...]
    """(index of a reference row, delay ns) re-sent late with its stamp."""
    early_open: tuple[int, float]
    """(delay ns after the start tick's receipt, value) of a tick stamped 1 s before 00:15."""
    batch_size: int
    """Rows per batch (larger than the recording: one batch)."""
    fine: tuple[tuple[float, int], ...]
    """(where, as a fraction of the rows; rows per batch) of 100-row stretches read in tiny
    batches (a batch boundary between any two events there)."""
    latency_ns: int
    cut_frac: float
    """Where to truncate, as a fraction of the ticks; -1: at the first tick after the btc
    tick stamped at 00:15 arrives (before the late one stamped earlier, when it is late
    enough)."""
    timeout_s: int


_CHANNEL_STREAMS = {
    CH_POLYMARKET_WS: ("polymarket.book", "polymarket.price_change", "polymarket.trade",
                       "polymarket.tick_size", "polymarket.best_bid_ask"),
    CH_BINANCE_SPOT_WS: ("binance.spot.book_ticker", "binance.spot.depth"),
}  # fmt: skip

edits = st.builds(
    Edits,
    outages=st.lists(
        st.tuples(
            st.sampled_from(sorted(_CHANNEL_STREAMS)),
            st.integers(10 * S, SPAN - 20 * S),
            st.integers(200_000_000, 40 * S),
            st.booleans(),
        ),
        max_size=2,
    ).map(tuple),
    restart_at=st.one_of(st.none(), st.integers(30 * S, SPAN - 30 * S)),
    late_refs=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 3 * S)), max_size=6).map(
        tuple
    ),
    early_open=st.tuples(st.integers(1, S), st.floats(0.98, 1.02)),
    batch_size=st.one_of(st.integers(2_000, 30_000), st.just(10**9)),
    fine=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(1, 25)), max_size=3).map(tuple),
    latency_ns=st.sampled_from(
        [0, 0, 100_000_000, 300_000_000, 450_000_000, 700_000_000, 1_300_000_000]
    ),
    cut_frac=st.one_of(st.just(-1.0), st.floats(0.05, 1.0)),
    timeout_s=st.sampled_from([5, 30, 120, 3600]),
)


def _edit(b: MergedBatch, e: Edits) -> MergedBatch:
    tables = dict(b.tables)
    status = tables["recorder.status"]
    add: list[tuple[int, int, str, str, int | None]] = []
    seq_hi = int(b.seq.max()) + 1
    for k, (ch, off, length, gap_row) in enumerate(e.outages):
        a, z = T0 + off, T0 + off + length
        for s in _CHANNEL_STREAMS[ch]:
            if s in tables:
                t = tables[s]
                tables[s] = t.filter((pl.col("recv_ns") <= a) | (pl.col("recv_ns") > z))
        add.append((a, seq_hi + 4 * k, ch, "disconnect", None))
        if gap_row:
            add.append((z, seq_hi + 4 * k + 1, ch, "gap", a))
        add.append((z, seq_hi + 4 * k + 2, ch, "connect", None))
    ref = tables["reference.price"]
    late = []
    for i, delay in e.late_refs:
        row = ref.slice(i % ref.height, 1)
        late.append(row.with_columns(pl.col("recv_ns") + delay, pl.col("seq") + seq_hi + 100))
    # The ref_move case: a btc tick stamped 1 s before 00:15 received after the one stamped
    # at (or first after) 00:15.
    starts = (pl.col("asset") == "btc") & (pl.col("exch_ns") >= W_START) & ~pl.col("backfill")
    btc = ref.filter(starts)
    if btc.height:
        first = btc.head(1)
        late.append(
            first.with_columns(
                pl.col("recv_ns") + e.early_open[0],
                pl.lit(W_START - S).alias("exch_ns"),
                pl.col("value") * e.early_open[1],
                pl.col("seq") + seq_hi + 200,
            )
        )
    if late:
        tables["reference.price"] = pl.concat([ref, *late])
    if e.restart_at is not None:
        r = T0 + e.restart_at
        # Every row after the restart is numbered again from 0 (a new recorder process).
        for s, t in tables.items():
            tables[s] = t.with_columns(
                pl.when(pl.col("recv_ns") > r)
                .then(pl.col("seq") - seq_hi * 10)
                .otherwise(pl.col("seq"))
                .alias("seq")
            )
        add.append((r, 0, CH_RECORDER, "start", None))
        for k, ch in enumerate((CH_POLYMARKET_WS, CH_BINANCE_SPOT_WS, CH_BINANCE_FUTURES_WS)):
            add.append((r + 1 + k, 1 + k, ch, "connect", None))
            add.append((r + 1 + k, 5 + k, ch, "connect", None))  # a repeated connect row
    if add:
        tables["recorder.status"] = pl.concat([status, _status(status, add)])
    return _rebuild(b.streams, tables)


# ---------------------------------------------------------------------------------------------
# replaying


def _bounds(n: int, batch_size: int, fine: tuple[tuple[float, int], ...]) -> list[int]:
    """Batch boundaries (row offsets, 0 and n included)."""
    cuts = set(range(0, n, batch_size)) | {0, n}
    for where, size in fine:
        lo = int(where * max(n - 100, 0))
        cuts |= set(range(lo, min(lo + 100, n), size))
    return sorted(cuts)


def _replay(
    b: MergedBatch, bounds: list[int], latency_ns: int, cut: int | None, timeout_ns: int
) -> tuple[ObsBatch, list[Window]]:
    """Replay ``b`` (up to ``cut``) in the batches ``bounds`` delimit; the observations at
    every tick and the windows table as the day cache finalises it."""
    n = len(b) if cut is None else int(np.searchsorted(b.recv_ns, cut, side="right"))
    fe = FeatureEngine(MARKETS, FeatureConfig(feature_set="full"), fill_latency_ns=latency_ns)
    out: list[ObsBatch] = []
    edges = [x for x in bounds if x < n] + [n]
    batches = (_slice(b, lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True))
    for batch, ticks in ReplayClock(TICK, start_ns=T0, end_ns=cut, lookahead_ns=latency_ns).drive(
        batches
    ):
        fe.ingest(batch)
        if ticks.shape[0]:
            out.append(fe.observe_many(ticks))
    until = int(b.recv_ns[n - 1])
    windows = fe.finalize_outcomes(until, timeout_ns)
    obs = ObsBatch(*[np.concatenate([getattr(o, f) for o in out]) for f in ObsBatch.__slots__])
    return obs, windows


def _same(a: ObsBatch, b: ObsBatch, fields: tuple[str, ...], n: int) -> None:
    for f in fields:
        x, y = getattr(a, f)[:n], getattr(b, f)[:n]
        assert x.shape == y.shape, f
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f


_MARKET_FIELDS = ("index", "asset", "slot", "condition_id", "slug", "up_token", "down_token",
                  "start_ns", "end_ns", "known_ns", "tick_size", "min_size", "fees_enabled",
                  "fee_rate", "fee_exponent", "fee_schedule_assumed")  # fmt: skip


def _check(b: MergedBatch, e: Edits) -> None:
    rec = _edit(b, e)
    timeout = e.timeout_s * S
    bounds = _bounds(len(rec), e.batch_size, e.fine)
    full, wins = _replay(rec, bounds, e.latency_ns, None, timeout)
    ticks = full.ticks
    if e.cut_frac >= 0:
        k = int(e.cut_frac * (ticks.shape[0] - 1))
    else:
        k = int(np.searchsorted(ticks, _start_tick_recv(rec), side="left"))
    cut = int(ticks[k])
    part, pwins = _replay(rec, bounds, e.latency_ns, cut, timeout)
    assert part.ticks.shape[0] == k + 1
    _same(full, part, AT_TICK, k + 1)
    # Books at t + latency: equal wherever t + latency <= cut.
    n_fill = int(np.searchsorted(ticks, cut - e.latency_ns, side="right"))
    _same(full, part, ("fill_px", "fill_size"), n_fill)
    # Batch size: the same observations as one batch.
    if len(bounds) > 2:
        one, owins = _replay(rec, [0, len(rec)], e.latency_ns, None, timeout)
        _same(full, one, AT_TICK + ("fill_px", "fill_size"), ticks.shape[0])
        assert [_row(w) for w in wins] == [_row(w) for w in owins]
    # The windows table.
    assert len(pwins) <= len(wins)
    fe_cut = FeatureEngine(MARKETS)
    fe_cut.ingest(_slice(rec, 0, int(np.searchsorted(rec.recv_ns, cut, side="right"))))
    fe_cut.catch_up(cut)
    up_at_cut = fe_cut.markets.channels_up()
    for pw in pwins:
        w = wins[pw.index]
        assert [getattr(pw, f) for f in _MARKET_FIELDS] == [getattr(w, f) for f in _MARKET_FIELDS]
        assert w.known_ns <= cut
        full_known = w.outcome_ns is not None and w.outcome_ns <= cut
        part_known = pw.outcome_ns is not None and pw.outcome_ns <= cut
        assert full_known == part_known, (w.index, w.outcome_ns, pw.outcome_ns, cut)
        if full_known:
            assert (pw.outcome, pw.outcome_source, pw.outcome_ns) == (
                w.outcome, w.outcome_source, w.outcome_ns
            )  # fmt: skip
        assert w.gap or not pw.gap
        if w.end_ns <= cut and up_at_cut:
            assert pw.gap == w.gap, (w.index, cut)
    for w in wins[len(pwins) :]:
        assert w.known_ns > cut


def _start_tick_recv(rec: MergedBatch) -> int:
    """When the first btc reference tick stamped at or after 00:15 was received."""
    ref = rec.tables["reference.price"]
    at = ref.filter((pl.col("asset") == "btc") & (pl.col("exch_ns") >= W_START))
    return int(at["recv_ns"].min())


def _row(w: Window) -> tuple[object, ...]:
    return (*(getattr(w, f) for f in _MARKET_FIELDS), w.outcome, w.outcome_source,
            w.outcome_ns, w.gap)  # fmt: skip


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(e=edits)
@example(
    # The ref_move case: the btc tick stamped 1 s before 00:15 arrives 0.5 s after the one
    # stamped at 00:15 (received at 00:15:01.61), before the one stamped 00:15:01 (received
    # at 00:15:02.61), in the same batch; cut at 00:15:02.0. Before the fix: 0.0002 != 0.
    e=Edits(
        outages=(),
        restart_at=None,
        late_refs=(),
        early_open=(S // 2, 1.0002),
        batch_size=10**9,
        fine=(),
        latency_ns=0,
        cut_frac=-1.0,
        timeout_s=30,
    )  # fmt: skip
)
@example(
    # Found by the slow run: the warm-up klines split across batches left the first part's
    # last close held over the later kline minutes until the grid was resampled, so
    # vol_regime depended on batching (0.82 vs 0.39 at 00:17).
    e=Edits(
        outages=(("binance.spot.ws", 21466316806, 268435455, False),),
        restart_at=None,
        late_refs=(
            (313, 681937),
            (17305, 41656),
            (4213, 22),
            (1000000, 235204),
            (148, 153),
            (222, 10202385),
        ),
        early_open=(32916, 0.9991448726877583),
        batch_size=14877,
        fine=((0.4528178595900533, 10), (0.1391054187399652, 4), (0.002268434632439, 13)),
        latency_ns=0,
        cut_frac=0.690252206343469,
        timeout_s=120,
    )  # fmt: skip
)
def test_no_look_ahead_on_hard_recordings(short_batch: MergedBatch, e: Edits) -> None:
    """The module's property on the ref_move case and 12 drawn recordings (derandomized:
    the same 12 every run; about 5 s of CPU)."""
    _check(short_batch, e)


@pytest.mark.slow
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(e=edits)
def test_no_look_ahead_on_hard_recordings_many(short_batch: MergedBatch, e: Edits) -> None:
    """The module's property, 120 freshly drawn recordings per run (about 45 s of CPU)."""
    _check(short_batch, e)


def test_a_fill_latency_beyond_a_tick_does_not_look_ahead(short_batch: MergedBatch) -> None:
    """The fill books at t + latency come from their own market log, so a latency above the
    tick interval never moves the books (and up_mid, spread) the next tick sees past that
    tick (before, observing tick t advanced the one log to t + latency)."""
    _check(
        short_batch,
        Edits(
            outages=(),
            restart_at=None,
            late_refs=(),
            early_open=(S // 2, 1.0),
            batch_size=10**9,
            fine=(),
            latency_ns=1_300_000_000,
            cut_frac=0.6,
            timeout_s=30,
        ),  # fmt: skip
    )


def test_the_edits_make_the_hard_cases(short_batch: MergedBatch) -> None:
    """The edits produce what they claim: a late tick stamped before 00:15 received after
    the one stamped at it; a restart whose rows count from 0 again; an outage with no rows."""
    e = Edits(
        outages=((CH_POLYMARKET_WS, 60 * S, 20 * S, True),),
        restart_at=120 * S,
        late_refs=((5, S),),
        early_open=(S // 2, 1.02),
        batch_size=10**9,
        fine=(),
        latency_ns=0,
        cut_frac=1.0,
        timeout_s=30,
    )
    rec = _edit(short_batch, e)
    ref = rec.tables["reference.price"].filter(pl.col("asset") == "btc")
    x = ref["exch_ns"].to_numpy()
    assert (x < np.maximum.accumulate(x)).sum() >= 1
    first_at = ref.filter(pl.col("exch_ns") >= W_START)["recv_ns"].min()
    late = ref.filter((pl.col("exch_ns") == W_START - S) & (pl.col("recv_ns") > first_at))
    assert late.height == 1
    r = T0 + 120 * S
    assert rec.seq[rec.recv_ns > r].min() < rec.seq[rec.recv_ns <= r].max()
    book = rec.tables["polymarket.book"]["recv_ns"].to_numpy()
    assert not ((book > T0 + 60 * S) & (book <= T0 + 80 * S)).any()
    full, wins = _replay(rec, [0, len(rec)], 0, None, 30 * S)
    assert any(w.gap for w in wins)
