"""Binance USD-M futures streams of one chunk besides aggTrades: ``<sym>@markPrice@1s`` and
``<sym>@forceOrder`` (see :mod:`polyrl.sim.binance` for the model they share)."""

from __future__ import annotations

import math

import numpy as np

from polyrl.events import CH_BINANCE_FUTURES_WS, NS_PER_MS, NS_PER_S
from polyrl.sim.batch import Batch
from polyrl.sim.binance import (
    E8,
    RANK_FUT_LIQ,
    RANK_FUT_MARK,
    fmt_cols,
    in_span,
    split_decimals,
)
from polyrl.sim.chunk import ChunkCtx
from polyrl.sim.numeric import TAG_FUTURES, TAG_LIQUIDATIONS, fixed, logistic, rng
from polyrl.sim.paths import LAT_FUT, STEPS_PER_S
from polyrl.sim.specs import AssetSpec

_FUNDING_NS = 8 * 3_600 * NS_PER_S


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
    index = np.rint(spot * (1.0 + 1e-5 * g.standard_normal(n)) * E8).astype(np.int64)
    settle = np.rint(index * (1.0 + 2e-5 * g.standard_normal(n))).astype(np.int64)
    rate = np.rint(sk.funding[i, j] * E8).astype(np.int64)
    next_funding = (e_ns // _FUNDING_NS + 1) * _FUNDING_NS // NS_PER_MS
    keep = in_span(ctx, e_ns)
    s = spec.stream_symbol
    tmpl = (
        f'{{"stream":"{s}@markPrice@1s","data":{{"e":"markPriceUpdate","E":%d,"s":"{spec.symbol}",'
        '"p":"%d.%08d","ap":"%d.%08d","P":"%d.%08d","i":"%d.%08d","r":"%s","T":%d}}'
    )
    idx = np.flatnonzero(keep)
    rows = fmt_cols(
        e_ms[idx],
        *split_decimals(mark[idx], 8),
        *split_decimals(avg[idx], 8),
        *split_decimals(settle[idx], 8),
        *split_decimals(index[idx], 8),
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
    keep = hit & in_span(ctx, t_ms * NS_PER_MS)
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


def _signed_fixed(v: int, decimals: int) -> str:
    return fixed(v, decimals) if v >= 0 else "-" + fixed(-v, decimals)
