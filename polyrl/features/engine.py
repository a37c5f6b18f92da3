"""FeatureEngine: recorded or live events -> one observation per market per decision tick.

The engine is fed columnar batches of events in ``(recv_ns, seq)`` order
(:meth:`FeatureEngine.ingest`) and asked for observations at decision ticks in increasing
time (:meth:`FeatureEngine.observe` for one tick, :meth:`FeatureEngine.observe_many` for
many — the same computation, which replay uses to go fast). It may be fed events beyond the
tick it is asked about; **an observation at tick t depends only on events with
``recv_ns <= t``** (every lookup is as-of t, and the sequential state — books, markets,
connection status — is advanced exactly to t). Live mode feeds it each tick's events just
before asking; replay feeds it whole batches; both get the same numbers.

Two kinds of state:

- Binance and reference series (:class:`~polyrl.features.series.Series`), queried
  vectorised at all ticks at once: momentum, volatility, order flow, funding, open
  interest, liquidations, the reference move. See :mod:`polyrl.features.sets` for every
  definition.
- A sequential log of Polymarket and status events, applied up to each tick: market
  discovery (which window each asset is in), token books (top ``book_levels`` levels for
  the broker), resolutions, and channel connectivity. A disconnect (or a recorder restart)
  unsyncs every Polymarket book until its next full ``book``: no decision is made on a
  book that was not re-synchronised after a gap.

A market (slot) is *ready* when every market feature of the set is defined and fresh, and
*tradable* when it is ready, inside a known window, both its tokens' books are synced,
and no venue channel it depends on is down.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polyrl.events import (
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_WS,
    CH_POLYMARKET_WS,
    CH_RECORDER,
    NS_PER_S,
    WINDOW_NS,
)
from polyrl.features.columns import StreamCols, head_sums
from polyrl.features.series import Grid, Series
from polyrl.features.sets import FeatureSet, feature_set
from polyrl.recording.reader import MergedBatch
from polyrl.sources.polymarket.book import TokenBook

S = NS_PER_S
MIN = 60 * S
LOOKBACK_NS = 40 * MIN
"""History kept behind the latest tick (the longest window is 30 min)."""
TRADE_DEPENDENT_CHANNELS = (CH_BINANCE_SPOT_WS, CH_BINANCE_FUTURES_WS, CH_POLYMARKET_WS)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureConfig:
    """How features are computed (``[features]``)."""

    feature_set: str = "seed18"
    """Named feature set: seed18 (the seed's 18 features) or full."""
    book_levels: int = 5
    """Book levels per side kept for the broker's fills."""
    large_trade_mult: float = 10.0
    """A trade is large when its notional is this many times the 30-minute mean notional."""
    stale_s: float = 10.0
    """A spot price or book older than this (seconds) makes a market not ready."""

    def __post_init__(self) -> None:
        feature_set(self.feature_set)
        if not 1 <= self.book_levels <= 50:
            raise ValueError("book_levels must be in 1..50")
        if self.large_trade_mult <= 1:
            raise ValueError("large_trade_mult must be > 1")
        if self.stale_s <= 0:
            raise ValueError("stale_s must be > 0")


@dataclass(slots=True)
class Window:
    """One asset's 15-minute market, as known from ``polymarket.market`` rows."""

    index: int
    asset: str
    slot: int
    condition_id: str
    slug: str
    up_token: str
    down_token: str
    start_ns: int
    end_ns: int
    known_ns: int
    tick_size: float
    min_size: float
    fees_enabled: bool
    fee_rate: float
    fee_exponent: float
    outcome: str | None = None
    outcome_source: str | None = None
    outcome_ns: int | None = None
    gap: bool = False
    """A venue outage overlapped the window (training may leave it out)."""


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


@dataclass(slots=True)
class _Asset:
    mid: Series = field(default_factory=lambda: Series("mid"))
    depth: Series = field(default_factory=lambda: Series("imb1", "imb5"))
    trades: Series = field(default_factory=lambda: Series("cs", "cq", "cc", "cn", "cbig"))
    funding: Series = field(default_factory=lambda: Series("rate"))
    oi: Series = field(default_factory=lambda: Series("oi"))
    liq: Series = field(default_factory=lambda: Series("cl"))
    ref: Series = field(default_factory=lambda: Series("exch", "value", "exch_env"))
    kline: Series = field(default_factory=lambda: Series("close"))
    ref_ticks: list[tuple[int, int, float]] = field(default_factory=list)
    """(recv_ns, exch_ns, value) of live reference ticks, kept ~2 h for settlement fallback."""
    kline_known_ns: int | None = None
    first_mid_ns: int | None = None
    first_trade_ns: int | None = None
    first_oi_ns: int | None = None
    # per-second log price and running sum of squared 1 s returns; per-minute log price
    sec: Grid = field(default_factory=lambda: Grid(k=2))
    mins: Grid = field(default_factory=lambda: Grid(k=3))
    """Per minute: log P, cumulative squared 1-minute returns, cumulative undefined returns."""
    kline_dirty: bool = False


_LOG_STREAMS = (
    "polymarket.market",
    "polymarket.book",
    "polymarket.price_change",
    "polymarket.resolution",
    "recorder.status",
)


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
        self.slot_of = {a: i for i, a in enumerate(self.assets)}
        self.fill_latency_ns = fill_latency_ns
        self._a = {a: _Asset() for a in self.assets}
        self._log: deque[tuple[Any, ...]] = deque()
        self.windows: list[Window] = []
        self._by_cid: dict[str, Window] = {}
        self._live: dict[str, list[Window]] = {a: [] for a in self.assets}
        self._tokens: dict[str, TokenBook] = {}
        # Unknown at first (a replay may start mid-recording): up until a status says not.
        self._down: set[str] = set()
        self._down_since: dict[str, int] = {}
        self.outages: list[tuple[str, int, int]] = []
        self._cursor_ns = -(2**62)
        self._last_tick: int | None = None
        self.last_recv_ns = -(2**62)

    # =========================================================================================
    # ingest

    def ingest(self, batch: MergedBatch) -> None:
        """Take a batch of events (in merged order, after every earlier batch)."""
        if len(batch) == 0:
            return
        self.last_recv_ns = int(batch.recv_ns[-1])
        c = batch.columns
        if "binance.spot.book_ticker" in c:
            self._per_asset(c["binance.spot.book_ticker"], self._mid)
        if "binance.spot.depth" in c:
            self._ingest_depth(c["binance.spot.depth"])
        if "binance.futures.trade" in c:
            self._per_asset(c["binance.futures.trade"], self._trades)
        if "binance.futures.mark" in c:
            self._per_asset(c["binance.futures.mark"], self._funding)
        if "binance.futures.open_interest" in c:
            self._per_asset(c["binance.futures.open_interest"], self._oi)
        if "binance.futures.liquidation" in c:
            self._per_asset(c["binance.futures.liquidation"], self._liq)
        if "reference.price" in c:
            self._per_asset(c["reference.price"], self._ref)
        if "binance.spot.kline" in c:
            self._per_asset(c["binance.spot.kline"], self._klines)
        self._ingest_log(batch)

    def _per_asset(self, cols: StreamCols, fn: Any, extra: dict[str, np.ndarray] | None = None,
                   keep: np.ndarray | None = None) -> None:  # fmt: skip
        """Call ``fn(asset_state, cols, rows)`` per asset with that asset's row indices."""
        assets = cols.obj("asset")
        for name in self.assets:
            rows = np.flatnonzero(assets == name)
            if keep is not None:
                rows = rows[keep[rows]]
            if rows.shape[0]:
                fn(self._a[name], cols, rows)

    @staticmethod
    def _mid(a: _Asset, c: StreamCols, r: np.ndarray) -> None:
        t = c.num("recv_ns", np.int64)[r]
        a.mid.append(t, (c.num("bid_px")[r] + c.num("ask_px")[r]) / 2)
        if a.first_mid_ns is None:
            a.first_mid_ns = int(t[0])

    def _ingest_depth(self, c: StreamCols) -> None:
        b1, b5 = head_sums(*c.flat("bid_qty"), 5)
        a1, a5 = head_sums(*c.flat("ask_qty"), 5)
        with np.errstate(divide="ignore", invalid="ignore"):
            imb1 = np.nan_to_num((b1 - a1) / (b1 + a1), nan=0.0, posinf=0.0, neginf=0.0)
            imb5 = np.nan_to_num((b5 - a5) / (b5 + a5), nan=0.0, posinf=0.0, neginf=0.0)

        def f(a: _Asset, c: StreamCols, r: np.ndarray) -> None:
            a.depth.append(c.num("recv_ns", np.int64)[r], imb1[r], imb5[r])

        self._per_asset(c, f)

    def _trades(self, a: _Asset, c: StreamCols, r: np.ndarray) -> None:
        mult = self.config.large_trade_mult
        t = c.num("recv_ns", np.int64)[r]
        qty = c.num("qty")[r]
        signed = qty * c.num("side")[r]
        notional = qty * c.num("price")[r]
        tr = a.trades
        base = (
            np.array([tr.last("cs"), tr.last("cq"), tr.last("cc"), tr.last("cn")])
            if len(tr)
            else np.zeros(4)
        )
        cs = base[0] + np.cumsum(signed)
        cq = base[1] + np.cumsum(qty)
        cc = base[2] + np.cumsum(np.ones_like(qty))
        cn = base[3] + np.cumsum(notional)
        # Mean notional over the 30 minutes before each trade (that trade excluded).
        all_t = np.concatenate([tr.t, t])
        all_cn = np.concatenate([tr.col("cn"), cn])
        all_cc = np.concatenate([tr.col("cc"), cc])
        k = len(tr)
        j = np.searchsorted(all_t, t - 30 * MIN, side="right") - 1
        prev = np.arange(k, k + len(t)) - 1
        cn_prev = np.where(prev >= 0, all_cn[np.maximum(prev, 0)], 0.0)
        cc_prev = np.where(prev >= 0, all_cc[np.maximum(prev, 0)], 0.0)
        cn_j = np.where(j >= 0, all_cn[np.maximum(j, 0)], 0.0)
        cc_j = np.where(j >= 0, all_cc[np.maximum(j, 0)], 0.0)
        n = cc_prev - cc_j
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(n > 0, (cn_prev - cn_j) / np.maximum(n, 1), np.inf)
        big = ((n >= 100) & (notional >= mult * mean)).astype(np.float64)
        cbig = (tr.last("cbig") if len(tr) else 0.0) + np.cumsum(big)
        tr.append(t, cs, cq, cc, cn, cbig)
        if a.first_trade_ns is None:
            a.first_trade_ns = int(t[0])

    @staticmethod
    def _funding(a: _Asset, c: StreamCols, r: np.ndarray) -> None:
        a.funding.append(c.num("recv_ns", np.int64)[r], c.num("funding_rate", fill=0.0)[r])

    @staticmethod
    def _oi(a: _Asset, c: StreamCols, r: np.ndarray) -> None:
        t = c.num("recv_ns", np.int64)[r]
        a.oi.append(t, c.num("open_interest")[r])
        if a.first_oi_ns is None:
            a.first_oi_ns = int(t[0])

    @staticmethod
    def _liq(a: _Asset, c: StreamCols, r: np.ndarray) -> None:
        notional = c.num("qty")[r] * c.num("avg_price")[r]
        base = a.liq.last("cl") if len(a.liq) else 0.0
        a.liq.append(c.num("recv_ns", np.int64)[r], base + np.cumsum(notional))

    @staticmethod
    def _ref(a: _Asset, c: StreamCols, r: np.ndarray) -> None:
        r = r[~c.obj("backfill")[r].astype(bool)]
        if r.shape[0] == 0:
            return
        exch = c.num("exch_ns", np.int64, fill=0)[r].astype(np.float64)
        prev = a.ref.last("exch_env") if len(a.ref) else -np.inf
        env = np.maximum.accumulate(np.maximum(exch, prev))
        recv = c.num("recv_ns", np.int64)[r]
        value = c.num("value")[r]
        a.ref.append(recv, exch, value, env)
        a.ref_ticks.extend(
            zip(recv.tolist(), exch.astype(np.int64).tolist(), value.tolist(), strict=True)
        )

    @staticmethod
    def _klines(a: _Asset, c: StreamCols, r: np.ndarray) -> None:
        ok = c.obj("closed")[r].astype(bool) & (c.obj("interval")[r] == "1m")
        r = r[ok]
        if r.shape[0] == 0:
            return
        open_ns = c.num("open_ns", np.int64)[r]
        order = np.argsort(open_ns, kind="stable")
        close_at = open_ns[order] + MIN
        close = c.num("close")[r][order]
        have = a.kline.t
        keep = close_at > (have[-1] if have.shape[0] else -(2**62))
        if keep.any():
            a.kline.append(close_at[keep], close[keep])
        known = int(c.num("recv_ns", np.int64)[r].max())
        a.kline_known_ns = known if a.kline_known_ns is None else min(a.kline_known_ns, known)
        a.kline_dirty = True

    def _ingest_log(self, batch: MergedBatch) -> None:
        present = [s for s in _LOG_STREAMS if s in batch.columns]
        if not present:
            return
        codes = {batch.streams.index(s): s for s in present}
        sel = np.flatnonzero(np.isin(batch.stream_code, list(codes)))
        names = {
            "polymarket.market": ["recv_ns", "key", "asset", "slug", "up_token", "down_token",
                                  "window_start_ns", "window_end_ns", "tick_size", "min_size",
                                  "fees_enabled", "fee_rate", "fee_exponent"],
            "polymarket.book": ["recv_ns", "key", "bid_px", "bid_size", "ask_px", "ask_size"],
            "polymarket.price_change": ["recv_ns", "key", "side", "price", "size"],
            "polymarket.resolution": ["recv_ns", "key", "outcome", "source"],
            "recorder.status": ["recv_ns", "key", "kind"],
        }  # fmt: skip
        cols = {s: batch.columns[s].lists(names[s]) for s in present}
        counter = dict.fromkeys(present, 0)
        log = self._log
        for code in batch.stream_code[sel].tolist():
            s = codes[code]
            i = counter[s]
            counter[s] = i + 1
            c = cols[s]
            if s == "polymarket.price_change":
                log.append((c["recv_ns"][i], 2, c["key"][i], c["side"][i] == "BUY",
                            c["price"][i], c["size"][i]))  # fmt: skip
            elif s == "polymarket.book":
                log.append((c["recv_ns"][i], 1, c["key"][i], c["bid_px"][i], c["bid_size"][i],
                            c["ask_px"][i], c["ask_size"][i]))  # fmt: skip
            elif s == "recorder.status":
                log.append((c["recv_ns"][i], 4, c["key"][i], c["kind"][i]))
            elif s == "polymarket.market":
                log.append((c["recv_ns"][i], 0, *(c[n][i] for n in names[s][1:])))
            else:
                log.append((c["recv_ns"][i], 3, c["key"][i], c["outcome"][i], c["source"][i]))

    # =========================================================================================
    # the sequential log

    def catch_up(self, t: int) -> None:
        """Apply the sequential log (markets, books, resolutions, connectivity) up to ``t``
        without deciding: after a warm-up, the windows and books are known at once."""
        self._advance(t)

    def _advance(self, t: int) -> None:
        """Apply every logged event with recv_ns <= t."""
        log = self._log
        tokens = self._tokens
        while log and log[0][0] <= t:
            e = log.popleft()
            kind = e[1]
            if kind == 2:
                lv = tokens.get(e[2])
                if lv is not None:
                    lv.set_level(e[3], e[4], e[5])
            elif kind == 1:
                lv = tokens.get(e[2])
                if lv is None:
                    lv = tokens[e[2]] = TokenBook(e[2])
                lv.replace(e[3], e[4], e[5], e[6])
            elif kind == 4:
                self._status(e[0], e[2], e[3])
            elif kind == 0:
                self._market(e)
            else:
                w = self._by_cid.get(e[2])
                if w is not None and w.outcome is None:
                    w.outcome, w.outcome_source, w.outcome_ns = e[3], e[4], e[0]
        self._cursor_ns = t

    def _status(self, t: int, channel: str, kind: str) -> None:
        if kind == "start" and channel == CH_RECORDER:
            # A (re)started recorder: nothing is connected yet, every book must resync.
            for ch in TRADE_DEPENDENT_CHANNELS:
                self._down_since.setdefault(ch, t)
            self._down |= set(TRADE_DEPENDENT_CHANNELS)
            for lv in self._tokens.values():
                lv.reset()
        elif kind in ("disconnect", "connect_failed"):
            if channel in TRADE_DEPENDENT_CHANNELS:
                self._down.add(channel)
                self._down_since.setdefault(channel, t)
            if channel == CH_POLYMARKET_WS:
                for lv in self._tokens.values():
                    lv.reset()
        elif kind == "connect":
            if channel in self._down:
                self._down.discard(channel)
                since = self._down_since.pop(channel, None)
                if since is not None and self.windows:
                    self._outage(channel, since, t)

    def _outage(self, channel: str, a: int, b: int) -> None:
        self.outages.append((channel, a, b))
        for w in self.windows[-64:]:
            if w.start_ns < b and a < w.end_ns:
                w.gap = True

    def _market(self, e: tuple[Any, ...]) -> None:
        (recv, _, cid, asset, slug, up, down, ws, we, tick, min_size, fees_on, rate, expo) = e
        if asset not in self.slot_of or cid in self._by_cid or we - ws != WINDOW_NS:
            return
        w = Window(
            index=len(self.windows),
            asset=asset,
            slot=self.slot_of[asset],
            condition_id=cid,
            slug=slug,
            up_token=up,
            down_token=down,
            start_ns=ws,
            end_ns=we,
            known_ns=recv,
            tick_size=tick,
            min_size=min_size,
            fees_enabled=fees_on,
            fee_rate=rate,
            fee_exponent=expo,
        )
        for ch, since in self._down_since.items():
            if since < we and ch in self._down and self.windows:
                w.gap = True
        self.windows.append(w)
        self._by_cid[cid] = w
        live = self._live[asset]
        live.append(w)
        live.sort(key=lambda x: x.start_ns)
        for tok in (up, down):
            self._tokens.setdefault(tok, TokenBook(tok))

    def _current(self, asset: str, t: int) -> Window | None:
        live = self._live[asset]
        cur = None
        for w in live:
            if w.start_ns <= t < w.end_ns:
                cur = w
        # Forget windows that ended a while ago (their books are no longer needed).
        while live and live[0].end_ns < t - WINDOW_NS:
            old = live.pop(0)
            self._tokens.pop(old.up_token, None)
            self._tokens.pop(old.down_token, None)
        return cur

    # =========================================================================================
    # outcomes

    def reference_outcome(self, w: Window, t_ns: int) -> str | None:
        """Up/Down from the reference feed as known at ``t_ns``: the last tick stamped at or
        before the window's end against the last stamped at or before its start (ticks
        received by ``t_ns``); Up iff close >= open. None when either is missing."""
        ticks = self._a[w.asset].ref_ticks
        open_v = close_v = None
        best_o = best_c = -(2**62)
        for recv, exch, value in ticks:
            if recv > t_ns:
                break
            if best_o <= exch <= w.start_ns:
                best_o, open_v = exch, value
            if best_c <= exch <= w.end_ns:
                best_c, close_v = exch, value
        if open_v is None or close_v is None or best_c < w.start_ns:
            return None
        return "Up" if close_v >= open_v else "Down"

    def settle_outcome(self, w: Window, t_ns: int, timeout_ns: int) -> tuple[str, str] | None:
        """The outcome to settle ``w`` with at ``t_ns``, and its source; None while waiting.

        The recorded resolution once it has arrived; after ``end + timeout`` without one, the
        reference feed's verdict (source ``reference``); a window with neither is ``missing``.
        """
        if w.outcome is not None and w.outcome_ns is not None and w.outcome_ns <= t_ns:
            return w.outcome, str(w.outcome_source)
        if t_ns < w.end_ns + timeout_ns:
            return None
        ref = self.reference_outcome(w, w.end_ns + timeout_ns)
        return (ref, "reference") if ref is not None else ("missing", "missing")

    def finalize_outcomes(self, until_ns: int, timeout_ns: int) -> list[Window]:
        """Apply everything logged up to ``until_ns`` and fix each window's outcome as the
        Engine will settle it (see :meth:`settle_outcome`). Returns the windows."""
        self._advance(max(until_ns, self._cursor_ns))
        for w in self.windows:
            if (
                w.outcome is not None
                and w.outcome_ns is not None
                and (w.outcome_ns <= w.end_ns + timeout_ns)
            ):
                continue
            got = self.settle_outcome(
                Window(**{**_window_fields(w), "outcome": None, "outcome_ns": None}),
                w.end_ns + timeout_ns,
                timeout_ns,
            )
            if got is not None:
                w.outcome, w.outcome_source = got
                w.outcome_ns = w.end_ns + timeout_ns
        return self.windows

    # =========================================================================================
    # observe

    def observe(self, t: int) -> ObsBatch:
        """Observations at one tick (see :meth:`observe_many`)."""
        return self.observe_many(np.array([t], dtype=np.int64))

    def observe_many(self, ticks: np.ndarray) -> ObsBatch:
        """Observations at increasing ticks, each as of its own time (never later data).

        Every tick must be after the previous call's ticks, and every event received at or
        before the last tick must have been ingested.
        """
        # Undefined values (log of 0, 0/0 before data) are NaN by design, masked by `ready`.
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._observe_many(ticks)

    def _observe_many(self, ticks: np.ndarray) -> ObsBatch:
        """Observations at increasing ticks, each as of its own time (never later data).

        Every tick must be after the previous call's ticks, and every event received at or
        before the last tick must have been ingested.
        """
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
        series_vals: list[dict[str, np.ndarray]] = [
            self._series_features(self._a[a], ticks) for a in self.assets
        ]
        window = np.full((T, M), -1, dtype=np.int32)
        book_px = np.full((T, M, 2, 2, L), np.nan)
        book_size = np.zeros((T, M, 2, 2, L))
        lat = self.fill_latency_ns
        fill_px = book_px if lat == 0 else np.full((T, M, 2, 2, L), np.nan)
        fill_size = book_size if lat == 0 else np.zeros((T, M, 2, 2, L))
        synced = np.zeros((T, M), dtype=bool)
        up_down = np.zeros((T, M), dtype=bool)
        for k, t in enumerate(ticks.tolist()):
            self._advance(t)
            channels_up = not (self._down & set(TRADE_DEPENDENT_CHANNELS))
            cur: list[Window | None] = []
            for m, asset in enumerate(self.assets):
                w = self._current(asset, t)
                cur.append(w)
                if w is None:
                    continue
                window[k, m] = w.index
                up, dn = self._tokens.get(w.up_token), self._tokens.get(w.down_token)
                synced[k, m] = bool(up and up.synced and dn and dn.synced)
                up_down[k, m] = channels_up
                self._fill_book(book_px, book_size, k, m, up, dn, L)
            if lat:
                self._advance(t + lat)
                for m, w in enumerate(cur):
                    if w is not None:
                        self._fill_book(
                            fill_px,
                            fill_size,
                            k,
                            m,
                            self._tokens.get(w.up_token),
                            self._tokens.get(w.down_token),
                            L,
                        )
        self._last_tick = int(ticks[-1])
        self._trim(int(ticks[-1]))
        up_bid = book_px[:, :, 0, 0, 0]
        up_ask = book_px[:, :, 0, 1, 0]
        for m, asset in enumerate(self.assets):
            v = series_vals[m]
            a = self._a[asset]
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
                ref_move = self._ref_move(a, ticks, ws, window[:, m] >= 0)
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
        tradable = ready & (window >= 0) & synced & up_down
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

    @staticmethod
    def _fill_book(
        px: np.ndarray,
        size: np.ndarray,
        k: int,
        m: int,
        up: TokenBook | None,
        dn: TokenBook | None,
        depth: int,
    ) -> None:
        for j, lv in ((0, up), (1, dn)):
            if lv is None or not lv.synced:
                continue
            bp, bs, ap, as_ = lv.top(depth)
            px[k, m, j, 0] = bp
            size[k, m, j, 0] = bs
            px[k, m, j, 1] = ap
            size[k, m, j, 1] = as_

    def _trim(self, t: int) -> None:
        keep = t - LOOKBACK_NS
        for a in self._a.values():
            for s in (a.mid, a.depth, a.trades, a.funding, a.oi, a.liq, a.ref):
                s.trim_before(keep)
            a.sec.trim(keep // S)
            a.mins.trim(keep // MIN)
            cut = t - 3 * 3600 * S
            if a.ref_ticks and a.ref_ticks[0][0] < cut:
                a.ref_ticks = [r for r in a.ref_ticks if r[0] >= cut]

    # -----------------------------------------------------------------------------------------
    # vectorised Binance / reference features

    def _price_at(self, a: _Asset, x: np.ndarray, q: np.ndarray) -> np.ndarray:
        """P as of times ``x`` as known at ticks ``q``: live mids, else kline closes (once the
        klines have been received by q)."""
        live = a.mid.value_asof("mid", x)
        if a.kline_known_ns is not None and len(a.kline):
            kl = a.kline.value_asof("close", x)
            kl = np.where(q >= a.kline_known_ns, kl, np.nan)
            live = np.where(np.isnan(live), kl, live)
        return live

    def _extend_seconds(self, a: _Asset, upto_s: int) -> None:
        """Sample log P at every second boundary up to ``upto_s`` (data at or before each)."""
        if a.first_mid_ns is None:
            return
        start = a.sec.end if a.sec.start is not None else a.first_mid_ns // S
        if upto_s < start:
            return
        secs = np.arange(start, upto_s + 1, dtype=np.int64)
        lp = np.log(a.mid.value_asof("mid", secs * S))
        prev = a.sec.values(0)[-1] if len(a.sec) else np.nan
        r = np.diff(np.concatenate([[prev], lp]))
        r = np.where(np.isfinite(r), r, 0.0)
        base = a.sec.values(1)[-1] if len(a.sec) else 0.0
        a.sec.extend(start, lp, base + np.cumsum(r * r))

    def _sec_vol(self, a: _Asset, q: np.ndarray, w: int) -> np.ndarray:
        """Realized vol of 1 s log returns over the last ``w`` seconds, per sqrt(minute);
        NaN until live prices cover the whole window."""
        j = q // S
        hi = a.sec.at(j, 1)
        lo = a.sec.at(j - w, 1)
        first = a.first_mid_ns // S if a.first_mid_ns is not None else 2**62
        ok = (j - w >= first) & np.isfinite(hi) & np.isfinite(lo)
        return np.where(ok, np.sqrt(np.maximum(hi - lo, 0.0) / w) * math.sqrt(60.0), np.nan)

    def _extend_minutes(self, a: _Asset, upto_m: int) -> None:
        """Sample log P at every minute boundary up to ``upto_m``: the live mid where live data
        had started, else the 1m kline close (whatever its knowledge time: queries check it);
        keep running sums of squared 1-minute returns and of undefined ones."""
        if a.first_mid_ns is None and not len(a.kline):
            return
        if a.kline_dirty and len(a.mins):
            # Klines arrived after minutes were sampled without them: fill those holes and
            # redo the running sums (the grid holds about an hour: cheap).
            idx = np.arange(a.mins.start or 0, a.mins.end, dtype=np.int64)
            vals = a.mins.values(0)
            hole = ~np.isfinite(vals)
            if hole.any():
                vals[hole] = np.log(a.kline.value_asof("close", idx[hole] * MIN))
                self._minute_sums(a.mins, 0, 0.0, 0.0, np.nan)
        a.kline_dirty = False
        if a.mins.start is None:
            firsts = []
            if len(a.kline):
                firsts.append(int(a.kline.t[0]) // MIN)
            if a.first_mid_ns is not None:
                firsts.append(a.first_mid_ns // MIN + 1)
            start = min(firsts)
        else:
            start = a.mins.end
        if upto_m < start:
            return
        mins = np.arange(start, upto_m + 1, dtype=np.int64) * MIN
        live_from = a.first_mid_ns if a.first_mid_ns is not None else 2**62
        live = a.mid.value_asof("mid", mins)
        kl = a.kline.value_asof("close", mins) if len(a.kline) else np.full(mins.shape, np.nan)
        n0 = len(a.mins)
        prev = a.mins.values(0)[-1] if n0 else np.nan
        c_sq = a.mins.values(1)[-1] if n0 else 0.0
        c_bad = a.mins.values(2)[-1] if n0 else 0.0
        lp = np.log(np.where(mins >= live_from, live, kl))
        a.mins.extend(start, lp, np.zeros(lp.shape), np.zeros(lp.shape))
        self._minute_sums(a.mins, n0, c_sq, c_bad, prev)

    @staticmethod
    def _minute_sums(g: Grid, i0: int, c_sq: float, c_bad: float, prev: float) -> None:
        """Recompute the running sums of rows 1 and 2 from grid position ``i0`` on."""
        lp = g.values(0)[i0:]
        r = np.diff(np.concatenate([[prev], lp]))
        bad = ~np.isfinite(r)
        g.values(1)[i0:] = c_sq + np.cumsum(np.where(bad, 0.0, r * r))
        g.values(2)[i0:] = c_bad + np.cumsum(bad.astype(np.float64))

    def _min_vol(self, a: _Asset, q: np.ndarray, w: int) -> np.ndarray:
        """Realized vol of 1-minute log returns over the last ``w`` minutes, per sqrt(minute).

        Minutes before live data started use kline closes, visible only from the klines'
        receive time: a tick before it that would need them gets NaN (no look-ahead).
        """
        self._extend_minutes(a, int(q[-1] // MIN))
        m_hi = q // MIN
        sq_hi, sq_lo = a.mins.at(m_hi, 1), a.mins.at(m_hi - w, 1)
        bad_hi, bad_lo = a.mins.at(m_hi, 2), a.mins.at(m_hi - w, 2)
        vol = np.sqrt(np.maximum(sq_hi - sq_lo, 0.0) / w)
        live_from_m = (a.first_mid_ns // MIN + 1) if a.first_mid_ns is not None else 2**62
        needs_klines = (m_hi - w) < live_from_m
        known = a.kline_known_ns if a.kline_known_ns is not None else 2**62
        ok = (
            np.isfinite(sq_lo)
            & np.isfinite(sq_hi)
            & (bad_hi - bad_lo == 0)
            & (~needs_klines | (q >= known))
        )
        return np.where(ok, vol, np.nan)

    def _series_features(self, a: _Asset, q: np.ndarray) -> dict[str, np.ndarray]:
        # Undefined values (log of 0, 0/0 before data) are NaN by design and masked after.
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._series_features_nan(a, q)

    def _series_features_nan(self, a: _Asset, q: np.ndarray) -> dict[str, np.ndarray]:
        # Each series is searched once for all the times it is queried at.
        stale = int(self.config.stale_s * S)
        v: dict[str, np.ndarray] = {}
        mid = a.mid.lookup(q)
        fresh = mid.age() <= stale
        p_now = np.where(fresh, mid.value("mid"), np.nan)
        lags = (("returns_1m", MIN), ("returns_5m", 5 * MIN), ("returns_10m", 10 * MIN))
        p_then = self._price_at(a, np.concatenate([q - lag for _, lag in lags]), np.tile(q, 3))
        for k, (name, _) in enumerate(lags):
            v[name] = np.log(p_now / p_then[k * len(q) : (k + 1) * len(q)])
        depth = a.depth.lookup(q)
        dfresh = depth.age() <= stale
        v["ob_imbalance_l1"] = np.where(dfresh, depth.value("imb1"), np.nan)
        v["ob_imbalance_l5"] = np.where(dfresh, depth.value("imb5"), np.nan)
        started = a.first_trade_ns if a.first_trade_ns is not None else 2**62
        covered = np.minimum(30 * MIN, q - started)
        # blocks: 0 now, 1 a minute ago, 2 30 s ago, 3 the covered span ago, 4 10 s ago
        tr = a.trades.lookup(q, q - MIN, q - 30 * S, q - covered, q - 10 * S)
        cs = lambda k: tr.cum("cs", k)  # noqa: E731
        cq = lambda k: tr.cum("cq", k)  # noqa: E731
        cc = lambda k: tr.cum("cc", k)  # noqa: E731
        vol60 = cq(0) - cq(1)
        flow_ok = q - started >= MIN
        v["trade_flow"] = np.where(
            flow_ok,
            np.where(vol60 > 0, (cs(0) - cs(1)) / np.maximum(vol60, 1e-300), 0.0),
            np.nan,
        )
        d30 = cs(0) - cs(2)
        d60 = cs(2) - cs(1)
        v["cvd_accel"] = np.where(
            flow_ok, np.where(vol60 > 0, (d30 - d60) / np.maximum(vol60, 1e-300), 0.0), np.nan
        )
        n60 = cc(0) - cc(1)
        mean60 = (cc(0) - cc(3)) / np.maximum(covered / MIN, 1e-9)
        v["trade_intensity"] = np.where(
            covered >= 5 * MIN, np.log((n60 + 1.0) / (mean60 + 1.0)), np.nan
        )
        big = tr.cum("cbig", 0) - tr.cum("cbig", 4)
        v["large_trade_flag"] = np.where(flow_ok, (big > 0).astype(np.float64), np.nan)
        self._extend_seconds(a, int(q[-1] // S))
        vol5 = self._sec_vol(a, q, 300)
        vol1 = self._sec_vol(a, q, 60)
        v["vol_5m"] = np.where(fresh, vol5, np.nan)
        v["vol_expansion"] = np.where(
            (vol1 > 0) & (vol5 > 0),
            np.log(np.maximum(vol1, 1e-300) / np.maximum(vol5, 1e-300)),
            0.0,
        )
        v["vol_expansion"] = np.where(np.isfinite(vol5), v["vol_expansion"], np.nan)
        if "vol_regime" in self.fset.names:
            vol30 = self._min_vol(a, q, 30)
            v["vol_regime"] = np.clip(
                np.where(
                    (vol5 > 0) & (vol30 > 0),
                    np.log(np.maximum(vol5, 1e-300) / np.maximum(vol30, 1e-300)),
                    0.0,
                ),
                -3.0,
                3.0,
            )
            v["vol_regime"] = np.where(
                np.isfinite(vol30) & np.isfinite(vol5), v["vol_regime"], np.nan
            )
        v["trend_regime"] = np.clip(
            v["returns_10m"] / np.maximum(vol5 * math.sqrt(10.0), 1e-9), -5.0, 5.0
        )
        v["funding_rate"] = a.funding.value_asof("rate", q) * 1e4
        oi = a.oi.lookup(q, q - 5 * MIN)
        v["oi_change_5m"] = np.log(oi.value("oi", 0) / oi.value("oi", 1))
        liq_ok = q - started >= 5 * MIN
        liq = a.liq.lookup(q, q - 5 * MIN)
        v["liq_intensity"] = np.where(
            liq_ok, np.log1p((liq.cum("cl", 0) - liq.cum("cl", 1)) / 1e4), np.nan
        )
        v["_ready"] = fresh
        return v

    def _ref_move(self, a: _Asset, q: np.ndarray, ws: np.ndarray, has_w: np.ndarray) -> np.ndarray:
        """ln(R(t) / R_open). R_open, the last tick stamped at or before the window start, is
        known once a tick stamped at or after the start has been received (ticks arrive in
        stamp order), never earlier: before that the feature is undefined."""
        ref = a.ref
        if len(ref) == 0:
            return np.full(q.shape, np.nan)
        now = ref.value_asof("value", q)
        env = ref.col("exch_env")
        iq = ref.asof(q)
        wsf = ws.astype(np.float64)
        seen_start = (iq >= 0) & (env[np.maximum(iq, 0)] >= wsf)
        j = np.searchsorted(env, wsf, side="right") - 1
        ok = has_w & seen_start & (j >= 0)
        opened = np.where(ok, ref.col("value")[np.maximum(j, 0)], np.nan)
        return np.where(ok, np.log(now / opened), np.nan)


def _window_fields(w: Window) -> dict[str, Any]:
    return {f: getattr(w, f) for f in Window.__dataclass_fields__}


def _erf(x: np.ndarray) -> np.ndarray:
    """Vectorised error function (Abramowitz-Stegun 7.1.26, |error| < 1.5e-7)."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (
        ((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592
    ) * t * np.exp(-a * a)
    return sign * y
