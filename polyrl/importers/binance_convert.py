"""Parsed Binance archive tables -> polyrl stream tables, with receive times no recorder beat.

Pure and vectorised. Every imported row gets ``recv_ns`` = the venue time at which its
content became known + the configured per-venue delay, and ``raw = ""`` (there was no
frame). What each stream's columns mean for imported rows:

- ``binance.spot.trade`` / ``binance.futures.trade`` (from ``aggTrades``): ``exch_ns`` =
  ``trade_ns`` = the trade time (the archive has no event time ``E``); ``side`` = -1 where
  ``is_buyer_maker`` (the taker sold), else +1; ``qty_no_rpi`` null; ``recv_ns`` = trade
  time + delay.
- ``binance.spot.kline`` (spot ``klines`` 1s and 1m): one closed bar per row (``closed`` =
  true), ``interval`` "1s" or "1m"; ``exch_ns`` = ``close_ns`` (the bar's close time, ``...999``);
  ``recv_ns`` = the bar's end (open + interval, i.e. close + 1 ms) + delay: a bar is only
  known once it has closed.
- ``binance.futures.mark`` (USD-M ``markPriceKlines`` and ``indexPriceKlines`` 1m, with the
  monthly ``fundingRate``): one row per minute where both bars exist; ``mark_px`` /
  ``index_px`` = the two bars' closes; ``exch_ns`` = the minute's end (close + 1 ms),
  ``recv_ns`` = that + delay; ``funding_rate`` = the rate of the last funding settlement at
  or before ``exch_ns`` (the live stream's ``r`` is a running estimate of the *next* rate,
  which the archive does not hold; taking the settled one never looks ahead), null where
  no settlement within the funding interval is known; ``next_funding_ns`` = the first
  funding time after ``exch_ns`` on the schedule (last settlement + ``k`` x its interval;
  without one, the 8-hour 00/08/16 UTC schedule); ``settle_px`` and ``mark_avg_px`` null.
- ``binance.futures.open_interest`` (USD-M ``metrics``, 5-minute): ``open_interest`` =
  ``sum_open_interest`` (base currency), ``exch_ns`` = ``create_time``, ``recv_ns`` =
  ``create_time`` + delay.

``quality`` carries ``bad_value`` (1) where a price or quantity is 0, negative or not finite
and ``bad_time`` (4) where a venue time is not positive, as the recorder's parsers do.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

BAD_VALUE = 1
BAD_TIME = 4
MINUTE_NS = 60 * 1_000_000_000
HOUR_NS = 60 * MINUTE_NS
INTERVAL_NS = {"1s": 1_000_000_000, "1m": MINUTE_NS}


def _quality(times: np.ndarray, *values: np.ndarray) -> np.ndarray:
    q = np.zeros(len(times), dtype=np.uint16)
    for v in values:
        q[~(np.isfinite(v) & (v > 0))] |= BAD_VALUE
    q[times <= 0] |= BAD_TIME
    return q


def _common(n: int, recv: np.ndarray, exch: np.ndarray, symbol: str, asset: str, q) -> dict:
    return {
        "recv_ns": pa.array(recv, pa.int64()),
        "exch_ns": pa.array(exch, pa.int64()),
        "key": pa.repeat(symbol, n),
        "asset": pa.repeat(asset, n),
        "quality": pa.array(q, pa.uint16()),
    }


def _np(t: pa.Table, c: str, dtype=None) -> np.ndarray:  # noqa: ANN001
    a = t.column(c).to_numpy()
    return a if dtype is None else a.astype(dtype, copy=False)


def trades(t: pa.Table, *, symbol: str, asset: str, delay_ns: int, futures: bool) -> pa.Table:
    """Parsed ``aggTrades`` -> a spot or futures trade table (schema columns minus ``seq``)."""
    n = t.num_rows
    tt = _np(t, "time", np.int64)
    price = _np(t, "price", np.float64)
    qty = _np(t, "qty", np.float64)
    bm = t.column("buyer_maker")
    if bm.null_count:
        bm = bm.fill_null(False)
    side = np.where(bm.to_numpy(zero_copy_only=False), -1, 1).astype(np.int8)
    cols = _common(n, tt + delay_ns, tt, symbol, asset, _quality(tt, price, qty))
    cols.update(
        trade_ns=pa.array(tt),
        trade_id=t.column("trade_id"),
        price=pa.array(price),
        qty=pa.array(qty),
        first_id=t.column("first_id"),
        last_id=t.column("last_id"),
        buyer_maker=bm,
        side=pa.array(side),
    )
    if futures:
        cols["qty_no_rpi"] = pa.nulls(n, pa.float64())
    cols["raw"] = pa.repeat("", n)
    return pa.table(cols)


def klines(t: pa.Table, *, interval: str, symbol: str, asset: str, delay_ns: int) -> pa.Table:
    """Parsed spot ``klines`` of one interval -> ``binance.spot.kline`` rows (closed bars)."""
    n = t.num_rows
    open_ns = _np(t, "open_time", np.int64)
    close_ns = _np(t, "close_time", np.int64)
    end = open_ns + INTERVAL_NS[interval]
    vals = [_np(t, c, np.float64) for c in ("open", "high", "low", "close")]
    cols = _common(n, end + delay_ns, close_ns, symbol, asset, _quality(open_ns, *vals))
    cols.update(
        interval=pa.repeat(interval, n),
        open_ns=pa.array(open_ns),
        close_ns=pa.array(close_ns),
        open=t.column("open"),
        high=t.column("high"),
        low=t.column("low"),
        close=t.column("close"),
        volume=t.column("volume"),
        quote_volume=t.column("quote_volume"),
        trades=t.column("trades"),
        taker_buy_base=t.column("taker_buy_base"),
        taker_buy_quote=t.column("taker_buy_quote"),
        closed=pa.repeat(True, n),
        raw=pa.repeat("", n),
    )
    return pa.table(cols)


def funding_schedule(funding: pa.Table | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Settlement times (ns, to the minute), rates and intervals (ns), sorted by time."""
    if funding is None or funding.num_rows == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, np.zeros(0), z
    t = _np(funding, "calc_time", np.int64)
    t = (t + MINUTE_NS // 2) // MINUTE_NS * MINUTE_NS
    rate = _np(funding, "last_funding_rate", np.float64)
    hours = funding.column("funding_interval_hours").fill_null(8).to_numpy()
    order = np.argsort(t, kind="stable")
    return t[order], rate[order], hours[order].astype(np.int64) * HOUR_NS


def mark(
    mark_t: pa.Table,
    index_t: pa.Table,
    funding: pa.Table | None,
    *,
    symbol: str,
    asset: str,
    delay_ns: int,
) -> tuple[pa.Table, dict[str, int]]:
    """Mark and index 1m bars (+ funding) -> ``binance.futures.mark`` rows; and counts of
    minutes dropped (one of the two bars missing) and of rows whose funding rate is unknown."""
    m_open = _np(mark_t, "open_time", np.int64)
    i_open = _np(index_t, "open_time", np.int64)
    both, mi, ii = np.intersect1d(m_open, i_open, assume_unique=False, return_indices=True)
    n = len(both)
    end = both + MINUTE_NS
    mark_px = _np(mark_t, "close", np.float64)[mi]
    index_px = _np(index_t, "close", np.float64)[ii]
    ft, rate, interval = funding_schedule(funding)
    k = np.searchsorted(ft, end, side="right") - 1  # last settlement at or before `end`
    known = k >= 0
    kk = np.where(known, k, 0)
    fresh = known & (end < (ft[kk] + interval[kk] if len(ft) else end))
    fr = np.where(fresh, rate[kk] if len(ft) else 0.0, np.nan)
    if len(ft):
        last, step = ft[kk], interval[kk]
        steps = (end - last) // step + 1
        nxt_known = last + steps * step
    else:
        nxt_known = np.zeros(n, dtype=np.int64)
    eight = 8 * HOUR_NS
    nxt_default = (end // eight + 1) * eight
    nxt = np.where(known, nxt_known, nxt_default)
    cols = _common(n, end + delay_ns, end, symbol, asset, _quality(end, mark_px, index_px))
    cols.update(
        mark_px=pa.array(mark_px),
        index_px=pa.array(index_px),
        settle_px=pa.nulls(n, pa.float64()),
        mark_avg_px=pa.nulls(n, pa.float64()),
        funding_rate=pa.array(fr, pa.float64(), from_pandas=True),
        next_funding_ns=pa.array(nxt.astype(np.int64)),
        raw=pa.repeat("", n),
    )
    counts = {
        "mark_minutes_without_both_bars": int(len(m_open) + len(i_open) - 2 * n),
        "funding_rate_unknown_rows": int(np.sum(~fresh)),
    }
    return pa.table(cols), counts


def open_interest(t: pa.Table, *, symbol: str, asset: str, delay_ns: int) -> pa.Table:
    """Parsed ``metrics`` -> ``binance.futures.open_interest`` rows."""
    n = t.num_rows
    ct = _np(t, "create_time", np.int64)
    oi = _np(t, "sum_open_interest", np.float64)
    cols = _common(n, ct + delay_ns, ct, symbol, asset, _quality(ct, oi))
    cols.update(open_interest=pa.array(oi), raw=pa.repeat("", n))
    return pa.table(cols)


def missing_slots(times_ns: np.ndarray, start_ns: int, end_ns: int, step_ns: int) -> list:
    """``(from_ns, to_ns, slots)`` for each stretch of a ``step_ns`` grid over
    ``[start_ns, end_ns)`` holding no row (the metrics' missing 5-minute rows)."""
    grid = np.arange(start_ns, end_ns, step_ns, dtype=np.int64)
    have = np.isin(grid, times_ns)
    out: list[tuple[int, int, int]] = []
    miss = np.flatnonzero(~have)
    if not len(miss):
        return out
    breaks = np.flatnonzero(np.diff(miss) > 1) + 1
    for run in np.split(miss, breaks):
        out.append((int(grid[run[0]]), int(grid[run[-1]] + step_ns), len(run)))
    return out
