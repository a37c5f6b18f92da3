"""Binance spot and futures ``<sym>@aggTrade`` frames of one chunk, and the trade ids they
carry from chunk to chunk (see :mod:`polyrl.sim.binance` for the model they share)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from polyrl.events import CH_BINANCE_FUTURES_WS, CH_BINANCE_SPOT_WS, NS_PER_MS, NS_PER_S
from polyrl.sim.batch import Batch
from polyrl.sim.binance import (
    E8,
    ID_EPOCH_S,
    RANK_FUT_TRADE,
    RANK_SPOT_TRADE,
    activity,
    fmt_cols,
    in_span,
    moves,
    quotes,
    split_decimals,
)
from polyrl.sim.chunk import ChunkCtx
from polyrl.sim.config import SimConfig
from polyrl.sim.numeric import TAG_COUNTS, TAG_FUTURES, TAG_TRADES, logistic, rng
from polyrl.sim.paths import LAT_FUT, LAT_SPOT, STEP_NS, STEPS_PER_S
from polyrl.sim.specs import AssetSpec


@dataclass(slots=True)
class IdState:
    """Next aggregate-trade id and next trade id of one asset on one venue."""

    agg: int
    trade: int


def initial_ids(spec: AssetSpec, futures: bool, first_chunk_start_ns: int) -> IdState:
    """Where the ids of a simulation starting at ``first_chunk_start_ns`` begin."""
    base = spec.trade_id0 * (3 if futures else 1)
    grown = max(0, first_chunk_start_ns // NS_PER_S - ID_EPOCH_S) * (20 if futures else 10)
    return IdState(agg=base + grown, trade=2 * (base + grown))


def trade_counts(ctx: ChunkCtx, spec: AssetSpec, futures: bool) -> tuple[np.ndarray, np.ndarray]:
    """(aggTrades per 100 ms step, trades per aggTrade) of the whole chunk.

    Drawn from their own generator so that the ids a chunk consumes can be known without
    generating its frames (``sum(fills)`` trade ids, ``sum(counts)`` aggregate ids).
    """
    cfg = ctx.cfg
    i = spec.index
    burst = ctx.sk.burst_fut if futures else ctx.sk.burst_spot
    rate = (cfg.futures_trade_rate if futures else cfg.spot_trade_rate)[i]
    act, _ = activity(ctx, i, burst)
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
    _, vol, _ = moves(ctx, i, extra=STEPS_PER_S)
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
        bid, ask = quotes(fmid, spec.fut_tick * unit, wide)
        px = np.where(buy, ask, bid) * spec.fut_tick
        qty = np.maximum(1, np.rint(notional / fmid * 10.0**spec.fut_qty_decimals)).astype(np.int64)
        delay = g.integers(0, 2, n)
    else:
        tick = spec.spot_tick / E8
        bid, ask = quotes(mid, tick, wide)
        px = np.where(buy, ask, bid) * spec.spot_tick
        step = spec.spot_step
        qty = np.maximum(1, np.rint(notional / mid * E8 / step)).astype(np.int64) * step
        slow = g.random(n) < 0.01  # spot E - T has a long tail (FACTS: p99 ~200 ms)
        delay = g.integers(0, 3, n) + slow * g.integers(10, 200, n)
    e_ms = np.maximum.accumulate(t_ms + delay) if n else t_ms

    agg = ids.agg + np.arange(n, dtype=np.int64)
    last = ids.trade + np.cumsum(fills) - 1
    first = last - fills + 1
    ids.agg += n
    ids.trade += int(fills.sum())

    e_ns = e_ms * NS_PER_MS
    keep = in_span(ctx, t_ms * NS_PER_MS)
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
        px_cols = split_decimals(px, pd)
        cols = [e_ms, agg, *px_cols, *_cols(qty, qd), *_cols(nq, qd), first, last, t_ms]
    else:
        tmpl_s = (
            f'{{"stream":"{s}@aggTrade","data":{{"e":"aggTrade","E":%d,"s":"{spec.symbol}",'
            '"a":%d,"p":"%d.%08d","q":"%d.%08d","f":%d,"l":%d,"T":%d,"m":'
        )
        tmpl = (tmpl_s + 'false,"M":true}}', tmpl_s + 'true,"M":true}}')
        cols = [e_ms, agg, *split_decimals(px, 8), *split_decimals(qty, 8), first, last, t_ms]
    rows = fmt_cols(*cols)
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
    return [v] if decimals == 0 else list(split_decimals(v, decimals))


def _notional(cfg: SimConfig, g: np.random.Generator, median: float, size: int) -> np.ndarray:
    """Heavy-tailed trade notionals: lognormal body, Pareto tail (capped at 1000x median)."""
    body = median * np.exp(cfg.trade_size_sigma * g.standard_normal(size))
    tail = 3.0 * median * g.random(size) ** (-1.0 / cfg.trade_size_tail_alpha)
    pick = g.random(size) < cfg.trade_size_tail_prob
    return np.minimum(np.where(pick, tail, body), 1000.0 * median)


def _px_fmt(decimals: int) -> str:
    return "%d" if decimals == 0 else f"%d.%0{decimals}d"
