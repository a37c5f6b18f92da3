"""One asset's Binance and reference history, and the features read from it at many ticks.

:class:`AssetHistory` keeps the asset's spot price P with its kline warm-up and volatility
grids (:class:`~polyrl.features.spot_price.SpotPrice`), its reference ticks per feed
(:class:`~polyrl.features.reference_feeds.ReferenceFeeds`), and append-only
:class:`~polyrl.features.series.Series` of depth imbalance, futures trade cumulants, funding,
open interest and liquidations. :meth:`AssetHistory.features` answers every series feature at
all the queried ticks at once, each as of its own tick (as-of lookups only: no look-ahead).
Every definition is documented in :mod:`polyrl.features.definitions`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from polyrl.features.reference_feeds import ReferenceFeeds, ReferenceVerdict
from polyrl.features.series import Series
from polyrl.features.spot_price import MIN, S, SpotPrice
from polyrl.recording.columns import StreamCols
from polyrl.sources.polymarket.reference import INSTANT

LOOKBACK_NS = 40 * MIN
"""History kept behind the latest tick (the longest window is 30 min)."""


@dataclass(slots=True)
class AssetHistory:
    """The series of one asset (see the module docstring)."""

    spot: SpotPrice = field(default_factory=SpotPrice)
    """P, the spot price (the book ticker's mid, or the last spot trade price, per set), its
    1 m kline warm-up and the per-second and per-minute grids of log P."""
    depth: Series = field(default_factory=lambda: Series("imb1", "imb5"))
    trades: Series = field(default_factory=lambda: Series("cs", "cq", "cc", "cn", "cbig"))
    funding: Series = field(default_factory=lambda: Series("rate"))
    oi: Series = field(default_factory=lambda: Series("oi"))
    liq: Series = field(default_factory=lambda: Series("cl"))
    reference: ReferenceFeeds = field(default_factory=ReferenceFeeds)
    """Live reference ticks per feed (``chainlink``, ``twap60``...: see
    :mod:`polyrl.sources.polymarket.reference`); a market reads only its own feed's."""
    first_trade_ns: int | None = None
    first_oi_ns: int | None = None

    # =========================================================================================
    # ingest: (columns of one stream, this asset's rows)

    def add_book_ticker(self, c: StreamCols, r: np.ndarray) -> None:
        """Book tickers as P: the mid (:meth:`SpotPrice.add_book_ticker`)."""
        self.spot.add_book_ticker(c, r)

    def add_spot_trades(self, c: StreamCols, r: np.ndarray) -> None:
        """Spot aggTrades as P: the last trade price (:meth:`SpotPrice.add_spot_trades`)."""
        self.spot.add_spot_trades(c, r)

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
        """Live reference ticks (backfilled ones are left out), each kept with its own feed
        (:meth:`~polyrl.features.reference_feeds.ReferenceFeeds.add`)."""
        self.reference.add(c, r)

    def add_klines(self, c: StreamCols, r: np.ndarray) -> None:
        """Closed 1 m klines, P's warm-up history (:meth:`SpotPrice.add_klines`)."""
        self.spot.add_klines(c, r)

    def trim(self, t: int) -> None:
        """Forget what no tick after ``t`` can look at."""
        keep = t - LOOKBACK_NS
        self.spot.trim(keep)
        for s in (self.depth, self.trades, self.funding, self.oi, self.liq):
            s.trim_before(keep)
        self.reference.trim(t, keep)

    # =========================================================================================
    # reference

    def reference_verdict(
        self, start_ns: int, end_ns: int, t_ns: int, feed: str, max_age_ns: int
    ) -> ReferenceVerdict:
        """Up/Down of the window [start, end) from the ``feed`` ticks received by ``t_ns``
        (:meth:`~polyrl.features.reference_feeds.ReferenceFeeds.verdict`)."""
        return self.reference.verdict(start_ns, end_ns, t_ns, feed, max_age_ns)

    def ref_move(
        self, q: np.ndarray, ws: np.ndarray, has_w: np.ndarray, feed: str = INSTANT
    ) -> np.ndarray:
        """ln(R(t) / R_open) of the ``feed`` ticks received by each tick
        (:meth:`~polyrl.features.reference_feeds.ReferenceFeeds.move`)."""
        return self.reference.move(q, ws, has_w, feed)

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
        spot = self.spot
        mid = spot.mid.lookup(q)
        fresh = mid.age() <= stale
        p_now = np.where(fresh, mid.value("mid"), np.nan)
        lags = (("returns_1m", MIN), ("returns_5m", 5 * MIN), ("returns_10m", 10 * MIN))
        p_then = spot.price_at(np.concatenate([q - lag for _, lag in lags]), np.tile(q, 3))
        for k, (name, _) in enumerate(lags):
            v[name] = np.log(p_now / p_then[k * len(q) : (k + 1) * len(q)])
        depth = self.depth.lookup(q)
        dfresh = depth.age() <= stale
        v["ob_imbalance_l1"] = np.where(dfresh, depth.value("imb1"), np.nan)
        v["ob_imbalance_l5"] = np.where(dfresh, depth.value("imb5"), np.nan)
        v.update(self._flow(q))
        started = self.first_trade_ns if self.first_trade_ns is not None else 2**62
        vol5 = spot.sec_vol(q, 300)
        vol1 = spot.sec_vol(q, 60)
        v["vol_5m"] = np.where(fresh, vol5, np.nan)
        v["vol_expansion"] = np.where(
            (vol1 > 0) & (vol5 > 0),
            np.log(np.maximum(vol1, 1e-300) / np.maximum(vol5, 1e-300)),
            0.0,
        )
        v["vol_expansion"] = np.where(np.isfinite(vol5), v["vol_expansion"], np.nan)
        if with_vol_regime:
            vol30 = spot.min_vol(q, 30)
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
