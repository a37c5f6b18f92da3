"""Binance REST frames: futures open interest polled every ``open_interest_poll_s`` and the
spot 1m klines of the warm-up, as a simulation records them, and the same endpoints'
answers on request for the loopback venue servers (:mod:`polyrl.sim.serve`)."""

from __future__ import annotations

import math

import numpy as np

from polyrl.events import CH_BINANCE_FUTURES_OI, CH_BINANCE_SPOT_KLINES, NS_PER_MS, NS_PER_S
from polyrl.sim.batch import Batch
from polyrl.sim.binance import E8, RANK_KLINES, RANK_OI, fmt_cols, in_span, split_decimals
from polyrl.sim.chunk import ChunkCtx
from polyrl.sim.config import SimConfig
from polyrl.sim.numeric import TAG_KLINES, TAG_OPEN_INTEREST, fixed, rng
from polyrl.sim.paths import LAT_REST, STEP_NS, STEPS_PER_S, Skeleton
from polyrl.sim.specs import AssetSpec
from polyrl.sources.config import SourcesConfig

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
    keep = in_span(ctx, req)
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
    px = np.rint(np.exp(sk.logp[i, k]) * E8 / tick).astype(np.int64) * tick
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
    mid = (o + c) / 2.0 / E8
    vol_usd = trades * mean_usd * np.exp(0.3 * z_vol)
    volume = np.rint(vol_usd / mid * E8 / spec.spot_step).astype(np.int64) * spec.spot_step
    ret = (c - o) / np.maximum(o, 1)
    sd = sk.step_vol[i] * math.sqrt(per)
    buy_share = np.clip(0.5 + 0.2 * np.tanh(ret / sd) + 0.05 * z_buy, 0.05, 0.95)
    taker = np.rint(volume / spec.spot_step * buy_share).astype(np.int64) * spec.spot_step
    vwap = (o + hi + lo + c) / 4.0 / E8
    qvol = np.rint(volume / E8 * vwap * E8).astype(np.int64)
    tq = np.rint(taker / E8 * vwap * E8).astype(np.int64)
    ms = opens // NS_PER_MS
    f8 = "%d.%08d"
    row = f'[%d,"{f8}","{f8}","{f8}","{f8}","{f8}",%d,"{f8}",%d,"{f8}","{f8}","0"]'
    cols = fmt_cols(
        ms,
        *split_decimals(o, 8),
        *split_decimals(hi, 8),
        *split_decimals(lo, 8),
        *split_decimals(c, 8),
        *split_decimals(volume, 8),
        ms + 59_999,
        *split_decimals(qvol, 8),
        trades,
        *split_decimals(taker, 8),
        *split_decimals(tq, 8),
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
