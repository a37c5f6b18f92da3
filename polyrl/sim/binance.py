"""Binance frames of one chunk, vectorised: spot and futures aggTrades, spot depth partials and
bookTicker, futures markPrice and forceOrder, REST open interest and warm-up klines.

Every stream of every asset draws from its own generator keyed by ``(seed, tag, chunk,
asset, ...)``, so its frames do not depend on which other assets or streams are simulated.
Prices come from the skeleton's 100 ms mid (``exp(logp)``): quotes are the mid rounded to the
tick grid (one tick wide, sometimes two), takers buy at the ask and sell at the bid. Trade
counts per 100 ms bin are Poisson with an intensity that clusters (volatile regime, a
mean-reverting log activity factor, and the size of the current move); the taker side leans
towards the next second's move (``taker_informed``); notionals are lognormal with a Pareto
tail.

Formats follow the venues' documentation (Binance spot "WebSocket Streams", USD-M futures
"Websocket Market Streams" and market-data REST) exactly: combined-stream
envelope ``{"stream":..,"data":..}``, spot numbers as 8-decimal strings, futures numbers in
each contract's precision, times in ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from polyrl.events import (
    CH_BINANCE_FUTURES_OI,
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_KLINES,
    CH_BINANCE_SPOT_WS,
    NS_PER_MS,
    NS_PER_S,
)
from polyrl.sim.batch import Batch
from polyrl.sim.config import SimConfig
from polyrl.sim.numeric import (
    TAG_COUNTS,
    TAG_DEPTH,
    TAG_FUTURES,
    TAG_KLINES,
    TAG_LIQUIDATIONS,
    TAG_OPEN_INTEREST,
    TAG_QUOTES,
    TAG_TRADES,
    fixed,
    logistic,
    rng,
)
from polyrl.sim.paths import LAT_FUT, LAT_REST, LAT_SPOT, STEP_NS, STEPS_PER_S, Skeleton
from polyrl.sim.specs import SPOT_DECIMALS, AssetSpec
from polyrl.sources.config import SourcesConfig

# Tie ranks (lower first) of the streams sharing a receive time.
RANK_SPOT_TRADE, RANK_SPOT_TICKER, RANK_SPOT_DEPTH = 10, 11, 12
RANK_FUT_TRADE, RANK_FUT_MARK, RANK_FUT_LIQ = 20, 21, 22
RANK_KLINES, RANK_OI = 30, 31

_E8 = 10**SPOT_DECIMALS
_BOOL = ("false", "true")
_FUNDING_NS = 8 * 3_600 * NS_PER_S
_ID_EPOCH_S = 1_500_000_000
"""Trade ids grow from a base at this time (2017-07), so later starts get larger ids."""
_UPDATE_EPOCH_NS = _ID_EPOCH_S * NS_PER_S


@dataclass(slots=True)
class ChunkCtx:
    """What every generator of one chunk needs. ``c0``/``c1`` bound the full 5-minute chunk."""

    sk: Skeleton
    cfg: SimConfig
    sources: SourcesConfig
    seed: int
    chunk: int
    """Absolute chunk index: ``c0 // CHUNK_NS``."""
    c0: int
    c1: int
    start_ns: int
    end_ns: int

    @property
    def k0(self) -> int:
        """First 100 ms step of the chunk."""
        return (self.c0 - self.sk.t0_ns) // STEP_NS

    @property
    def k1(self) -> int:
        """One past the last 100 ms step of the chunk."""
        return (self.c1 - self.sk.t0_ns) // STEP_NS


@dataclass(slots=True)
class IdState:
    """Next aggregate-trade id and next trade id of one asset on one venue."""

    agg: int
    trade: int


def initial_ids(spec: AssetSpec, futures: bool, first_chunk_start_ns: int) -> IdState:
    """Where the ids of a simulation starting at ``first_chunk_start_ns`` begin."""
    base = spec.trade_id0 * (3 if futures else 1)
    grown = max(0, first_chunk_start_ns // NS_PER_S - _ID_EPOCH_S) * (20 if futures else 10)
    return IdState(agg=base + grown, trade=2 * (base + grown))


# ---------------------------------------------------------------------------------------------
# Shared numerics


def _moves(ctx: ChunkCtx, i: int, extra: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(standardised 100 ms moves, per-step vol, volatile flags) of the chunk's steps.

    ``extra`` more steps past the chunk are included (for look-ahead).
    """
    sk, k0, k1 = ctx.sk, ctx.k0, min(ctx.k1 + extra, ctx.sk.n)
    lp = sk.logp[i, max(k0 - 1, 0) : k1]
    if k0 == 0:
        lp = np.concatenate([lp[:1], lp])
    volatile = sk.regime[k0:k1] == 1
    vol = sk.step_vol[i] * np.where(volatile, ctx.cfg.volatile_vol_mult, 1.0)
    return np.diff(lp) / vol, vol, volatile


def _activity(ctx: ChunkCtx, i: int, burst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(activity multiplier, standardised move) per 100 ms step; the multiplier averages ~1
    in the calm regime."""
    cfg = ctx.cfg
    z, _, volatile = _moves(ctx, i)
    k = np.arange(ctx.k0, ctx.k1) // STEPS_PER_S
    b = burst[i, np.minimum(k, ctx.sk.m - 1)]
    norm = 1.0 + cfg.move_activity * math.sqrt(2.0 / math.pi)
    act = (
        np.where(volatile, cfg.volatile_activity_mult, 1.0)
        * np.exp(b - 0.5 * cfg.burst_sd**2)
        * (1.0 + cfg.move_activity * np.abs(z))
        / norm
    )
    return act, z


def _mid(ctx: ChunkCtx, i: int, k: np.ndarray) -> np.ndarray:
    """Spot mid (USDT) at absolute steps ``k``."""
    return np.exp(ctx.sk.logp[i, np.clip(k, 0, ctx.sk.n - 1)])


def _quotes(mid: np.ndarray, tick: float, wide: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bid, ask) in integer ticks: the bid at or below mid - half a spread."""
    spread = 1 + wide.astype(np.int64)
    bid = np.floor(mid / tick - spread / 2.0 + 0.5).astype(np.int64)
    bid = np.maximum(bid, 1)
    return bid, bid + spread


def _notional(cfg: SimConfig, g: np.random.Generator, median: float, size: int) -> np.ndarray:
    """Heavy-tailed trade notionals: lognormal body, Pareto tail (capped at 1000x median)."""
    body = median * np.exp(cfg.trade_size_sigma * g.standard_normal(size))
    tail = 3.0 * median * g.random(size) ** (-1.0 / cfg.trade_size_tail_alpha)
    pick = g.random(size) < cfg.trade_size_tail_prob
    return np.minimum(np.where(pick, tail, body), 1000.0 * median)


def _fmt_cols(*cols: np.ndarray) -> list[list[int]]:
    """Rows of integer columns (the arguments of one %-template per frame)."""
    return np.column_stack(cols).tolist() if cols[0].size else []


def _split(v: np.ndarray, decimals: int) -> tuple[np.ndarray, np.ndarray]:
    q, r = np.divmod(v.astype(np.int64), 10**decimals)
    return q, r


def _signed_fixed(v: int, decimals: int) -> str:
    return fixed(v, decimals) if v >= 0 else "-" + fixed(-v, decimals)


def _px_fmt(decimals: int) -> str:
    return "%d" if decimals == 0 else f"%d.%0{decimals}d"


def _in_span(ctx: ChunkCtx, t_ns: np.ndarray) -> np.ndarray:
    return (t_ns >= ctx.start_ns) & (t_ns < ctx.end_ns)


# ---------------------------------------------------------------------------------------------
# aggTrades


def trade_counts(ctx: ChunkCtx, spec: AssetSpec, futures: bool) -> tuple[np.ndarray, np.ndarray]:
    """(aggTrades per 100 ms step, trades per aggTrade) of the whole chunk.

    Drawn from their own generator so that the ids a chunk consumes can be known without
    generating its frames (``sum(fills)`` trade ids, ``sum(counts)`` aggregate ids).
    """
    cfg = ctx.cfg
    i = spec.index
    burst = ctx.sk.burst_fut if futures else ctx.sk.burst_spot
    rate = (cfg.futures_trade_rate if futures else cfg.spot_trade_rate)[i]
    act, _ = _activity(ctx, i, burst)
    g = rng(ctx.seed, TAG_COUNTS, ctx.chunk, i, int(futures))
    counts = g.poisson(rate * act / STEPS_PER_S)
    fills = 1 + g.poisson(2.0 if futures else 0.4, size=int(counts.sum()))
    return counts, fills


def agg_trades(ctx: ChunkCtx, spec: AssetSpec, futures: bool, ids: IdState) -> Batch:
    """The ``<sym>@aggTrade`` frames of one asset on one venue; advances ``ids``."""
    cfg, sk = ctx.cfg, ctx.sk
    i = spec.index
    counts, fills = trade_counts(ctx, spec, futures)
    n = int(counts.sum())
    g = rng(ctx.seed, TAG_TRADES, ctx.chunk, i, int(futures))
    steps = np.repeat(np.arange(ctx.k0, ctx.k1), counts)
    t_ms = np.sort((sk.t0_ns + steps * STEP_NS) // NS_PER_MS + g.integers(0, 100, n))
    k = (t_ms * NS_PER_MS - sk.t0_ns) // STEP_NS

    # Taker side leans towards the next second's move.
    _, vol, _ = _moves(ctx, i, extra=STEPS_PER_S)
    lp = sk.logp[i]
    ahead = np.minimum(k + STEPS_PER_S, sk.n - 1)
    vol_k = vol[np.minimum(k - ctx.k0, vol.size - 1)]
    z_next = (lp[ahead] - lp[k]) / (vol_k * math.sqrt(STEPS_PER_S))
    buy = g.random(n) < logistic(cfg.taker_informed * z_next)

    mid = np.exp(lp[k])
    volatile = sk.regime[k] == 1
    wide = g.random(n) < cfg.wide_spread_prob * np.where(volatile, 3.0, 1.0)
    median = cfg.spot_trade_usd[i] * (cfg.futures_size_mult if futures else 1.0)
    notional = _notional(cfg, g, median, n)
    if futures:
        basis = sk.basis[i, np.minimum(k // STEPS_PER_S, sk.m - 1)]
        fnoise = rng(ctx.seed, TAG_FUTURES, ctx.chunk, i).standard_normal(ctx.k1 - ctx.k0)
        fmid = mid * (1.0 + basis) * (1.0 + cfg.futures_noise * fnoise[k - ctx.k0])
        unit = 10.0**-spec.fut_px_decimals
        bid, ask = _quotes(fmid, spec.fut_tick * unit, wide)
        px = np.where(buy, ask, bid) * spec.fut_tick
        qty = np.maximum(1, np.rint(notional / fmid * 10.0**spec.fut_qty_decimals)).astype(np.int64)
        delay = g.integers(0, 2, n)
    else:
        tick = spec.spot_tick / _E8
        bid, ask = _quotes(mid, tick, wide)
        px = np.where(buy, ask, bid) * spec.spot_tick
        step = spec.spot_step
        qty = np.maximum(1, np.rint(notional / mid * _E8 / step)).astype(np.int64) * step
        slow = g.random(n) < 0.01  # spot E - T has a long tail (FACTS: p99 ~200 ms)
        delay = g.integers(0, 3, n) + slow * g.integers(10, 200, n)
    e_ms = np.maximum.accumulate(t_ms + delay) if n else t_ms

    agg = ids.agg + np.arange(n, dtype=np.int64)
    last = ids.trade + np.cumsum(fills) - 1
    first = last - fills + 1
    ids.agg += n
    ids.trade += int(fills.sum())

    e_ns = e_ms * NS_PER_MS
    keep = _in_span(ctx, t_ms * NS_PER_MS)
    s = spec.stream_symbol
    if futures:
        pd, qd = spec.fut_px_decimals, spec.fut_qty_decimals
        # nq (quantity without RPI orders) is mostly the whole quantity.
        nq = np.where(g.random(n) < 0.97, qty, np.maximum(qty * 9 // 10, 1))
        head = (
            f'{{"stream":"{s}@aggTrade","data":{{"e":"aggTrade","E":%d,"a":%d,"s":"{spec.symbol}",'
        )
        body = (
            f'"p":"{_px_fmt(pd)}","q":"{_px_fmt(qd)}","nq":"{_px_fmt(qd)}",'
            '"f":%d,"l":%d,"T":%d,"m":'
        )
        tmpl = (head + body + "false}}", head + body + "true}}")
        cols = [e_ms, agg, *_split(px, pd), *_cols(qty, qd), *_cols(nq, qd), first, last, t_ms]
    else:
        tmpl_s = (
            f'{{"stream":"{s}@aggTrade","data":{{"e":"aggTrade","E":%d,"s":"{spec.symbol}",'
            '"a":%d,"p":"%d.%08d","q":"%d.%08d","f":%d,"l":%d,"T":%d,"m":'
        )
        tmpl = (tmpl_s + 'false,"M":true}}', tmpl_s + 'true,"M":true}}')
        cols = [e_ms, agg, *_split(px, 8), *_split(qty, 8), first, last, t_ms]
    rows = _fmt_cols(*cols)
    sell = (~buy).tolist()
    idx = np.flatnonzero(keep).tolist()
    texts = [tmpl[sell[j]] % tuple(rows[j]) for j in idx]
    e_keep = e_ns[keep]
    return Batch(
        CH_BINANCE_FUTURES_WS if futures else CH_BINANCE_SPOT_WS,
        RANK_FUT_TRADE if futures else RANK_SPOT_TRADE,
        e_keep,
        sk.recv_ns(LAT_FUT if futures else LAT_SPOT, e_keep),
        texts,
    )


def _cols(v: np.ndarray, decimals: int) -> list[np.ndarray]:
    return [v] if decimals == 0 else list(_split(v, decimals))


# ---------------------------------------------------------------------------------------------
# Spot book streams


def _update_ids(spec: AssetSpec, t_ns: np.ndarray) -> np.ndarray:
    """Book update ids from send times (10 us resolution), made strictly increasing."""
    raw = spec.update_id0 + (t_ns - _UPDATE_EPOCH_NS) // 10_000
    if raw.size == 0:
        return raw
    ar = np.arange(raw.size, dtype=np.int64)
    return np.maximum.accumulate(raw - ar) + ar


def book_tickers(ctx: ChunkCtx, spec: AssetSpec) -> Batch:
    """Spot ``<sym>@bookTicker`` frames (no event time on the wire; sent at the update)."""
    cfg, sk = ctx.cfg, ctx.sk
    i = spec.index
    act, _ = _activity(ctx, i, sk.burst_spot)
    g = rng(ctx.seed, TAG_QUOTES, ctx.chunk, i)
    counts = g.poisson(cfg.book_ticker_rate[i] * act / STEPS_PER_S)
    n = int(counts.sum())
    steps = np.repeat(np.arange(ctx.k0, ctx.k1), counts)
    t_ns = np.sort(sk.t0_ns + steps * STEP_NS + g.integers(0, STEP_NS // 1000, n) * 1000)
    k = (t_ns - sk.t0_ns) // STEP_NS
    mid = np.exp(sk.logp[i, k])
    volatile = sk.regime[k] == 1
    wide = g.random(n) < cfg.wide_spread_prob * np.where(volatile, 3.0, 1.0)
    bid, ask = _quotes(mid, spec.spot_tick / _E8, wide)
    level = cfg.level_usd[i] / mid * _E8 / spec.spot_step
    bq = np.maximum(1, np.rint(level * np.exp(g.standard_normal(n) - 0.5))).astype(np.int64)
    aq = np.maximum(1, np.rint(level * np.exp(g.standard_normal(n) - 0.5))).astype(np.int64)
    u = _update_ids(spec, t_ns)
    keep = _in_span(ctx, t_ns)
    tmpl = (
        f'{{"stream":"{spec.stream_symbol}@bookTicker","data":{{"u":%d,"s":"{spec.symbol}",'
        '"b":"%d.%08d","B":"%d.%08d","a":"%d.%08d","A":"%d.%08d"}}'
    )
    rows = _fmt_cols(
        u[keep],
        *_split(bid[keep] * spec.spot_tick, 8),
        *_split(bq[keep] * spec.spot_step, 8),
        *_split(ask[keep] * spec.spot_tick, 8),
        *_split(aq[keep] * spec.spot_step, 8),
    )
    texts = [tmpl % tuple(r) for r in rows]
    t_keep = t_ns[keep]
    return Batch(CH_BINANCE_SPOT_WS, RANK_SPOT_TICKER, t_keep, sk.recv_ns(LAT_SPOT, t_keep), texts)


def depth_partials(ctx: ChunkCtx, spec: AssetSpec) -> Batch:
    """Spot ``<sym>@depth<N>[@100ms]`` partial books, one per update interval."""
    cfg, sk, src = ctx.cfg, ctx.sk, ctx.sources
    i = spec.index
    levels = src.spot_depth_levels
    every = max(1, src.spot_depth_speed_ms * NS_PER_MS // STEP_NS)
    g = rng(ctx.seed, TAG_DEPTH, ctx.chunk, i)
    k_all = np.arange(ctx.k0, ctx.k1)
    k = k_all[k_all % every == 0]
    n = k.size
    phase = (3 + 11 * i) * NS_PER_MS
    t_ns = sk.t0_ns + k * STEP_NS + phase + g.integers(0, 5_000, n) * 1_000
    mid = np.exp(sk.logp[i, k])
    volatile = sk.regime[k] == 1
    wide = g.random(n) < cfg.wide_spread_prob * np.where(volatile, 3.0, 1.0)
    bid0, ask0 = _quotes(mid, spec.spot_tick / _E8, wide)
    gaps_b = g.geometric(0.6, size=(n, levels))
    gaps_a = g.geometric(0.6, size=(n, levels))
    gaps_b[:, 0] = 0
    gaps_a[:, 0] = 0
    bids = (bid0[:, None] - np.cumsum(gaps_b, axis=1)) * spec.spot_tick
    asks = (ask0[:, None] + np.cumsum(gaps_a, axis=1)) * spec.spot_tick
    bids = np.maximum(bids, spec.spot_tick)
    depth_scale = 1.0 + 0.25 * np.arange(levels)
    level = (cfg.level_usd[i] / mid * _E8 / spec.spot_step)[:, None] * depth_scale[None, :]
    bq = np.maximum(1, np.rint(level * np.exp(g.standard_normal((n, levels)) - 0.5)))
    aq = np.maximum(1, np.rint(level * np.exp(g.standard_normal((n, levels)) - 0.5)))
    bq = bq.astype(np.int64) * spec.spot_step
    aq = aq.astype(np.int64) * spec.spot_step
    u = _update_ids(spec, t_ns)
    keep = _in_span(ctx, t_ns)
    stream = f"{spec.stream_symbol}@depth{levels}" + ("@100ms" if every == 1 else "")
    side = ",".join(['["%d.%08d","%d.%08d"]'] * levels)
    tmpl = f'{{"stream":"{stream}","data":{{"lastUpdateId":%d,"bids":[{side}],"asks":[{side}]}}}}'
    cols = np.empty((n, 1 + 8 * levels), dtype=np.int64)
    cols[:, 0] = u
    for side_px, side_q, off in ((bids, bq, 1), (asks, aq, 1 + 4 * levels)):
        pq, pr = np.divmod(side_px, _E8)
        qq, qr = np.divmod(side_q, _E8)
        cols[:, off + 0 : off + 4 * levels : 4] = pq
        cols[:, off + 1 : off + 4 * levels : 4] = pr
        cols[:, off + 2 : off + 4 * levels : 4] = qq
        cols[:, off + 3 : off + 4 * levels : 4] = qr
    rows = cols[keep].tolist()
    texts = [tmpl % tuple(r) for r in rows]
    t_keep = t_ns[keep]
    return Batch(CH_BINANCE_SPOT_WS, RANK_SPOT_DEPTH, t_keep, sk.recv_ns(LAT_SPOT, t_keep), texts)


# ---------------------------------------------------------------------------------------------
# Futures mark price and liquidations


def _futures_mid(ctx: ChunkCtx, i: int, t_ns: np.ndarray) -> np.ndarray:
    sk = ctx.sk
    k = sk.step_index(t_ns)
    return np.exp(sk.logp[i, k]) * (1.0 + sk.basis[i, sk.second_index(t_ns)])


def mark_prices(ctx: ChunkCtx, spec: AssetSpec) -> Batch:
    """Futures ``<sym>@markPrice@1s``: one frame per second."""
    sk = ctx.sk
    i = spec.index
    g = rng(ctx.seed, TAG_FUTURES, ctx.chunk, i, 1)
    secs = np.arange(ctx.c0 // NS_PER_S, ctx.c1 // NS_PER_S, dtype=np.int64)
    n = secs.size
    e_ms = secs * 1_000 + g.integers(1, 6, n)
    e_ns = e_ms * NS_PER_MS
    spot = np.exp(sk.logp[i, sk.step_index(e_ns)])
    j = sk.second_index(e_ns)
    pd = spec.fut_px_decimals
    scale = 10**pd
    mark = np.rint(spot * (1.0 + sk.basis[i, j]) * scale / spec.fut_tick).astype(np.int64)
    mark *= spec.fut_tick * 10 ** (8 - pd)
    avg = np.rint(mark * (1.0 + 2e-5 * g.standard_normal(n)) / 10 ** (8 - pd) / spec.fut_tick)
    avg = avg.astype(np.int64) * spec.fut_tick * 10 ** (8 - pd)
    index = np.rint(spot * (1.0 + 1e-5 * g.standard_normal(n)) * _E8).astype(np.int64)
    settle = np.rint(index * (1.0 + 2e-5 * g.standard_normal(n))).astype(np.int64)
    rate = np.rint(sk.funding[i, j] * _E8).astype(np.int64)
    next_funding = (e_ns // _FUNDING_NS + 1) * _FUNDING_NS // NS_PER_MS
    keep = _in_span(ctx, e_ns)
    s = spec.stream_symbol
    tmpl = (
        f'{{"stream":"{s}@markPrice@1s","data":{{"e":"markPriceUpdate","E":%d,"s":"{spec.symbol}",'
        '"p":"%d.%08d","ap":"%d.%08d","P":"%d.%08d","i":"%d.%08d","r":"%s","T":%d}}'
    )
    idx = np.flatnonzero(keep)
    rows = _fmt_cols(
        e_ms[idx],
        *_split(mark[idx], 8),
        *_split(avg[idx], 8),
        *_split(settle[idx], 8),
        *_split(index[idx], 8),
    )
    rates = rate[idx].tolist()
    nf = next_funding[idx].tolist()
    texts = [tmpl % (*r, _signed_fixed(rt, 8), t) for r, rt, t in zip(rows, rates, nf, strict=True)]
    e_keep = e_ns[idx]
    return Batch(CH_BINANCE_FUTURES_WS, RANK_FUT_MARK, e_keep, sk.recv_ns(LAT_FUT, e_keep), texts)


def liquidations(ctx: ChunkCtx, spec: AssetSpec) -> Batch:
    """Futures ``<sym>@forceOrder``: at most one (the largest) per second, more after moves."""
    cfg, sk = ctx.cfg, ctx.sk
    i = spec.index
    g = rng(ctx.seed, TAG_LIQUIDATIONS, ctx.chunk, i)
    secs = np.arange(ctx.c0 // NS_PER_S, ctx.c1 // NS_PER_S, dtype=np.int64)
    n = secs.size
    t_sec = secs * NS_PER_S
    k = sk.step_index(t_sec)
    back = np.maximum(k - 5 * STEPS_PER_S, 0)
    volatile = sk.regime[k] == 1
    vol = sk.step_vol[i] * np.where(volatile, cfg.volatile_vol_mult, 1.0)
    z5 = (sk.logp[i, k] - sk.logp[i, back]) / (vol * math.sqrt(5 * STEPS_PER_S))
    lam = (
        cfg.liquidations_per_hour
        / 3_600.0
        * np.where(volatile, cfg.volatile_liquidation_mult, 1.0)
        * (1.0 + 0.5 * z5**2)
        / 1.5
    )
    hit = g.poisson(lam) > 0
    sell = g.random(n) < logistic(-2.0 * z5)  # SELL: a long was liquidated, after drops
    t_ms = secs * 1_000 + g.integers(0, 995, n)
    e_ms = t_ms + g.integers(0, 5, n)
    fmid = _futures_mid(ctx, i, t_ms * NS_PER_MS)
    notional = cfg.liquidation_usd * np.exp(1.2 * g.standard_normal(n))
    qd, pd = spec.fut_qty_decimals, spec.fut_px_decimals
    qty = np.maximum(1, np.rint(notional / fmid * 10.0**qd)).astype(np.int64)
    unit = spec.fut_tick * 10.0**-pd
    avg = np.rint(fmid / unit).astype(np.int64)
    slip = 1.0 + np.where(sell, -1.0, 1.0) * g.uniform(0.002, 0.02, n)
    price = np.rint(fmid * slip / unit).astype(np.int64)
    keep = hit & _in_span(ctx, t_ms * NS_PER_MS)
    idx = np.flatnonzero(keep).tolist()
    s = spec.stream_symbol
    texts = []
    for j in idx:
        q = fixed(int(qty[j]), qd)
        texts.append(
            f'{{"stream":"{s}@forceOrder","data":{{"e":"forceOrder","E":{int(e_ms[j])},'
            f'"o":{{"s":"{spec.symbol}","S":"{"SELL" if sell[j] else "BUY"}","o":"LIMIT",'
            f'"f":"IOC","q":"{q}","p":"{fixed(int(price[j]) * spec.fut_tick, pd)}",'
            f'"ap":"{fixed(int(avg[j]) * spec.fut_tick, pd)}","X":"FILLED","l":"{q}",'
            f'"z":"{q}","T":{int(t_ms[j])}}}}}}}'
        )
    e_keep = e_ms[keep] * NS_PER_MS
    return Batch(CH_BINANCE_FUTURES_WS, RANK_FUT_LIQ, e_keep, sk.recv_ns(LAT_FUT, e_keep), texts)


# ---------------------------------------------------------------------------------------------
# REST polls


def open_interest(ctx: ChunkCtx, spec: AssetSpec) -> Batch:
    """REST ``/fapi/v1/openInterest`` responses every ``open_interest_poll_s`` from the start."""
    sk = ctx.sk
    i = spec.index
    period = int(round(ctx.sources.open_interest_poll_s * NS_PER_S))
    first = max(0, -(-(ctx.c0 - ctx.start_ns) // period))
    req = ctx.start_ns + np.arange(first, first + (ctx.c1 - ctx.c0) // period + 2) * period
    req = req[(req >= ctx.c0) & (req < ctx.c1)] + i * 3 * NS_PER_MS
    recv = sk.recv_ns(LAT_REST, req)
    server_ms = (req + (recv - req) // 2) // NS_PER_MS
    g = rng(ctx.seed, TAG_OPEN_INTEREST, ctx.chunk, i)
    oi = np.exp(sk.log_oi[i, sk.second_index(req)] + 1e-4 * g.standard_normal(req.size))
    qd = spec.fut_qty_decimals
    oi_int = np.rint(oi * 10.0**qd).astype(np.int64)
    keep = _in_span(ctx, req)
    texts = [
        f'{{"openInterest":"{fixed(v, qd)}","symbol":"{spec.symbol}","time":{t}}}'
        for v, t in zip(oi_int[keep].tolist(), server_ms[keep].tolist(), strict=True)
    ]
    request = {"symbol": spec.symbol}
    return Batch(
        CH_BINANCE_FUTURES_OI, RANK_OI, req[keep], recv[keep], texts, [request] * len(texts)
    )


def warmup_klines(
    sk: Skeleton, cfg: SimConfig, sources: SourcesConfig, spec: AssetSpec, start_ns: int, seed: int
) -> Batch:
    """REST ``/api/v3/klines`` 1m bars covering ``kline_warmup_minutes`` before the start.

    Only closed bars (the minute in progress at the start is not included); one response
    frame per 1000 bars (the endpoint's limit), requested at the start.
    """
    i = spec.index
    minute = 60 * NS_PER_S
    bars = sources.kline_warmup_minutes
    m0 = start_ns - start_ns % minute
    if bars <= 0:
        return Batch(CH_BINANCE_SPOT_KLINES, RANK_KLINES, _I64(), _I64(), [], [])
    opens = m0 - (bars - np.arange(bars, dtype=np.int64)) * minute
    o, hi, lo, c, lam = _bar_prices(sk, cfg, spec, opens)
    g = rng(seed, TAG_KLINES, i)
    trades = g.poisson(lam)
    z_vol = g.standard_normal(bars)
    z_buy = g.standard_normal(bars)
    rows = _kline_texts(sk, cfg, spec, opens, (o, hi, lo, c), trades, z_vol, z_buy)
    texts = ["[" + ",".join(rows[p : p + 1000]) + "]" for p in range(0, bars, 1000)]
    req_ns = start_ns + np.arange(len(texts), dtype=np.int64) * 5 * NS_PER_MS + i * NS_PER_MS
    recv = sk.recv_ns(LAT_REST, req_ns)
    request = {"symbol": spec.symbol}
    return Batch(CH_BINANCE_SPOT_KLINES, RANK_KLINES, req_ns, recv, texts, [request] * len(texts))


def _bar_prices(
    sk: Skeleton, cfg: SimConfig, spec: AssetSpec, opens: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(open, high, low, close) in 1e-8 units from the skeleton's 100 ms spot mid, and the
    expected trade count, of 1m bars opening at ``opens`` (ns, minute boundaries)."""
    i = spec.index
    per = 60 * NS_PER_S // STEP_NS
    k = (opens[:, None] - sk.t0_ns) // STEP_NS + np.arange(per)[None, :]
    k = np.clip(k, 0, sk.n - 1)
    tick = spec.spot_tick
    px = np.rint(np.exp(sk.logp[i, k]) * _E8 / tick).astype(np.int64) * tick
    burst = sk.burst_spot[i, np.minimum(k[:, 0] // STEPS_PER_S, sk.m - 1)]
    volatile = sk.regime[k[:, 0]] == 1
    act = np.where(volatile, cfg.volatile_activity_mult, 1.0) * np.exp(
        burst - 0.5 * cfg.burst_sd**2
    )
    lam = cfg.spot_trade_rate[i] * 60.0 * act
    return px[:, 0], px.max(axis=1), px.min(axis=1), px[:, -1], lam


def _kline_texts(
    sk: Skeleton,
    cfg: SimConfig,
    spec: AssetSpec,
    opens: np.ndarray,
    ohlc: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    trades: np.ndarray,
    z_vol: np.ndarray,
    z_buy: np.ndarray,
) -> list[str]:
    """The klines rows (JSON text, one per bar) from the bars' prices, trade counts and two
    standard normal draws per bar (volume noise, taker-buy share noise)."""
    i = spec.index
    o, hi, lo, c = ohlc
    per = 60 * NS_PER_S // STEP_NS
    mean_usd = cfg.spot_trade_usd[i] * math.exp(0.5 * cfg.trade_size_sigma**2)
    mid = (o + c) / 2.0 / _E8
    vol_usd = trades * mean_usd * np.exp(0.3 * z_vol)
    volume = np.rint(vol_usd / mid * _E8 / spec.spot_step).astype(np.int64) * spec.spot_step
    ret = (c - o) / np.maximum(o, 1)
    sd = sk.step_vol[i] * math.sqrt(per)
    buy_share = np.clip(0.5 + 0.2 * np.tanh(ret / sd) + 0.05 * z_buy, 0.05, 0.95)
    taker = np.rint(volume / spec.spot_step * buy_share).astype(np.int64) * spec.spot_step
    vwap = (o + hi + lo + c) / 4.0 / _E8
    qvol = np.rint(volume / _E8 * vwap * _E8).astype(np.int64)
    tq = np.rint(taker / _E8 * vwap * _E8).astype(np.int64)
    ms = opens // NS_PER_MS
    f8 = "%d.%08d"
    row = f'[%d,"{f8}","{f8}","{f8}","{f8}","{f8}",%d,"{f8}",%d,"{f8}","{f8}","0"]'
    cols = _fmt_cols(
        ms,
        *_split(o, 8),
        *_split(hi, 8),
        *_split(lo, 8),
        *_split(c, 8),
        *_split(volume, 8),
        ms + 59_999,
        *_split(qvol, 8),
        trades,
        *_split(taker, 8),
        *_split(tq, 8),
    )
    return [row % tuple(r) for r in cols]


def _I64() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# REST answers on request (the loopback venue servers, polyrl.sim.serve)


def kline_rows(
    sk: Skeleton, cfg: SimConfig, spec: AssetSpec, seed: int, opens_ns: np.ndarray
) -> list[str]:
    """``GET /api/v3/klines`` rows (JSON text, one per bar) of 1m bars opening at ``opens_ns``.

    ``opens_ns`` are minute boundaries inside the skeleton. Prices come from the skeleton's
    100 ms mid exactly as :func:`warmup_klines` computes them; the random parts (trade count,
    volume, taker share) come from a generator keyed by the bar's own minute, so a bar reads
    the same in every response whatever else was requested with it. (The warm-up frames of a
    simulation draw theirs per request instead, so their volumes differ from these.)
    """
    opens = np.asarray(opens_ns, dtype=np.int64)
    bars = int(opens.size)
    if bars == 0:
        return []
    i = spec.index
    minute = 60 * NS_PER_S
    o, hi, lo, c, lam = _bar_prices(sk, cfg, spec, opens)
    trades = np.empty(bars, dtype=np.int64)
    z_vol = np.empty(bars)
    z_buy = np.empty(bars)
    for b, (t_open, rate) in enumerate(zip(opens.tolist(), lam.tolist(), strict=True)):
        g = rng(seed, TAG_KLINES, i, t_open // minute)
        trades[b] = g.poisson(rate)
        z_vol[b], z_buy[b] = g.standard_normal(2)
    return _kline_texts(sk, cfg, spec, opens, (o, hi, lo, c), trades, z_vol, z_buy)


def open_interest_text(sk: Skeleton, spec: AssetSpec, t_ns: int) -> str:
    """``GET /fapi/v1/openInterest`` response at ``t_ns``: the skeleton's open interest of
    that second (contracts, in the contract's quantity precision), ``time`` = ``t_ns`` in ms."""
    i = spec.index
    oi = math.exp(float(sk.log_oi[i, int(sk.second_index(t_ns))]))
    qd = spec.fut_qty_decimals
    value = fixed(int(round(oi * 10.0**qd)), qd)
    return f'{{"openInterest":"{value}","symbol":"{spec.symbol}","time":{t_ns // NS_PER_MS}}}'
