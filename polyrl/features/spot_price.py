"""One asset's spot price P: its live series, the 1 m kline warm-up before it, and the
per-second and per-minute grids of log P that realized volatility is read from.

:class:`SpotPrice` keeps P (the Binance book ticker's mid, or the last spot aggTrade price,
per set) and the closed 1 m kline closes as append-only
:class:`~polyrl.features.series.Series`, and samples log P on a per-second and a per-minute
:class:`~polyrl.features.series.Grid` with running sums of squared returns, so a window's
volatility is two lookups. Every value is read as of its own tick: a kline close counts only
once the kline has been received (no look-ahead).
:class:`~polyrl.features.history.AssetHistory` holds one per asset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from polyrl.events import NS_PER_S
from polyrl.features.series import Grid, Series
from polyrl.recording.columns import StreamCols

S = NS_PER_S
MIN = 60 * S


@dataclass(slots=True)
class SpotPrice:
    """P of one asset and the grids read from it (see the module docstring)."""

    mid: Series = field(default_factory=lambda: Series("mid"))
    """P, the spot price: the book ticker's mid, or the last spot trade price (per set)."""
    kline: Series = field(default_factory=lambda: Series("close"))
    """Closed 1 m bars by close time."""
    kline_env: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    """Per bar of :attr:`kline`, the latest receive time (ns) of it and every bar before it:
    a bar is known from its own receipt (REST warm-up responses and imported bars, received
    their delay after they closed, alike)."""
    first_mid_ns: int | None = None
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

    def trim(self, keep: int) -> None:
        """Forget the live prices and grid rows before ``keep`` (ns)."""
        self.mid.trim_before(keep)
        self.sec.trim(keep // S)
        self.mins.trim(keep // MIN)

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


def _minute_sums(g: Grid, i0: int, c_sq: float, c_bad: float, prev: float) -> None:
    """Recompute the running sums of rows 1 and 2 from grid position ``i0`` on."""
    lp = g.values(0)[i0:]
    r = np.diff(np.concatenate([[prev], lp]))
    bad = ~np.isfinite(r)
    g.values(1)[i0:] = c_sq + np.cumsum(np.where(bad, 0.0, r * r))
    g.values(2)[i0:] = c_bad + np.cumsum(bad.astype(np.float64))
