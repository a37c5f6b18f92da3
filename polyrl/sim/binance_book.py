"""Binance spot book streams of one chunk: ``<sym>@bookTicker`` and the ``<sym>@depth<N>``
partial books (see :mod:`polyrl.sim.binance` for the model they share)."""

from __future__ import annotations

import numpy as np

from polyrl.events import CH_BINANCE_SPOT_WS, NS_PER_MS, NS_PER_S
from polyrl.sim.batch import Batch
from polyrl.sim.binance import (
    E8,
    ID_EPOCH_S,
    RANK_SPOT_DEPTH,
    RANK_SPOT_TICKER,
    activity,
    fmt_cols,
    in_span,
    quotes,
    split_decimals,
)
from polyrl.sim.chunk import ChunkCtx
from polyrl.sim.numeric import TAG_DEPTH, TAG_QUOTES, rng
from polyrl.sim.paths import LAT_SPOT, STEP_NS, STEPS_PER_S
from polyrl.sim.specs import AssetSpec

_UPDATE_EPOCH_NS = ID_EPOCH_S * NS_PER_S


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
    act, _ = activity(ctx, i, sk.burst_spot)
    g = rng(ctx.seed, TAG_QUOTES, ctx.chunk, i)
    counts = g.poisson(cfg.book_ticker_rate[i] * act / STEPS_PER_S)
    n = int(counts.sum())
    steps = np.repeat(np.arange(ctx.k0, ctx.k1), counts)
    t_ns = np.sort(sk.t0_ns + steps * STEP_NS + g.integers(0, STEP_NS // 1000, n) * 1000)
    k = (t_ns - sk.t0_ns) // STEP_NS
    mid = np.exp(sk.logp[i, k])
    volatile = sk.regime[k] == 1
    wide = g.random(n) < cfg.wide_spread_prob * np.where(volatile, 3.0, 1.0)
    bid, ask = quotes(mid, spec.spot_tick / E8, wide)
    level = cfg.level_usd[i] / mid * E8 / spec.spot_step
    bq = np.maximum(1, np.rint(level * np.exp(g.standard_normal(n) - 0.5))).astype(np.int64)
    aq = np.maximum(1, np.rint(level * np.exp(g.standard_normal(n) - 0.5))).astype(np.int64)
    u = _update_ids(spec, t_ns)
    keep = in_span(ctx, t_ns)
    tmpl = (
        f'{{"stream":"{spec.stream_symbol}@bookTicker","data":{{"u":%d,"s":"{spec.symbol}",'
        '"b":"%d.%08d","B":"%d.%08d","a":"%d.%08d","A":"%d.%08d"}}'
    )
    rows = fmt_cols(
        u[keep],
        *split_decimals(bid[keep] * spec.spot_tick, 8),
        *split_decimals(bq[keep] * spec.spot_step, 8),
        *split_decimals(ask[keep] * spec.spot_tick, 8),
        *split_decimals(aq[keep] * spec.spot_step, 8),
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
    bid0, ask0 = quotes(mid, spec.spot_tick / E8, wide)
    gaps_b = g.geometric(0.6, size=(n, levels))
    gaps_a = g.geometric(0.6, size=(n, levels))
    gaps_b[:, 0] = 0
    gaps_a[:, 0] = 0
    bids = (bid0[:, None] - np.cumsum(gaps_b, axis=1)) * spec.spot_tick
    asks = (ask0[:, None] + np.cumsum(gaps_a, axis=1)) * spec.spot_tick
    bids = np.maximum(bids, spec.spot_tick)
    depth_scale = 1.0 + 0.25 * np.arange(levels)
    level = (cfg.level_usd[i] / mid * E8 / spec.spot_step)[:, None] * depth_scale[None, :]
    bq = np.maximum(1, np.rint(level * np.exp(g.standard_normal((n, levels)) - 0.5)))
    aq = np.maximum(1, np.rint(level * np.exp(g.standard_normal((n, levels)) - 0.5)))
    bq = bq.astype(np.int64) * spec.spot_step
    aq = aq.astype(np.int64) * spec.spot_step
    u = _update_ids(spec, t_ns)
    keep = in_span(ctx, t_ns)
    stream = f"{spec.stream_symbol}@depth{levels}" + ("@100ms" if every == 1 else "")
    side = ",".join(['["%d.%08d","%d.%08d"]'] * levels)
    tmpl = f'{{"stream":"{stream}","data":{{"lastUpdateId":%d,"bids":[{side}],"asks":[{side}]}}}}'
    cols = np.empty((n, 1 + 8 * levels), dtype=np.int64)
    cols[:, 0] = u
    for side_px, side_q, off in ((bids, bq, 1), (asks, aq, 1 + 4 * levels)):
        pq, pr = np.divmod(side_px, E8)
        qq, qr = np.divmod(side_q, E8)
        cols[:, off + 0 : off + 4 * levels : 4] = pq
        cols[:, off + 1 : off + 4 * levels : 4] = pr
        cols[:, off + 2 : off + 4 * levels : 4] = qq
        cols[:, off + 3 : off + 4 * levels : 4] = qr
    rows = cols[keep].tolist()
    texts = [tmpl % tuple(r) for r in rows]
    t_keep = t_ns[keep]
    return Batch(CH_BINANCE_SPOT_WS, RANK_SPOT_DEPTH, t_keep, sk.recv_ns(LAT_SPOT, t_keep), texts)
