"""FeatureEngine: recorded or live events -> one observation per market per decision tick.

The engine is fed columnar batches of events in ``(recv_ns, seq)`` order
(:meth:`FeatureEngine.ingest`) and asked for observations at decision ticks in increasing
time (:meth:`FeatureEngine.observe` for one tick, :meth:`FeatureEngine.observe_many` for
many — the same computation, which replay uses to go fast). It may be fed events beyond the
tick it is asked about; **an observation at tick t depends only on events with
``recv_ns <= t``** (every lookup is as-of t, and the sequential state — books, markets,
connection status — is advanced exactly to t). The fill books at t + fill latency come from
a market log of their own (:mod:`polyrl.features.fills`), so a latency of any size never
moves what the features read; they need every event up to t + latency ingested. Live mode
feeds it each tick's events just before asking; replay feeds it whole batches; both get
the same numbers.

Two kinds of state, each in its own module:

- Binance and reference series per asset (:class:`~polyrl.features.history.AssetHistory`),
  queried vectorised at all ticks at once: momentum, volatility, order flow, funding, open
  interest, liquidations, the reference move. See :mod:`polyrl.features.definitions` for every
  definition.
- A sequential log of Polymarket and status events (:class:`~polyrl.features.markets.
  MarketLog`), applied up to each tick: which window each asset is in, token books (top
  ``book_levels`` levels for the broker), resolutions, and channel connectivity.

This module joins them: the book features (the Up token's mid, spread and size imbalance),
time left, the fair probability of Up, readiness, and how a window is settled. The set says
where the spot price comes from (``FeatureSet.spot_price``: the book ticker's mid, or the last
spot trade for ``history``); the other stream is not read.

A market (slot) is *ready* when every market feature of the set is defined and fresh, and
*tradable* when it is ready, inside a known window, both its tokens' books are synced and
heard from within ``book_stale_s`` (a book that stops updating without a disconnect is not
traded against for the watchdog's whole delay), and no venue channel it depends on is down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyrl.events import NS_PER_S, WINDOW_NS
from polyrl.features.columns import head_sums
from polyrl.features.definitions import SPOT_TRADE
from polyrl.features.fills import FillBooks, write_book
from polyrl.features.flags import without_skipped
from polyrl.features.history import MIN, AssetHistory
from polyrl.features.markets import MarketLog, Window, window_fields
from polyrl.features.reference_feeds import ReferenceVerdict
from polyrl.features.sets import FeatureSet, feature_set
from polyrl.recording.columns import StreamCols
from polyrl.recording.reader import MergedBatch


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureConfig:
    """How features are computed (``[features]``)."""

    feature_set: str = "seed18"
    """Named feature set: seed18 (the seed's 18 features), full, or history (the seed's ideas
    from the streams public archives hold: see :mod:`polyrl.features.sets`)."""
    book_levels: int = 5
    """Book levels per side kept for the broker's fills."""
    large_trade_mult: float = 10.0
    """A trade is large when its notional is this many times the 30-minute mean notional."""
    stale_s: float = 10.0
    """A spot price or book older than this (seconds) makes a market not ready."""
    book_stale_s: float = 5.0
    """A Polymarket token not heard from for longer than this (seconds, by recv_ns: any
    market-channel row for it) makes its market not tradable. Real BTC 15m books (1 Hz polls,
    2025-12-26, 32 windows) showed a top-5 change within 4 s in 99.9% of cases, 13 s at most;
    more than 5 s without one in 0.08% of token-seconds."""
    reference_max_age_s: float = 5.0
    """A reference-fallback settlement whose open or close tick was stamped more than this
    many seconds before its boundary is flagged ``reference_stale`` (ticks come about once a
    second; with 9 % of seconds missing, 5 s without one is a publisher gap, not jitter)."""

    def __post_init__(self) -> None:
        feature_set(self.feature_set)
        if not 1 <= self.book_levels <= 50:
            raise ValueError("book_levels must be in 1..50")
        if self.large_trade_mult <= 1:
            raise ValueError("large_trade_mult must be > 1")
        if self.stale_s <= 0:
            raise ValueError("stale_s must be > 0")
        if self.book_stale_s <= 0:
            raise ValueError("book_stale_s must be > 0")
        if self.reference_max_age_s < 0:
            raise ValueError("reference_max_age_s must be >= 0")


@dataclass(slots=True)
class ObsBatch:
    """Observations at ``T`` ticks for ``M`` markets (slots, one per asset).

    ``features`` [T, M, F] float32 (the set's market features, in set order);
    ``ready``/``tradable`` [T, M] bool; ``window`` [T, M] int32 (index into
    :attr:`FeatureEngine.windows`, -1 none); ``book_px``/``book_size`` [T, M, 2, 2, L]
    float64 (token Up/Down, side bid/ask, level best first) at the tick, and
    ``fill_px``/``fill_size`` the same at tick + fill latency (the same arrays when the
    latency is 0).
    """

    ticks: np.ndarray
    features: np.ndarray
    ready: np.ndarray
    tradable: np.ndarray
    window: np.ndarray
    book_px: np.ndarray
    book_size: np.ndarray
    fill_px: np.ndarray
    fill_size: np.ndarray


class FeatureEngine:
    """Incremental features for the markets of ``assets`` (slot i = assets[i])."""

    def __init__(
        self,
        assets: tuple[str, ...],
        config: FeatureConfig | None = None,
        *,
        fill_latency_ns: int = 0,
    ) -> None:
        self.config = config or FeatureConfig()
        self.fset: FeatureSet = feature_set(self.config.feature_set)
        self.assets = tuple(assets)
        self.fill_latency_ns = fill_latency_ns
        self.markets = MarketLog(self.assets)
        self._fills = (
            FillBooks(self.assets, [fill_latency_ns], self.config.book_levels)
            if fill_latency_ns
            else None
        )
        self._a = {a: AssetHistory() for a in self.assets}
        self._last_tick: int | None = None
        self.last_recv_ns = -(2**62)

    @property
    def windows(self) -> list[Window]:
        """Every window seen, in order of discovery (``Window.index`` is the position)."""
        return self.markets.windows

    @property
    def outages(self) -> list[tuple[str, int, int]]:
        """(channel, start_ns, end_ns) of every venue outage that ended (dated from the
        recorder's ``gap_start_ns`` once its gap row arrived)."""
        return self.markets.outages

    # =========================================================================================
    # ingest

    def ingest(self, batch: MergedBatch) -> None:
        """Take a batch of events (in merged order, after every earlier batch)."""
        if len(batch) == 0:
            return
        self.last_recv_ns = int(batch.recv_ns[-1])
        # Rows with impossible values never reach a feature (polyrl.features.flags says which).
        batch = without_skipped(batch)
        c = batch.columns
        mult = self.config.large_trade_mult
        # P, the spot price, comes from the one stream the set names (the other is not read,
        # so a set reading trades computes the same on a recorded day as on an imported one).
        price = (
            AssetHistory.add_spot_trades
            if self.fset.spot_price == SPOT_TRADE
            else AssetHistory.add_book_ticker
        )
        per_stream = (
            (self.fset.spot_price, price),
            ("binance.futures.trade", lambda a, c, r: a.add_trades(c, r, mult)),
            ("binance.futures.mark", AssetHistory.add_mark),
            ("binance.futures.open_interest", AssetHistory.add_open_interest),
            ("binance.futures.liquidation", AssetHistory.add_liquidations),
            ("reference.price", AssetHistory.add_reference),
            ("binance.spot.kline", AssetHistory.add_klines),
        )
        for stream, fn in per_stream:
            if stream in c:
                self._per_asset(c[stream], fn)
        if "binance.spot.depth" in c:
            self._ingest_depth(c["binance.spot.depth"])
        self.markets.ingest(batch)
        if self._fills is not None:
            self._fills.ingest(batch, filtered=True)

    def _per_asset(self, cols: StreamCols, fn: Any) -> None:
        """Call ``fn(history, cols, rows)`` per asset with that asset's row indices."""
        assets = cols.obj("asset")
        for name in self.assets:
            rows = np.flatnonzero(assets == name)
            if rows.shape[0]:
                fn(self._a[name], cols, rows)

    def _ingest_depth(self, c: StreamCols) -> None:
        b1, b5 = head_sums(*c.flat("bid_qty"), 5)
        a1, a5 = head_sums(*c.flat("ask_qty"), 5)
        with np.errstate(divide="ignore", invalid="ignore"):
            imb1 = np.nan_to_num((b1 - a1) / (b1 + a1), nan=0.0, posinf=0.0, neginf=0.0)
            imb5 = np.nan_to_num((b5 - a5) / (b5 + a5), nan=0.0, posinf=0.0, neginf=0.0)
        t = c.num("recv_ns", np.int64)
        self._per_asset(c, lambda a, _c, r: a.add_depth(t[r], imb1[r], imb5[r]))

    def catch_up(self, t: int) -> None:
        """Apply the sequential log (markets, books, resolutions, connectivity) up to ``t``
        without deciding: after a warm-up, the windows and books are known at once."""
        self.markets.advance(t)

    # =========================================================================================
    # outcomes

    def reference_outcome(self, w: Window, t_ns: int) -> ReferenceVerdict:
        """What the window's own reference feed (:attr:`Window.reference_feed`) says as known
        at ``t_ns``: the last tick stamped at or before the window's end against the last
        stamped at or before its start (ticks received by ``t_ns``); Up iff close >= open.
        Ticks of any other feed are never used (they only make a refusal a ``mismatch``)."""
        max_age = int(self.config.reference_max_age_s * NS_PER_S)
        return self._a[w.asset].reference_verdict(
            w.start_ns, w.end_ns, t_ns, w.reference_feed, max_age
        )

    def settle_outcome(self, w: Window, t_ns: int, timeout_ns: int) -> tuple[str, str] | None:
        """The outcome to settle ``w`` with at ``t_ns``, and its source; None while waiting.

        The recorded resolution once it has arrived; after ``end + timeout`` without one, the
        verdict of the window's own reference feed (source ``reference``; flagged
        :attr:`Window.reference_stale` when a boundary tick was old); a window with neither is
        ``missing`` (flagged :attr:`Window.reference_mismatch` when the recording had ticks of
        another feed only: those are refused, never used to settle).
        """
        if w.outcome is not None and w.outcome_ns is not None and w.outcome_ns <= t_ns:
            return w.outcome, str(w.outcome_source)
        if t_ns < w.end_ns + timeout_ns:
            return None
        v = self.reference_outcome(w, w.end_ns + timeout_ns)
        w.reference_mismatch, w.reference_stale = v.mismatch, v.stale
        return (v.outcome, "reference") if v.outcome is not None else ("missing", "missing")

    def finalize_outcomes(self, until_ns: int, timeout_ns: int) -> list[Window]:
        """Apply everything logged up to ``until_ns`` and fix each window's outcome as the
        Engine will settle it (see :meth:`settle_outcome`). Returns the windows."""
        self.markets.advance(max(until_ns, self.markets.cursor_ns))
        for w in self.windows:
            if (
                w.outcome is not None
                and w.outcome_ns is not None
                and (w.outcome_ns <= w.end_ns + timeout_ns)
            ):
                continue
            probe = Window(**{**window_fields(w), "outcome": None, "outcome_ns": None})
            got = self.settle_outcome(probe, w.end_ns + timeout_ns, timeout_ns)
            if got is not None:
                w.outcome, w.outcome_source = got
                w.outcome_ns = w.end_ns + timeout_ns
                w.reference_mismatch = probe.reference_mismatch
                w.reference_stale = probe.reference_stale
        return self.windows

    # =========================================================================================
    # observe

    def observe(self, t: int) -> ObsBatch:
        """Observations at one tick (see :meth:`observe_many`)."""
        return self.observe_many(np.array([t], dtype=np.int64))

    def observe_many(self, ticks: np.ndarray) -> ObsBatch:
        """Observations at increasing ticks, each as of its own time (never later data).

        Every tick must be after the previous call's ticks, and every event received at or
        before the last tick plus the fill latency must have been ingested.
        """
        # Undefined values (log of 0, 0/0 before data) are NaN by design, masked by `ready`.
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._observe_many(ticks)

    def _observe_many(self, ticks: np.ndarray) -> ObsBatch:
        ticks = np.asarray(ticks, dtype=np.int64)
        if ticks.shape[0] == 0:
            raise ValueError("observe_many needs at least one tick")
        if self._last_tick is not None and ticks[0] <= self._last_tick:
            raise ValueError(f"tick {ticks[0]} is not after the last observed {self._last_tick}")
        if np.any(np.diff(ticks) <= 0):
            raise ValueError("ticks must increase")
        T, M, L = ticks.shape[0], len(self.assets), self.config.book_levels
        names = self.fset.market_names
        feats = np.full((T, M, len(names)), np.nan)
        ready = np.zeros((T, M), dtype=bool)
        stale_ns = int(self.config.stale_s * NS_PER_S)
        with_vol_regime = "vol_regime" in self.fset.names
        series_vals: list[dict[str, np.ndarray]] = [
            self._a[a].features(ticks, stale_ns=stale_ns, with_vol_regime=with_vol_regime)
            for a in self.assets
        ]
        window = np.full((T, M), -1, dtype=np.int32)
        book_px = np.full((T, M, 2, 2, L), np.nan)
        book_size = np.zeros((T, M, 2, 2, L))
        lat = self.fill_latency_ns
        pairs: list[list[tuple[str, str] | None]] = []
        synced = np.zeros((T, M), dtype=bool)
        fresh = np.zeros((T, M), dtype=bool)
        book_stale_ns = int(self.config.book_stale_s * NS_PER_S)
        up_down = np.zeros((T, M), dtype=bool)
        feed = np.full((T, M), "", dtype=object)
        mk = self.markets
        for k, t in enumerate(ticks.tolist()):
            mk.advance(t)
            channels_up = mk.channels_up()
            cur: list[tuple[str, str] | None] = []
            for m, asset in enumerate(self.assets):
                w = mk.current(asset, t)
                cur.append(None if w is None else (w.up_token, w.down_token))
                if w is None:
                    continue
                window[k, m] = w.index
                feed[k, m] = w.reference_feed  # as known at this tick
                up, dn = mk.books(w)
                synced[k, m] = bool(up and up.synced and dn and dn.synced)
                fresh[k, m] = mk.fresh(w, t, book_stale_ns)
                up_down[k, m] = channels_up
                write_book(book_px, book_size, k, m, up, dn, L)
            pairs.append(cur)
        if self._fills is not None:
            fill_px, fill_size = self._fills.observe(lat, ticks, pairs)
        else:
            fill_px, fill_size = book_px, book_size
        self._last_tick = int(ticks[-1])
        for a in self._a.values():
            a.trim(self._last_tick)
        up_bid = book_px[:, :, 0, 0, 0]
        up_ask = book_px[:, :, 0, 1, 0]
        up_imb = (
            _up_imbalance(book_size)
            if "up_imbalance_l1" in names or "up_imbalance_l5" in names
            else None
        )
        for m, asset in enumerate(self.assets):
            v = series_vals[m]
            if up_imb is not None:
                v["up_imbalance_l1"], v["up_imbalance_l5"] = up_imb[0][:, m], up_imb[1][:, m]
            v["spread_pct"] = (up_ask[:, m] - up_bid[:, m]) / ((up_ask[:, m] + up_bid[:, m]) / 2)
            v["up_mid"] = (up_ask[:, m] + up_bid[:, m]) / 2
            v["up_spread"] = up_ask[:, m] - up_bid[:, m]
            ws = np.array(
                [self.windows[i].start_ns if i >= 0 else 0 for i in window[:, m].tolist()],
                dtype=np.int64,
            )
            we = ws + WINDOW_NS
            v["time_remaining"] = np.where(window[:, m] >= 0, (we - ticks) / WINDOW_NS, np.nan)
            if "ref_move" in names or "fair_up" in names or "fair_gap" in names:
                ref_move = self._ref_move(asset, ticks, ws, feed[:, m])
                sigma = v["vol_5m"]
                tau_min = np.maximum((we - ticks) / MIN, 1e-6)
                z = ref_move / np.maximum(sigma * np.sqrt(tau_min), 1e-9)
                fair = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
                v["ref_move"] = ref_move
                v["fair_up"] = fair
                v["fair_gap"] = fair - v["up_mid"]
            for j, n in enumerate(names):
                feats[:, m, j] = v[n]
            ready[:, m] = np.all(np.isfinite(feats[:, m, :]), axis=1) & v["_ready"]
        tradable = ready & (window >= 0) & synced & fresh & up_down
        return ObsBatch(
            ticks=ticks,
            features=np.where(np.isfinite(feats), feats, 0.0).astype(np.float32),
            ready=ready,
            tradable=tradable,
            window=window,
            book_px=book_px,
            book_size=book_size,
            fill_px=fill_px,
            fill_size=fill_size,
        )

    def _ref_move(
        self, asset: str, ticks: np.ndarray, ws: np.ndarray, feeds: np.ndarray
    ) -> np.ndarray:
        """ref_move at each tick from the ticks of the feed its window settles on (``feeds``
        [T], "" outside a window): a market never reads another feed's prices."""
        out = np.full(ticks.shape, np.nan)
        for feed in dict.fromkeys(feeds.tolist()):
            if feed:
                sel = feeds == feed
                out = np.where(sel, self._a[asset].ref_move(ticks, ws, sel, feed), out)
        return out


def _up_imbalance(book_size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bid - ask) / (bid + ask) of the Up token's sizes at level 1 and summed over levels
    1-5 (as many as are kept), from ``book_size`` [T, M, token, side, L] at the tick ->
    two [T, M] arrays; NaN where the book has no size on either side."""
    up = book_size[:, :, 0, :, :5]
    b1, a1 = up[..., 0, 0], up[..., 1, 0]
    b5, a5 = up[..., 0, :].sum(axis=-1), up[..., 1, :].sum(axis=-1)
    return (b1 - a1) / (b1 + a1), (b5 - a5) / (b5 + a5)


def _erf(x: np.ndarray) -> np.ndarray:
    """Vectorised error function (Abramowitz-Stegun 7.1.26, |error| < 1.5e-7)."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (
        ((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592
    ) * t * np.exp(-a * a)
    return sign * y
