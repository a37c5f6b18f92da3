"""One asset's Binance and reference history, and the features read from it at many ticks.

:class:`AssetHistory` keeps append-only :class:`~polyrl.features.series.Series` (spot mid,
depth imbalance, futures trade cumulants, funding, open interest, liquidations, reference
ticks, 1m kline closes) plus per-second and per-minute grids of log price with running
sums of squared returns. :meth:`AssetHistory.features` answers every series feature at all
the queried ticks at once, each as of its own tick (as-of lookups only: no look-ahead).
Every definition is documented in :mod:`polyrl.features.definitions`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from polyrl.events import NS_PER_S
from polyrl.features.series import Grid, Series
from polyrl.recording.columns import StreamCols
from polyrl.sources.polymarket.reference import INSTANT, is_settlement_feed, row_feed

S = NS_PER_S
MIN = 60 * S
LOOKBACK_NS = 40 * MIN
"""History kept behind the latest tick (the longest window is 30 min)."""
REFERENCE_KEEP_NS = 3 * 3600 * S
"""Reference ticks kept for the settlement fallback."""


@dataclass(frozen=True, slots=True)
class ReferenceVerdict:
    """What the reference feed says of a window.

    ``outcome``: Up/Down, None when the feed has no tick at or before the start or none in
    the window. ``mismatch``: no verdict from the window's own feed although the recording
    holds ticks of another Chainlink feed that would have given one (e.g. only
    instantaneous ticks for a TWAP market). ``stale``: a boundary tick (the open or the
    close one) was stamped more than the allowed age before its boundary.
    """

    outcome: str | None
    mismatch: bool
    stale: bool


def _verdict(
    ticks: Iterable[tuple[int, int, float]], start_ns: int, end_ns: int, t_ns: int
) -> tuple[str, int, int] | None:
    """(outcome, open tick stamp, close tick stamp) from ticks received by ``t_ns``."""
    open_v = close_v = None
    best_o = best_c = -(2**62)
    for recv, exch, value in ticks:
        if recv > t_ns:
            break
        if best_o <= exch <= start_ns:
            best_o, open_v = exch, value
        if best_c <= exch <= end_ns:
            best_c, close_v = exch, value
    if open_v is None or close_v is None or best_c < start_ns:
        return None
    return ("Up" if close_v >= open_v else "Down"), best_o, best_c


@dataclass(slots=True)
class AssetHistory:
    """The series of one asset (see the module docstring)."""

    mid: Series = field(default_factory=lambda: Series("mid"))
    """P, the spot price: the book ticker's mid, or the last spot trade price (per set)."""
    depth: Series = field(default_factory=lambda: Series("imb1", "imb5"))
    trades: Series = field(default_factory=lambda: Series("cs", "cq", "cc", "cn", "cbig"))
    funding: Series = field(default_factory=lambda: Series("rate"))
    oi: Series = field(default_factory=lambda: Series("oi"))
    liq: Series = field(default_factory=lambda: Series("cl"))
    refs: dict[str, Series] = field(default_factory=dict)
    """Live reference ticks per feed (``chainlink``, ``twap60``...: see
    :mod:`polyrl.sources.polymarket.reference`); a market reads only its own feed's."""
    kline: Series = field(default_factory=lambda: Series("close"))
    """Closed 1 m bars by close time."""
    kline_env: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    """Per bar of :attr:`kline`, the latest receive time (ns) of it and every bar before it:
    a bar is known from its own receipt (REST warm-up responses and imported bars, received
    their delay after they closed, alike)."""
    ref_ticks: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)
    """Per feed, (recv_ns, exch_ns, value) of live reference ticks, kept ~3 h for the
    settlement fallback."""
    first_mid_ns: int | None = None
    first_trade_ns: int | None = None
    first_oi_ns: int | None = None
    sec: Grid = field(default_factory=lambda: Grid(k=2))
    """Per second: log P, cumulative squared 1 s returns."""
    mins: Grid = field(default_factory=lambda: Grid(k=3))
    """Per minute: log P, cumulative squared 1-minute returns, cumulative undefined returns."""
    kline_dirty: bool = False

    # =========================================================================================
    # ingest: (columns of one stream, this asset's rows)

    def add_book_ticker(self, c: StreamCols, r: np.ndarray) -> None:
        t = c.num("recv_ns", np.int64)[r]
        self.mid.append(t, (c.num("bid_px")[r] + c.num("ask_px")[r]) / 2)
        if self.first_mid_ns is None:
            self.first_mid_ns = int(t[0])

    def add_spot_trades(self, c: StreamCols, r: np.ndarray) -> None:
        """Spot aggTrades as P (a set whose ``spot_price`` is the trade stream): the last
        trade price, known from its receive time, in the series the mid would fill."""
        t = c.num("recv_ns", np.int64)[r]
        self.mid.append(t, c.num("price")[r])
        if self.first_mid_ns is None:
            self.first_mid_ns = int(t[0])

    def add_depth(self, t: np.ndarray, imb1: np.ndarray, imb5: np.ndarray) -> None:
        self.depth.append(t, imb1, imb5)

    def add_trades(self, c: StreamCols, r: np.ndarray, large_mult: float) -> None:
        """Futures trades: cumulative signed and unsigned volume, count, notional, and the
        count of large trades (notional >= ``large_mult`` x the 30-minute mean before it)."""
        t = c.num("recv_ns", np.int64)[r]
        qty = c.num("qty")[r]
        signed = qty * c.num("side")[r]
        notional = qty * c.num("price")[r]
        tr = self.trades
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
        big = ((n >= 100) & (notional >= large_mult * mean)).astype(np.float64)
        cbig = (tr.last("cbig") if len(tr) else 0.0) + np.cumsum(big)
        tr.append(t, cs, cq, cc, cn, cbig)
        if self.first_trade_ns is None:
            self.first_trade_ns = int(t[0])

    def add_mark(self, c: StreamCols, r: np.ndarray) -> None:
        self.funding.append(c.num("recv_ns", np.int64)[r], c.num("funding_rate", fill=0.0)[r])

    def add_open_interest(self, c: StreamCols, r: np.ndarray) -> None:
        t = c.num("recv_ns", np.int64)[r]
        self.oi.append(t, c.num("open_interest")[r])
        if self.first_oi_ns is None:
            self.first_oi_ns = int(t[0])

    def add_liquidations(self, c: StreamCols, r: np.ndarray) -> None:
        notional = c.num("qty")[r] * c.num("avg_price")[r]
        base = self.liq.last("cl") if len(self.liq) else 0.0
        self.liq.append(c.num("recv_ns", np.int64)[r], base + np.cumsum(notional))

    def add_reference(self, c: StreamCols, r: np.ndarray) -> None:
        """Live reference ticks (backfilled ones, re-sent on subscribe, are left out), each
        kept in the series of its own feed (topic and TWAP window)."""
        r = r[~c.obj("backfill")[r].astype(bool)]
        if r.shape[0] == 0:
            return
        topics = c.obj("topic")[r]
        wins = c.num("window_s", np.int64, fill=0)[r]
        feeds = np.array(
            [row_feed(t, int(w) if w else None) for t, w in zip(topics, wins, strict=True)]
        )
        for feed in dict.fromkeys(feeds.tolist()):
            self._add_feed(feed, c, r[feeds == feed])

    def _add_feed(self, feed: str, c: StreamCols, r: np.ndarray) -> None:
        ref = self.refs.get(feed)
        if ref is None:
            ref = self.refs[feed] = Series("exch", "value", "exch_env")
        exch = c.num("exch_ns", np.int64, fill=0)[r].astype(np.float64)
        prev = ref.last("exch_env") if len(ref) else -np.inf
        env = np.maximum.accumulate(np.maximum(exch, prev))
        recv = c.num("recv_ns", np.int64)[r]
        value = c.num("value")[r]
        ref.append(recv, exch, value, env)
        self.ref_ticks.setdefault(feed, []).extend(
            zip(recv.tolist(), exch.astype(np.int64).tolist(), value.tolist(), strict=True)
        )

    def add_klines(self, c: StreamCols, r: np.ndarray) -> None:
        """Closed 1 m klines (warm-up history), each known from its own receive time. Only
        ``interval == "1m"`` rows: the stream also holds imported 1 s bars, which no
        minute-based logic may read."""
        ok = c.obj("closed")[r].astype(bool) & (c.obj("interval")[r] == "1m")
        r = r[ok]
        if r.shape[0] == 0:
            return
        open_ns = c.num("open_ns", np.int64)[r]
        order = np.argsort(open_ns, kind="stable")
        close_at = open_ns[order] + MIN
        close = c.num("close")[r][order]
        recv = c.num("recv_ns", np.int64)[r][order]
        have = self.kline.t
        keep = close_at > (have[-1] if have.shape[0] else -(2**62))
        if keep.any():
            prev = self.kline_env[-1] if self.kline_env.shape[0] else np.iinfo(np.int64).min
            env = np.maximum.accumulate(np.maximum(recv[keep], prev))
            self.kline.append(close_at[keep], close[keep])
            self.kline_env = np.concatenate([self.kline_env, env])
        self.kline_dirty = True

    def kline_seen(self, x: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Whether the 1 m bar as of time ``x`` (the last closed at or before it), and every
        bar before it, had been received by tick ``q``; False where there is none."""
        if not len(self.kline):
            return np.zeros(x.shape, dtype=bool)
        j = self.kline.asof(x)
        return (j >= 0) & (self.kline_env[np.maximum(j, 0)] <= q)

    def trim(self, t: int) -> None:
        """Forget what no tick after ``t`` can look at."""
        keep = t - LOOKBACK_NS
        for s in (self.mid, self.depth, self.trades, self.funding, self.oi, self.liq):
            s.trim_before(keep)
        for s in self.refs.values():
            s.trim_before(keep)
        self.sec.trim(keep // S)
        self.mins.trim(keep // MIN)
        cut = t - REFERENCE_KEEP_NS
        for feed, ticks in self.ref_ticks.items():
            if ticks and ticks[0][0] < cut:
                self.ref_ticks[feed] = [r for r in ticks if r[0] >= cut]

    # =========================================================================================
    # reference

    def reference_verdict(
        self, start_ns: int, end_ns: int, t_ns: int, feed: str, max_age_ns: int
    ) -> ReferenceVerdict:
        """Up/Down of the window [start, end) from the ``feed`` ticks received by ``t_ns``:
        the last tick stamped at or before the end against the last stamped at or before the
        start; Up iff close >= open (see :class:`ReferenceVerdict` for the flags)."""
        got = _verdict(self.ref_ticks.get(feed, ()), start_ns, end_ns, t_ns)
        if got is None:
            other = any(
                f != feed
                and is_settlement_feed(f)
                and _verdict(ticks, start_ns, end_ns, t_ns) is not None
                for f, ticks in self.ref_ticks.items()
            )
            return ReferenceVerdict(outcome=None, mismatch=other, stale=False)
        outcome, open_ns, close_ns = got
        stale = start_ns - open_ns > max_age_ns or end_ns - close_ns > max_age_ns
        return ReferenceVerdict(outcome=outcome, mismatch=False, stale=stale)

    def ref_move(
        self, q: np.ndarray, ws: np.ndarray, has_w: np.ndarray, feed: str = INSTANT
    ) -> np.ndarray:
        """ln(R(t) / R_open), both from the ``feed`` ticks received by t only (the feed the
        window settles on; a replay batch holds ticks received later): R(t) is the one
        stamped last, R_open the one stamped last at or before the window start (ties: the
        later received). R_open is known once a tick stamped at or after the start has been
        received, never earlier: before that the feature is undefined. A tick that arrives
        out of stamp order counts from its receive time, and only where its stamp puts it."""
        ref = self.refs.get(feed)
        if ref is None or len(ref) == 0:
            return np.full(q.shape, np.nan)
        exch = ref.col("exch")
        env = ref.col("exch_env")
        iq = ref.asof(q)
        latest = _best_at_or_before(exch, np.inf)[np.maximum(iq, 0)]
        now = np.where(iq >= 0, ref.col("value")[np.maximum(latest, 0)], np.nan)
        wsf = ws.astype(np.float64)
        seen_start = (iq >= 0) & (env[np.maximum(iq, 0)] >= wsf)
        j = np.full(q.shape, -1, dtype=np.int64)
        for w in np.unique(ws[has_w & seen_start]).tolist():
            at = has_w & seen_start & (ws == w)
            j[at] = _best_at_or_before(exch, float(w))[iq[at]]
        ok = has_w & seen_start & (j >= 0)
        opened = np.where(ok, ref.col("value")[np.maximum(j, 0)], np.nan)
        return np.where(ok, np.log(now / opened), np.nan)

    # =========================================================================================
    # price grids

    def price_at(self, x: np.ndarray, q: np.ndarray) -> np.ndarray:
        """P as of times ``x`` as known at ticks ``q``: live mids, else kline closes (once the
        klines have been received by q)."""
        live = self.mid.value_asof("mid", x)
        if len(self.kline):
            kl = self.kline.value_asof("close", x)
            kl = np.where(self.kline_seen(x, q), kl, np.nan)
            live = np.where(np.isnan(live), kl, live)
        return live

    def _extend_seconds(self, upto_s: int) -> None:
        """Sample log P at every second boundary up to ``upto_s`` (data at or before each)."""
        if self.first_mid_ns is None:
            return
        start = self.sec.end if self.sec.start is not None else self.first_mid_ns // S
        if upto_s < start:
            return
        secs = np.arange(start, upto_s + 1, dtype=np.int64)
        lp = np.log(self.mid.value_asof("mid", secs * S))
        prev = self.sec.values(0)[-1] if len(self.sec) else np.nan
        r = np.diff(np.concatenate([[prev], lp]))
        r = np.where(np.isfinite(r), r, 0.0)
        base = self.sec.values(1)[-1] if len(self.sec) else 0.0
        self.sec.extend(start, lp, base + np.cumsum(r * r))

    def sec_vol(self, q: np.ndarray, w: int) -> np.ndarray:
        """Realized vol of 1 s log returns over the last ``w`` seconds, per sqrt(minute);
        NaN until live prices cover the whole window."""
        self._extend_seconds(int(q[-1] // S))
        j = q // S
        hi = self.sec.at(j, 1)
        lo = self.sec.at(j - w, 1)
        first = self.first_mid_ns // S if self.first_mid_ns is not None else 2**62
        ok = (j - w >= first) & np.isfinite(hi) & np.isfinite(lo)
        return np.where(ok, np.sqrt(np.maximum(hi - lo, 0.0) / w) * math.sqrt(60.0), np.nan)

    def _extend_minutes(self, upto_m: int) -> None:
        """Sample log P at every minute boundary up to ``upto_m``: the live mid where live data
        had started, else the 1m kline close (whatever its knowledge time: queries check it);
        keep running sums of squared 1-minute returns and of undefined ones."""
        if self.first_mid_ns is None and not len(self.kline):
            return
        if self.kline_dirty and len(self.mins):
            # Klines arrived after minutes were sampled without them (or with only the part of
            # a response in an earlier batch, which leaves the last close held over later
            # minutes): sample every kline-based minute again and redo the running sums (the
            # grid holds about an hour: cheap), so the grid does not depend on batching.
            idx = np.arange(self.mins.start or 0, self.mins.end, dtype=np.int64)
            vals = self.mins.values(0)
            live_from = self.first_mid_ns if self.first_mid_ns is not None else 2**62
            from_klines = idx * MIN < live_from
            if from_klines.any():
                vals[from_klines] = np.log(self.kline.value_asof("close", idx[from_klines] * MIN))
                _minute_sums(self.mins, 0, 0.0, 0.0, np.nan)
        self.kline_dirty = False
        if self.mins.start is None:
            firsts = []
            if len(self.kline):
                firsts.append(int(self.kline.t[0]) // MIN)
            if self.first_mid_ns is not None:
                firsts.append(self.first_mid_ns // MIN + 1)
            start = min(firsts)
        else:
            start = self.mins.end
        if upto_m < start:
            return
        mins = np.arange(start, upto_m + 1, dtype=np.int64) * MIN
        live_from = self.first_mid_ns if self.first_mid_ns is not None else 2**62
        live = self.mid.value_asof("mid", mins)
        kl = (
            self.kline.value_asof("close", mins) if len(self.kline) else np.full(mins.shape, np.nan)
        )
        n0 = len(self.mins)
        prev = self.mins.values(0)[-1] if n0 else np.nan
        c_sq = self.mins.values(1)[-1] if n0 else 0.0
        c_bad = self.mins.values(2)[-1] if n0 else 0.0
        lp = np.log(np.where(mins >= live_from, live, kl))
        self.mins.extend(start, lp, np.zeros(lp.shape), np.zeros(lp.shape))
        _minute_sums(self.mins, n0, c_sq, c_bad, prev)

    def min_vol(self, q: np.ndarray, w: int) -> np.ndarray:
        """Realized vol of 1-minute log returns over the last ``w`` minutes, per sqrt(minute).

        Minutes before live data started use kline closes, visible only from the klines'
        receive time: a tick before it that would need them gets NaN (no look-ahead).
        """
        self._extend_minutes(int(q[-1] // MIN))
        m_hi = q // MIN
        sq_hi, sq_lo = self.mins.at(m_hi, 1), self.mins.at(m_hi - w, 1)
        bad_hi, bad_lo = self.mins.at(m_hi, 2), self.mins.at(m_hi - w, 2)
        vol = np.sqrt(np.maximum(sq_hi - sq_lo, 0.0) / w)
        live_from_m = (self.first_mid_ns // MIN + 1) if self.first_mid_ns is not None else 2**62
        needs_klines = (m_hi - w) < live_from_m
        # The latest minute sampled from klines is what must have been received by q.
        last_kl = np.minimum(m_hi, live_from_m - 1) * MIN
        ok = (
            np.isfinite(sq_lo)
            & np.isfinite(sq_hi)
            & (bad_hi - bad_lo == 0)
            & (~needs_klines | self.kline_seen(last_kl, q))
        )
        return np.where(ok, vol, np.nan)

    # =========================================================================================
    # features

    def features(
        self, q: np.ndarray, *, stale_ns: int, with_vol_regime: bool
    ) -> dict[str, np.ndarray]:
        """Every series feature at ticks ``q`` (undefined values NaN; ``_ready`` is whether
        the spot price is fresh)."""
        # Undefined values (log of 0, 0/0 before data) are NaN by design and masked after.
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._features(q, stale_ns, with_vol_regime)

    def _features(self, q: np.ndarray, stale: int, with_vol_regime: bool) -> dict[str, np.ndarray]:
        # Each series is searched once for all the times it is queried at.
        v: dict[str, np.ndarray] = {}
        mid = self.mid.lookup(q)
        fresh = mid.age() <= stale
        p_now = np.where(fresh, mid.value("mid"), np.nan)
        lags = (("returns_1m", MIN), ("returns_5m", 5 * MIN), ("returns_10m", 10 * MIN))
        p_then = self.price_at(np.concatenate([q - lag for _, lag in lags]), np.tile(q, 3))
        for k, (name, _) in enumerate(lags):
            v[name] = np.log(p_now / p_then[k * len(q) : (k + 1) * len(q)])
        depth = self.depth.lookup(q)
        dfresh = depth.age() <= stale
        v["ob_imbalance_l1"] = np.where(dfresh, depth.value("imb1"), np.nan)
        v["ob_imbalance_l5"] = np.where(dfresh, depth.value("imb5"), np.nan)
        v.update(self._flow(q))
        started = self.first_trade_ns if self.first_trade_ns is not None else 2**62
        vol5 = self.sec_vol(q, 300)
        vol1 = self.sec_vol(q, 60)
        v["vol_5m"] = np.where(fresh, vol5, np.nan)
        v["vol_expansion"] = np.where(
            (vol1 > 0) & (vol5 > 0),
            np.log(np.maximum(vol1, 1e-300) / np.maximum(vol5, 1e-300)),
            0.0,
        )
        v["vol_expansion"] = np.where(np.isfinite(vol5), v["vol_expansion"], np.nan)
        if with_vol_regime:
            vol30 = self.min_vol(q, 30)
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
        v["funding_rate"] = self.funding.value_asof("rate", q) * 1e4
        oi = self.oi.lookup(q, q - 5 * MIN)
        v["oi_change_5m"] = np.log(oi.value("oi", 0) / oi.value("oi", 1))
        liq_ok = q - started >= 5 * MIN
        liq = self.liq.lookup(q, q - 5 * MIN)
        v["liq_intensity"] = np.where(
            liq_ok, np.log1p((liq.cum("cl", 0) - liq.cum("cl", 1)) / 1e4), np.nan
        )
        v["_ready"] = fresh
        return v

    def _flow(self, q: np.ndarray) -> dict[str, np.ndarray]:
        """Order-flow features from the futures trade cumulants."""
        v: dict[str, np.ndarray] = {}
        started = self.first_trade_ns if self.first_trade_ns is not None else 2**62
        covered = np.minimum(30 * MIN, q - started)
        # blocks: 0 now, 1 a minute ago, 2 30 s ago, 3 the covered span ago, 4 10 s ago
        tr = self.trades.lookup(q, q - MIN, q - 30 * S, q - covered, q - 10 * S)
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
        return v


def _minute_sums(g: Grid, i0: int, c_sq: float, c_bad: float, prev: float) -> None:
    """Recompute the running sums of rows 1 and 2 from grid position ``i0`` on."""
    lp = g.values(0)[i0:]
    r = np.diff(np.concatenate([[prev], lp]))
    bad = ~np.isfinite(r)
    g.values(1)[i0:] = c_sq + np.cumsum(np.where(bad, 0.0, r * r))
    g.values(2)[i0:] = c_bad + np.cumsum(bad.astype(np.float64))


def _best_at_or_before(exch: np.ndarray, bound: float) -> np.ndarray:
    """For each row i, the row among 0..i with the largest stamp <= ``bound`` (ties: the
    last such row); -1 where none. ``exch`` [n] stamps in receive order -> int64 [n]."""
    key = np.where(exch <= bound, exch, -np.inf)
    best = np.maximum.accumulate(key)
    attains = (key == best) & np.isfinite(key)
    return np.maximum.accumulate(np.where(attains, np.arange(exch.shape[0]), -1))
