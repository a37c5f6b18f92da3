"""Polymarket for the simulator: market identities, Gamma responses and the CLOB channel.

Timeline of one asset's market for the window ``[ws, we)`` (``we = ws + 900 s``), as the
recorder would see it (``SourcesConfig`` gives the leads):

* **discovery**: a Gamma ``/markets?slug=`` response (a JSON array holding the market
  object) requested at ``ws - discovery_lead_s``, or at the simulation start for windows
  already open or opening within the lead then;
* **subscription**: the CLOB books from ``ws - subscribe_lead_s`` (and never before the
  discovery response has arrived) until ``we``: see :mod:`polyrl.sim.book`;
* **resolution**: Gamma responses polled at ``we + resolution_delay_s`` and every
  ``resolution_poll_s`` after, until one sees the market closed: before ``closedTime``
  (``we`` + 15..60 s) the market reads ``active``, not accepting orders, not closed; from
  then on ``closed: true`` with ``outcomePrices`` ``["1", "0"]`` (Up) or ``["0", "1"]``.

Ids are hashes of ``(seed, asset, window)``: a condition id ``0x`` + 64 hex, token ids as
large decimal integers, the question in Eastern time ("Bitcoin Up or Down - June 1,
12:00AM-12:15AM ET").
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from polyrl.events import (
    CH_POLYMARKET_GAMMA,
    CH_POLYMARKET_WS,
    NS_PER_MS,
    NS_PER_S,
    WINDOW_NS,
    ns_to_datetime,
)
from polyrl.sim.batch import Batch
from polyrl.sim.book import MarketSim
from polyrl.sim.chunk import ChunkCtx
from polyrl.sim.clob import MarketIds
from polyrl.sim.config import SimConfig
from polyrl.sim.numeric import TAG_RESOLUTION, rng
from polyrl.sim.paths import LAT_PM, LAT_REST, TWAP_WINDOW_S, Skeleton
from polyrl.sim.reference import resolve, settle_e18
from polyrl.sim.specs import SPECS
from polyrl.sources.config import SourcesConfig

RANK_CLOB, RANK_GAMMA = 40, 50

_MONTHS = (
    "January February March April May June July August September October November December"
).split()


def _digest(seed: int, asset: str, window_start_ns: int, what: str) -> bytes:
    return hashlib.sha256(f"polyrl-sim/{seed}/{asset}/{window_start_ns}/{what}".encode()).digest()


def eastern_offset_hours(t: _dt.datetime) -> int:
    """UTC offset of US Eastern time at UTC instant ``t``: -4 in daylight time, else -5.

    Daylight time runs from the second Sunday of March, 07:00 UTC, to the first Sunday of
    November, 06:00 UTC (the rule since 2007, applied to every year).
    """
    y = t.year
    mar1 = _dt.date(y, 3, 1)
    start_day = 1 + (6 - mar1.weekday()) % 7 + 7
    nov1 = _dt.date(y, 11, 1)
    end_day = 1 + (6 - nov1.weekday()) % 7
    start = _dt.datetime(y, 3, start_day, 7, tzinfo=_dt.UTC)
    end = _dt.datetime(y, 11, end_day, 6, tzinfo=_dt.UTC)
    return -4 if start <= t < end else -5


def _clock(t: _dt.datetime) -> str:
    h = t.hour % 12 or 12
    return f"{h}:{t.minute:02d}{'AM' if t.hour < 12 else 'PM'}"


def question(asset: str, window_start_ns: int) -> str:
    """The market title, e.g. ``Bitcoin Up or Down - June 1, 12:00AM-12:15AM ET``."""
    s = ns_to_datetime(window_start_ns)
    e = ns_to_datetime(window_start_ns + WINDOW_NS)
    s_et = s + _dt.timedelta(hours=eastern_offset_hours(s))
    e_et = e + _dt.timedelta(hours=eastern_offset_hours(e))
    day = f"{_MONTHS[s_et.month - 1]} {s_et.day}"
    return f"{SPECS[asset].name} Up or Down - {day}, {_clock(s_et)}-{_clock(e_et)} ET"


def market_ids(seed: int, asset: str, window_start_ns: int) -> MarketIds:
    """The ids of one asset's market for one window (deterministic in the seed)."""
    d = lambda what: _digest(seed, asset, window_start_ns, what)  # noqa: E731
    up = int.from_bytes(d("up"), "big") >> 4
    down = int.from_bytes(d("down"), "big") >> 4
    mid = 1_000_000 + int.from_bytes(d("id")[:4], "big") % 9_000_000
    return MarketIds(
        asset=asset,
        asset_index=SPECS[asset].index,
        window_start_ns=window_start_ns,
        slug=f"{asset}-updown-15m-{window_start_ns // NS_PER_S}",
        condition_id="0x" + d("condition").hex(),
        up_token=str(up),
        down_token=str(down),
        market_id=str(mid),
        question_id="0x" + d("question").hex(),
        question=question(asset, window_start_ns),
    )


def _iso(ns: int, micros: bool = False) -> str:
    d = ns_to_datetime(ns)
    if micros:
        return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(x: float) -> float | int:
    """Whole numbers as JSON integers (``exponent: 1``), others as floats."""
    return int(x) if float(x).is_integer() else x


def listing_time_ns(cfg: SimConfig, seed: int, asset: str, window_start_ns: int) -> int:
    """When a window's market is listed on Gamma (its ``createdAt``), ns.

    ``listing_lead_s`` before the window plus a deterministic 0-600 s jitter per market, so
    a server answering Gamma lookups lists a market from exactly this time.
    """
    jitter_us = int.from_bytes(_digest(seed, asset, window_start_ns, "created")[:4], "big")
    return window_start_ns - int(cfg.listing_lead_s * NS_PER_S) + jitter_us % 600_000_000 * 1_000


def gamma_market(
    ids: MarketIds,
    cfg: SimConfig,
    sources: SourcesConfig,
    seed: int,
    *,
    now_ns: int,
    tick: float,
    bid_ask: tuple[float, float],
    last_trade: float,
    volume: float,
    closed_ns: int | None = None,
    outcome: str | None = None,
) -> dict[str, Any]:
    """The Gamma market object as ``/markets`` returns it at ``now_ns``.

    ``closed_ns``/``outcome`` are given once the market is closed; ``bid_ask`` and
    ``last_trade`` are probabilities of the Up token.
    """
    asset = ids.asset
    ws, we = ids.window_start_ns, ids.window_end_ns
    created = listing_time_ns(cfg, seed, asset, ws)
    ended = now_ns >= we
    window = TWAP_WINDOW_S.get(sources.reference_feed)
    stream = f"{asset}-usd" if window is None else f"{asset}-usd-twap-{window}s-streams"
    up_price = bid_ask[0] / 2 + bid_ask[1] / 2
    if outcome is not None:
        prices = ["1", "0"] if outcome == "Up" else ["0", "1"]
    else:
        p = round(min(max(up_price, 0.0), 1.0), 3)
        prices = [f"{p:g}", f"{round(1.0 - p, 3):g}"]
    name = SPECS[asset].name
    m: dict[str, Any] = {
        "id": ids.market_id,
        "question": ids.question,
        "conditionId": ids.condition_id,
        "slug": ids.slug,
        "resolutionSource": f"https://data.chain.link/streams/{stream}",
        "endDate": _iso(we),
        "startDate": _iso(created + 60 * NS_PER_S, micros=True),
        "createdAt": _iso(created, micros=True),
        "eventStartTime": _iso(ws),
        "description": (
            f'Simulated market. Resolves "Up" if the {name} reference price (Chainlink '
            f"{asset.upper()}/USD) at the end of the window in the title is at or above its "
            f'value at the start of the window, otherwise "Down".'
        ),
        "outcomes": json.dumps(["Up", "Down"]),
        "outcomePrices": json.dumps(prices),
        "clobTokenIds": json.dumps([ids.up_token, ids.down_token]),
        "volume": repr(round(volume, 6)),
        "volumeNum": round(volume, 6),
        "active": True,
        "closed": closed_ns is not None,
        "acceptingOrders": not ended,
        "acceptingOrdersTimestamp": _iso(created + 13 * NS_PER_S),
        "enableOrderBook": True,
        "orderPriceMinTickSize": tick,
        "orderMinSize": 5,
        "makerBaseFee": 1000,
        "takerBaseFee": 1000,
        "feesEnabled": cfg.fees_enabled,
        "feeType": "crypto_fees_v2",
        "feeSchedule": {
            "rate": _num(cfg.fee_rate),
            "exponent": _num(cfg.fee_exponent),
            "takerOnly": cfg.fee_taker_only,
            "rebateRate": _num(cfg.fee_rebate_rate),
        },
        "negRisk": False,
        "questionID": ids.question_id,
        "bestBid": round(bid_ask[0], 3),
        "bestAsk": round(bid_ask[1], 3),
        "spread": round(bid_ask[1] - bid_ask[0], 3),
        "lastTradePrice": round(last_trade, 3),
        "endDateIso": _iso(we)[:10],
        "startDateIso": _iso(created)[:10],
        "automaticallyActive": True,
    }
    if window is not None:
        m["cryptoMarketConfig"] = {
            "id": f"{asset}-15m-twap-{window}",
            "asset": asset,
            "duration": "15m",
            "twapEnabled": True,
            "twapLookbackSeconds": window,
        }
    if closed_ns is not None:
        closed = ns_to_datetime(closed_ns)
        m["closedTime"] = closed.strftime("%Y-%m-%d %H:%M:%S+00")
        m["umaEndDate"] = _iso(closed_ns)
        m["umaResolutionStatus"] = "resolved"
        m["automaticallyResolved"] = True
    return m


def closed_time_ns(cfg: SimConfig, seed: int, asset_index: int, window_start_ns: int) -> int:
    """Gamma ``closedTime`` of a window's market: 15-60 s after its end, whole seconds."""
    g = rng(seed, TAG_RESOLUTION, asset_index, window_start_ns // NS_PER_S)
    delay = g.uniform(cfg.close_delay_min_s, cfg.close_delay_max_s)
    return window_start_ns + WINDOW_NS + int(delay) * NS_PER_S


class PolymarketSide:
    """Every market of the simulation: schedules Gamma polls, runs the books chunk by chunk."""

    def __init__(
        self,
        sk: Skeleton,
        cfg: SimConfig,
        sources: SourcesConfig,
        *,
        assets: Sequence[str],
        start_ns: int,
        end_ns: int,
        seed: int,
    ) -> None:
        self.sk, self.cfg, self.sources = sk, cfg, sources
        self.assets = list(assets)
        self.start_ns, self.end_ns, self.seed = start_ns, end_ns, seed
        self.markets: dict[tuple[int, str], MarketSim] = {}
        self.ended: dict[tuple[int, str], tuple[float, float, float, float, float]] = {}
        """(bid, ask, last trade, tick, volume) of markets whose window has ended."""
        self.schedule = self._schedule()

    # -- when things happen -----------------------------------------------------------------

    def _schedule(self) -> dict[tuple[int, str], tuple[int, int, int]]:
        """(discovery request, subscribe time, closedTime) of every window to simulate.

        Windows discovered at the start are requested one after another (the k-th such
        window of asset index i at ``start + (4k + i) * 7 ms``); later ones at
        ``ws - discovery_lead_s + 7 ms * i``. Times depend on the asset, never on which other
        assets are simulated.
        """
        out = {}
        lead = int(self.sources.discovery_lead_s * NS_PER_S)
        sub_lead = int(self.sources.subscribe_lead_s * NS_PER_S)
        first = self.start_ns - self.start_ns % WINDOW_NS
        for k, ws in enumerate(range(first, self.end_ns + lead + WINDOW_NS, WINDOW_NS)):
            for asset in self.assets:
                idx = SPECS[asset].index
                if ws - lead <= self.start_ns:
                    ann = self.start_ns + (4 * k + idx) * 7 * NS_PER_MS
                else:
                    ann = ws - lead + idx * 7 * NS_PER_MS
                if ann >= self.end_ns:
                    continue
                ann_recv = int(self.sk.recv_ns(LAT_REST, np.array([ann]))[0])
                sub = max(ws - sub_lead, ann_recv + 50 * NS_PER_MS)
                out[(ws, asset)] = (ann, sub, closed_time_ns(self.cfg, self.seed, idx, ws))
        return out

    def poll_times(self, ws: int, closed_ns: int) -> list[int]:
        """Resolution poll request times of a window, the last one the first at/after close."""
        we = ws + WINDOW_NS
        t = we + int(self.sources.resolution_delay_s * NS_PER_S)
        step = int(self.sources.resolution_poll_s * NS_PER_S)
        out = [t]
        while t < closed_ns:
            t += step
            out.append(t)
        return out

    # -- one chunk -------------------------------------------------------------------------

    def fast_forward(self, t_ns: int) -> None:
        """Bring every book to its state at ``t_ns`` (a chunk start) without output.

        Markets subscribed before ``t_ns`` are simulated up to it; those whose window ended
        within the hour before keep their final state for the resolution polls.
        """
        sink_ts: list[int] = []
        sink_tx: list[str] = []
        for key, (_, sub, _) in self.schedule.items():
            ws, asset = key
            we = ws + WINDOW_NS
            if sub >= t_ns or sub >= we or we <= t_ns - 3_600 * NS_PER_S:
                continue
            sim = MarketSim(market_ids(self.seed, asset, ws), self.sk, self.cfg, self.seed, sub)
            sim.advance(t_ns // NS_PER_MS, sink_ts, sink_tx)
            sink_ts.clear()
            sink_tx.clear()
            if sim.finished:
                self._finish(key, sim)
            else:
                self.markets[key] = sim

    def _finish(self, key: tuple[int, str], sim: MarketSim) -> None:
        bb, ba = sim.touch()
        last = sim.ltp[0] if sim.ltp[0] is not None else (bb + ba) / 2
        tick = 0.001 if sim.tick == 1 else 0.01
        self.ended[key] = (bb / 1000, ba / 1000, last / 1000, tick, sim.volume)

    def chunk(self, ctx: ChunkCtx) -> list[Batch]:
        """The CLOB and Gamma frames of one chunk."""
        return [self._clob(ctx), self._gamma(ctx)]

    def _clob(self, ctx: ChunkCtx) -> Batch:
        c1_ms = ctx.c1 // NS_PER_MS
        for key, (_, sub, _) in self.schedule.items():
            ws, asset = key
            if key in self.markets or key in self.ended:
                continue
            if sub < ctx.c1 and sub < ws + WINDOW_NS:
                ids = market_ids(self.seed, asset, ws)
                self.markets[key] = MarketSim(ids, self.sk, self.cfg, self.seed, sub)
        ts: list[int] = []
        texts: list[str] = []
        for key in sorted(self.markets):
            sim = self.markets[key]
            sim.advance(c1_ms, ts, texts)
            if sim.finished:
                self._finish(key, sim)
                del self.markets[key]
        vt = np.asarray(ts, dtype=np.int64) * NS_PER_MS
        keep = (vt >= ctx.start_ns) & (vt < ctx.end_ns)
        if not keep.all():
            vt = vt[keep]
            texts = [t for t, k in zip(texts, keep.tolist(), strict=True) if k]
        return Batch(CH_POLYMARKET_WS, RANK_CLOB, vt, self.sk.recv_ns(LAT_PM, vt), texts)

    def _gamma(self, ctx: ChunkCtx) -> Batch:
        reqs: list[tuple[int, str, tuple[int, str]]] = []
        for key, (ann, _, closed) in self.schedule.items():
            ws, asset = key
            if ctx.c0 <= ann < ctx.c1:
                reqs.append((ann, "announce", key))
            if ws + WINDOW_NS < ctx.c1:
                for t in self.poll_times(ws, closed):
                    if ctx.c0 <= t < ctx.c1:
                        reqs.append((t + SPECS[asset].index * 5 * NS_PER_MS, "poll", key))
        reqs.sort(key=lambda r: (r[0], r[2][0], SPECS[r[2][1]].index))
        times, texts, requests = [], [], []
        for t, kind, key in reqs:
            if not ctx.start_ns <= t < ctx.end_ns:
                continue
            ws, asset = key
            ids = market_ids(self.seed, asset, ws)
            closed = self.schedule[key][2]
            if kind == "announce":
                body = gamma_market(
                    ids,
                    self.cfg,
                    self.sources,
                    self.seed,
                    now_ns=t,
                    tick=0.01,
                    bid_ask=(0.49, 0.51),
                    last_trade=0.5,
                    volume=0.0,
                )
            else:
                bb, ba, last, tick, volume = self.ended.get(key, (0.49, 0.51, 0.5, 0.01, 0.0))
                is_closed = t >= closed
                outcome = None
                if is_closed:
                    i = SPECS[asset].index
                    outcome = resolve(
                        settle_e18(self.sk, i, ws), settle_e18(self.sk, i, ws + WINDOW_NS)
                    )
                body = gamma_market(
                    ids,
                    self.cfg,
                    self.sources,
                    self.seed,
                    now_ns=t,
                    tick=tick,
                    bid_ask=(bb, ba),
                    last_trade=last,
                    volume=volume,
                    closed_ns=closed if is_closed else None,
                    outcome=outcome,
                )
            times.append(t)
            texts.append(json.dumps([body], separators=(",", ":")))
            requests.append({"slug": ids.slug})
        vt = np.asarray(times, dtype=np.int64)
        return Batch(
            CH_POLYMARKET_GAMMA, RANK_GAMMA, vt, self.sk.recv_ns(LAT_REST, vt), texts, requests
        )
