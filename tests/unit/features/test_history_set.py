"""The ``history`` feature set on a recording made only of what the public archives hold.

The recording: 8 simulated minutes of btc and eth (00:12-00:20, seed 7) through the real
parsers and writer, with the streams no archive has dropped (Binance spot book ticker and
partial book, the settlement reference, Polymarket best_bid_ask, liquidations) and the spot
klines an import writes added: 1 s and 1 m bars built from the recorded spot trades, each
received ``DELAY`` after its close (an imported bar is only seen once closed).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from polyrl.events import NS_PER_S, iso_to_ns
from polyrl.features.engine import FeatureConfig, FeatureEngine, ObsBatch
from polyrl.features.sets import FEATURE_SETS, feature_set
from polyrl.features.streams import missing_streams, refusal
from polyrl.recording.reader import MergedBatch, RecordingReader

S = NS_PER_S
T0 = iso_to_ns("2024-06-01T00:12:00Z")
SPAN = 8 * 60 * S
MARKETS = ("btc", "eth")
DELAY = 2 * S
"""Receive delay of an imported bar after its close."""
ARCHIVE_STREAMS = {
    "binance.spot.trade", "binance.futures.trade", "binance.spot.kline",
    "binance.futures.mark", "binance.futures.open_interest", "polymarket.book",
    "polymarket.price_change", "polymarket.trade", "polymarket.tick_size",
    "polymarket.market", "polymarket.resolution", "recorder.status",
}  # fmt: skip
"""What an imported recording holds (recorder.status carries the import's provenance)."""
TICKS = np.arange(T0 + 20 * S, T0 + SPAN, 500_000_000, dtype=np.int64)


def merge(tables: dict[str, pl.DataFrame]) -> MergedBatch:
    """A merged batch of ``tables`` in ``(recv_ns, seq)`` order."""
    streams = tuple(sorted(s for s, t in tables.items() if t.height))
    out, parts = {}, []
    for code, s in enumerate(streams):
        t = tables[s].sort(["recv_ns", "seq"], maintain_order=True)
        out[s] = t
        parts.append((t["recv_ns"].to_numpy(), t["seq"].to_numpy(), np.full(t.height, code)))
    recv = np.concatenate([p[0] for p in parts])
    seq = np.concatenate([p[1] for p in parts])
    code = np.concatenate([p[2] for p in parts]).astype(np.int16)
    pos = np.concatenate([np.arange(p[0].shape[0]) for p in parts])
    order = np.lexsort((pos, code, seq, recv))
    return MergedBatch(streams, code[order], recv[order], seq[order], out)


def klines_from_trades(
    trades: pl.DataFrame, template: pl.DataFrame, interval: str, seq0: int
) -> pl.DataFrame:
    """Closed bars of ``interval`` (1s or 1m) from spot trades, as an import writes them:
    close_ns = open + interval - 1 ms, received ``DELAY`` after the bar's end."""
    iv = {"1s": S, "1m": 60 * S}[interval]
    bars = (
        trades.with_columns((pl.col("exch_ns") // iv * iv).alias("open_ns"))
        .group_by(["key", "asset", "open_ns"], maintain_order=True)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("qty").sum().alias("volume"),
            (pl.col("qty") * pl.col("price")).sum().alias("quote_volume"),
            pl.len().cast(pl.Int64).alias("trades"),
            pl.col("qty").filter(pl.col("side") > 0).sum().alias("taker_buy_base"),
            (pl.col("qty") * pl.col("price")).filter(pl.col("side") > 0).sum().alias("tbq"),
        )
        .sort(["open_ns", "key"])
    )
    close_ns = bars["open_ns"] + iv - 1_000_000
    out = bars.select(
        recv_ns=pl.col("open_ns") + iv + DELAY,
        seq=pl.int_range(seq0, seq0 + bars.height, dtype=pl.Int64),
        exch_ns=close_ns,
        key=pl.col("key"),
        asset=pl.col("asset"),
        quality=pl.lit(0, dtype=pl.UInt16),
        interval=pl.lit(interval),
        open_ns=pl.col("open_ns"),
        close_ns=close_ns,
        open=pl.col("open"),
        high=pl.col("high"),
        low=pl.col("low"),
        close=pl.col("close"),
        volume=pl.col("volume"),
        quote_volume=pl.col("quote_volume"),
        trades=pl.col("trades"),
        taker_buy_base=pl.col("taker_buy_base"),
        taker_buy_quote=pl.col("tbq"),
        closed=pl.lit(True),
    )
    return out.cast(dict(template.schema))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    """Every stream of the simulated recording, as tables."""
    from polyrl.recording.writer import RecordingConfig
    from polyrl.sections import Config
    from polyrl.sim.record import simulate_to_recording

    root = tmp_path_factory.mktemp("history-rec") / "rec"
    simulate_to_recording(
        root,
        start_ns=T0,
        end_ns=T0 + SPAN,
        seed=7,
        config=Config(assets=MARKETS, recording=RecordingConfig(fsync=False)),
    )
    (b,) = list(RecordingReader(root).batches(batch_size=10**9))
    return dict(b.tables)


def with_klines(tables: dict[str, pl.DataFrame], *intervals: str) -> dict[str, pl.DataFrame]:
    """``tables`` with imported-style bars of ``intervals`` added to the kline stream."""
    rest = tables["binance.spot.kline"]
    extra = [
        klines_from_trades(tables["binance.spot.trade"], rest, iv, 10**9 * (k + 1))
        for k, iv in enumerate(intervals)
    ]
    return {**tables, "binance.spot.kline": pl.concat([rest, *extra])}


@pytest.fixture(scope="module")
def archive(recorded: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Only the archive streams, with 1 s and 1 m bars like an import's."""
    kept = {s: t for s, t in recorded.items() if s in ARCHIVE_STREAMS}
    return with_klines(kept, "1s", "1m")


def replay(tables: dict[str, pl.DataFrame], fset: str, ticks: np.ndarray = TICKS) -> ObsBatch:
    fe = FeatureEngine(MARKETS, FeatureConfig(feature_set=fset))
    fe.ingest(merge(tables))
    return fe.observe_many(ticks)


# ---------------------------------------------------------------------------------------------
# declared streams


def test_every_set_declares_the_streams_its_features_need() -> None:
    seed = feature_set("seed18").needs()
    assert set(seed["binance.spot.book_ticker"]) >= {"returns_1m", "vol_5m", "trend_regime"}
    assert seed["binance.spot.depth"] == ("ob_imbalance_l1", "ob_imbalance_l5")
    assert "binance.spot.kline" not in seed  # warm-up only
    assert feature_set("seed18").optional() == ("binance.spot.kline",)
    assert "reference.price" in feature_set("full").needs()
    hist = feature_set("history")
    assert set(hist.needs()) <= ARCHIVE_STREAMS
    assert (
        hist.needs()["binance.spot.trade"]
        == feature_set("seed18").needs()["binance.spot.book_ticker"]
    )
    for fs in FEATURE_SETS.values():  # every market feature reads some stream
        for n in fs.market_names:
            assert fs.definition(n).needs, (fs.name, n)


def test_refusal_names_streams_features_days_and_the_set_that_works() -> None:
    present = {
        "2026-05-01": set(ARCHIVE_STREAMS),
        "2026-05-02": set(ARCHIVE_STREAMS) | {"binance.spot.book_ticker"},
    }
    assert missing_streams(feature_set("history"), present) == {}
    assert refusal(feature_set("history"), present, "rec") is None
    msg = refusal(feature_set("seed18"), present, "rec")
    assert msg is not None and "\n" not in msg
    assert "binance.spot.book_ticker (needed by returns_1m, returns_5m, returns_10m" in msg
    assert (
        "binance.spot.depth (needed by ob_imbalance_l1, ob_imbalance_l5) is missing from "
        "2026-05-01, 2026-05-02;" in msg
    )
    assert "trend_regime) is missing from 2026-05-01;" in msg  # the book ticker: one day
    assert msg.startswith("feature set seed18 cannot run on rec: ")
    assert msg.endswith("use --feature-set history")
    gone = {"2026-05-01": set(ARCHIVE_STREAMS) - {"binance.spot.trade"}}
    msg = refusal(feature_set("history"), gone, "rec")
    assert msg is not None and "binance.spot.trade (needed by returns_1m" in msg
    assert msg.endswith("no built-in feature set has every stream it needs there")


def test_the_history_version_differs_from_seed18_with_the_same_names() -> None:
    assert feature_set("history").dim == 18
    assert feature_set("history").version != feature_set("seed18").version
    assert "up_imbalance_l1" in feature_set("history").names
    assert "ob_imbalance_l1" not in feature_set("history").names


# ---------------------------------------------------------------------------------------------
# computing on the archive streams


def test_history_computes_on_the_archive_streams(archive: dict[str, pl.DataFrame]) -> None:
    obs = replay(archive, "history")
    fs = feature_set("history")
    names = fs.market_names
    late = TICKS >= T0 + 6 * 60 * S  # 5 min of trades cover vol_5m and trade_intensity
    for m in range(len(MARKETS)):
        assert obs.ready[late, m].mean() > 0.9, MARKETS[m]
        assert not obs.ready[TICKS < T0 + 4 * 60 * S, m].any()  # vol_5m not covered yet
        f = obs.features[obs.ready[:, m], m].astype(np.float64)
        assert np.isfinite(f).all()
        for n in ("up_imbalance_l1", "up_imbalance_l5"):
            col = f[:, names.index(n)]
            assert (np.abs(col) <= 1).all() and np.unique(col).shape[0] > 10, n
        # up_imbalance from the Up token's book as the broker sees it at the tick
        r = obs.ready[:, m]
        bid, ask = obs.book_size[r, m, 0, 0], obs.book_size[r, m, 0, 1]
        want1 = (bid[:, 0] - ask[:, 0]) / (bid[:, 0] + ask[:, 0])
        want5 = (bid.sum(1) - ask.sum(1)) / (bid.sum(1) + ask.sum(1))
        np.testing.assert_allclose(f[:, names.index("up_imbalance_l1")], want1, rtol=1e-6)
        np.testing.assert_allclose(f[:, names.index("up_imbalance_l5")], want5, rtol=1e-6)


def test_history_reads_p_from_the_last_spot_trade(archive: dict[str, pl.DataFrame]) -> None:
    """returns_1m = ln(P(t) / P(t - 60 s)) with P the last spot trade received by then."""
    obs = replay(archive, "history")
    ix = feature_set("history").market_names.index("returns_1m")
    tr = archive["binance.spot.trade"]
    for m, asset in enumerate(MARKETS):
        t = tr.filter(pl.col("asset") == asset)
        recv, px = t["recv_ns"].to_numpy(), t["price"].to_numpy()

        def p(q: np.ndarray, recv: np.ndarray = recv, px: np.ndarray = px) -> np.ndarray:
            return px[np.searchsorted(recv, q, side="right") - 1]

        ok = obs.ready[:, m] & (TICKS - 60 * S >= recv[0])
        assert ok.sum() > 100
        want = np.log(p(TICKS[ok]) / p(TICKS[ok] - 60 * S))
        got = obs.features[ok, m, ix].astype(np.float64)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
        assert np.abs(want).max() > 0  # the price moves: the check is not of zeros


def test_history_ignores_the_book_streams_it_does_not_need(
    recorded: dict[str, pl.DataFrame], archive: dict[str, pl.DataFrame]
) -> None:
    """On a recorded day (book ticker, partial book and reference present) history computes
    exactly what it computes on the same day's archive streams."""
    full = replay(with_klines(recorded, "1s", "1m"), "history")
    arch = replay(archive, "history")
    np.testing.assert_array_equal(full.features, arch.features)
    np.testing.assert_array_equal(full.ready, arch.ready)


@pytest.mark.parametrize("fset", ["seed18", "full", "history"])
def test_one_second_klines_never_reach_the_minute_logic(
    recorded: dict[str, pl.DataFrame], fset: str
) -> None:
    """1 s bars in the kline stream change nothing (warm-up, minute grid, vol_regime read
    closed 1 m bars only); P never reads a bar at all in history."""
    without = replay(recorded, fset)
    with_1s = replay(with_klines(recorded, "1s"), fset)
    for k in ("features", "ready", "tradable"):
        np.testing.assert_array_equal(getattr(without, k), getattr(with_1s, k))
    assert without.ready.any()


# ---------------------------------------------------------------------------------------------
# no look-ahead


@pytest.mark.parametrize("cut_frac", [0.25, 0.6, 0.85, 0.97])
@pytest.mark.parametrize("batch_rows", [3_000, 10**9])
def test_history_never_looks_ahead(
    archive: dict[str, pl.DataFrame], cut_frac: float, batch_rows: int
) -> None:
    """Appending later events never changes an earlier observation: replaying the archive
    streams truncated to the events received by c gives, at every tick <= c, the same
    features, readiness and books as replaying them all (in batches of ``batch_rows``)."""
    b = merge(archive)
    c = int(TICKS[int(cut_frac * (TICKS.shape[0] - 1))])
    fe = FeatureEngine(MARKETS, FeatureConfig(feature_set="history"))
    n = len(b)
    for lo in range(0, n, batch_rows):
        fe.ingest(_slice(b, lo, min(n, lo + batch_rows)))
    full = fe.observe_many(TICKS)
    cut = {s: t.filter(pl.col("recv_ns") <= c) for s, t in archive.items()}
    head = TICKS[TICKS <= c]
    trunc = replay(cut, "history", head)
    k = head.shape[0]
    np.testing.assert_array_equal(full.features[:k], trunc.features)
    np.testing.assert_array_equal(full.ready[:k], trunc.ready)
    np.testing.assert_array_equal(full.book_size[:k], trunc.book_size)
    if cut_frac > 0.8:
        assert trunc.ready.any()
    assert math.isfinite(float(trunc.features.sum()))


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


# ---------------------------------------------------------------------------------------------
# what a day has


def test_a_quiet_recorded_day_has_its_liquidations_an_imported_one_must_show_them(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    """Liquidations have rows only when one happens: on a day the recorder or simulator made
    (it always subscribes them) no partition means none happened; on an imported day it
    means the archive had none to give."""
    import json

    from polyrl.recording.provenance import provenance_path
    from polyrl.replay import day_streams

    root = tmp_path / "rec"
    for day in ("2026-05-01", "2026-05-02", "2026-05-03"):
        h = root / "polymarket.book" / f"date={day}" / "hour=00"
        h.mkdir(parents=True)
        pl.DataFrame({"x": [1]}).write_parquet(h / "part-0.parquet")
    for day, kind in (("2026-05-01", "recorded"), ("2026-05-02", "imported")):
        path = provenance_path(root, day)
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"format": 1, "sources": [{"kind": kind, "by": "t"}]}))
    got = day_streams(root, "2026-05-*")
    assert got["2026-05-01"] == {"polymarket.book", "binance.futures.liquidation"}
    assert got["2026-05-02"] == {"polymarket.book"}
    assert got["2026-05-03"] == {"polymarket.book", "binance.futures.liquidation"}  # unknown


# ---------------------------------------------------------------------------------------------
# imported 1 m bars as warm-up


def test_imported_minute_bars_count_from_their_own_receipt(
    archive: dict[str, pl.DataFrame],
) -> None:
    """Spot trades start 4 minutes in; before that P comes from the imported 1 m bars, each
    received DELAY after it closed. Replaying in small batches gives what one batch gives (a
    bar is known from its own receipt, not from its batch's), truncating at c changes no
    earlier tick, and the bars are used: returns_5m is defined before 5 minutes of trades."""
    late = T0 + 4 * 60 * S
    tables = dict(archive)
    tables["binance.spot.trade"] = archive["binance.spot.trade"].filter(pl.col("recv_ns") >= late)
    b = merge(tables)
    one = replay(tables, "history")
    fe = FeatureEngine(MARKETS, FeatureConfig(feature_set="history"))
    for lo in range(0, len(b), 500):
        fe.ingest(_slice(b, lo, min(len(b), lo + 500)))
    small = fe.observe_many(TICKS)
    np.testing.assert_array_equal(one.features, small.features)
    np.testing.assert_array_equal(one.ready, small.ready)
    ix = feature_set("history").market_names.index("returns_5m")
    early = (TICKS > late) & (TICKS < late + 5 * 60 * S)
    # (undefined features are 0 in the observation: nonzero means P(t - 5 min) from a bar)
    assert np.count_nonzero(one.features[early, 0, ix]) > 10
    c = late + 90 * S
    cut = {s: t.filter(pl.col("recv_ns") <= c) for s, t in tables.items()}
    head = TICKS[TICKS <= c]
    trunc = replay(cut, "history", head)
    np.testing.assert_array_equal(one.features[: head.shape[0]], trunc.features)
    np.testing.assert_array_equal(one.ready[: head.shape[0]], trunc.ready)
