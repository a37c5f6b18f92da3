"""Polymarket source adapters (I/O): discovery, the CLOB market channel, resolutions, RTDS.

:class:`PolymarketAdapter` runs three loops around one CLOB market-channel connection:

- **discovery**: for every asset and every window starting from the current one up to
  ``discovery_lead_s`` ahead, look the slug ``{asset}-updown-15m-{start_s}`` up on Gamma
  (``GET /markets?slug=``) until it is listed, and record the response;
- **subscription**: keep the connection subscribed to the Up and Down tokens of every window
  from ``subscribe_lead_s`` before it opens until it closes, with dynamic
  ``{"operation": "subscribe"|"unsubscribe"}`` messages, so the next window's opening book
  is on the wire before it opens; every (re)connect subscribes the whole set afresh, which
  makes the server send a fresh ``book`` per token: books are re-synchronised after a gap
  from a snapshot, never patched across it;
- **resolution**: from ``resolution_delay_s`` after a window closes, poll Gamma every
  ``resolution_poll_s`` until it is ``closed`` with decided ``outcomePrices`` (record that
  response), falling back to CLOB ``GET /markets/{condition_id}`` (``tokens[].winner``);
  a window still unresolved after ``resolution_give_up_s`` gets a ``resolution_missing``
  status row.

:class:`ReferenceAdapter` records the settlement reference feed from RTDS (Chainlink price,
or the 60 s / 30 s TWAP topics), with a text ``PING`` every 5 s; PolyBolt, which needs
credentials, is :mod:`polyrl.sources.polymarket.polybolt`.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection

from polyrl.errors import ParseError
from polyrl.events import (
    CH_POLYMARKET_CLOB_MARKET,
    CH_POLYMARKET_GAMMA,
    CH_POLYMARKET_WS,
    CH_RTDS_WS,
    NS_PER_S,
    WINDOW_NS,
    Event,
    Frame,
    window_start_ns,
)
from polyrl.sources.config import SourcesConfig
from polyrl.sources.http import get_with_retry
from polyrl.sources.parse import status_frame
from polyrl.sources.polymarket.clob_rest import parse_clob_market
from polyrl.sources.polymarket.gamma import parse_gamma
from polyrl.sources.sink import FrameSink
from polyrl.sources.ws import WsConnection

DISCOVERY_POLL_S = 30.0
"""Seconds between discovery rounds (each looks up only windows not yet listed)."""
SUBSCRIPTION_TICK_S = 1.0
"""Seconds between checks of which tokens should be subscribed."""
RESOLUTION_GIVE_UP_S = 6 * 3600.0
"""Seconds after a window's end after which an unresolved window is reported missing."""
CLOB_FALLBACK_AFTER = 4
"""Gamma polls without an outcome before the CLOB market endpoint is asked as well."""


@dataclass(slots=True)
class KnownMarket:
    """A discovered window market and where its resolution polling stands."""

    slug: str
    asset: str
    condition_id: str
    up_token: str
    down_token: str
    window_start_ns: int
    window_end_ns: int
    polls: int = 0
    next_poll_ns: int = 0

    @classmethod
    def of(cls, ev: Event) -> KnownMarket:
        f = ev.fields
        return cls(
            slug=f["slug"],
            asset=ev.asset or "",
            condition_id=ev.key,
            up_token=f["up_token"],
            down_token=f["down_token"],
            window_start_ns=f["window_start_ns"],
            window_end_ns=f["window_end_ns"],
        )


def slug_for(asset: str, window_start: int) -> str:
    """The 15-minute Up/Down slug of ``asset``'s window starting at ``window_start`` (ns)."""
    return f"{asset}-updown-15m-{window_start // NS_PER_S}"


class PolymarketAdapter:
    """Discovery, CLOB market channel and resolution polling for the given assets."""

    def __init__(self, assets: Sequence[str], cfg: SourcesConfig, *, seed: int = 2) -> None:
        self.name = CH_POLYMARKET_WS
        self.assets = list(assets)
        self.cfg = cfg
        self.rng = random.Random(seed)
        self.markets: dict[str, KnownMarket] = {}
        self.subscribed: set[str] = set()
        self.conn: WsConnection | None = None
        self._first_market = asyncio.Event()

    # -- which tokens ----------------------------------------------------------------------

    def desired_tokens(self, now_ns: int) -> set[str]:
        """Tokens of windows from ``subscribe_lead_s`` before their start until their end."""
        lead = int(self.cfg.subscribe_lead_s * NS_PER_S)
        out: set[str] = set()
        for m in self.markets.values():
            if m.window_start_ns - lead <= now_ns < m.window_end_ns:
                out.add(m.up_token)
                out.add(m.down_token)
        return out

    def _slugs(self, tokens: set[str]) -> str:
        names = sorted(
            m.slug for m in self.markets.values() if m.up_token in tokens or m.down_token in tokens
        )
        return ",".join(names)

    # -- running -----------------------------------------------------------------------------

    async def run(self, sink: FrameSink) -> None:
        self.sink = sink
        self.conn = WsConnection(
            channel=CH_POLYMARKET_WS,
            url=lambda: self.cfg.polymarket_clob_ws,
            sink=sink,
            config=self.cfg,
            on_open=self._on_open,
            text_ping_s=self.cfg.ws_ping_s,
            rng=self.rng,
        )
        tasks = [
            asyncio.create_task(self._discover()),
            asyncio.create_task(self._resolve()),
            asyncio.create_task(self._subscriptions()),
        ]
        try:
            await self._first_market.wait()
            await self.conn.run()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _on_open(self, ws: ClientConnection) -> None:
        tokens = self.desired_tokens(self.sink.clock.now_ns())
        self.subscribed = set(tokens)
        await ws.send(
            json.dumps(
                {"assets_ids": sorted(tokens), "type": "market", "custom_feature_enabled": True}
            )
        )
        self._status("subscribe", f"{len(tokens)} tokens on connect: {self._slugs(tokens)}")

    def _status(self, kind: str, message: str) -> None:
        self.sink.emit(
            status_frame(kind, self.sink.clock.now_ns(), channel=CH_POLYMARKET_WS, message=message)
        )

    async def _subscriptions(self) -> None:
        while True:
            await self.sink.clock.sleep(SUBSCRIPTION_TICK_S)
            conn = self.conn
            if conn is None or conn.ws is None:
                continue
            want = self.desired_tokens(self.sink.clock.now_ns())
            add, drop = want - self.subscribed, self.subscribed - want
            for op, tokens in (("subscribe", add), ("unsubscribe", drop)):
                if not tokens:
                    continue
                msg = {
                    "assets_ids": sorted(tokens),
                    "operation": op,
                    "custom_feature_enabled": True,
                }
                if await conn.send(json.dumps(msg)):
                    label = self._slugs(tokens)
                    if op == "subscribe":
                        self.subscribed |= tokens
                    else:
                        self.subscribed -= tokens
                    self._status(op, f"{len(tokens)} tokens: {label}")
            # Forget markets long resolved and closed (bounded memory over weeks).
            now = self.sink.clock.now_ns()
            for cid in [
                c
                for c, m in self.markets.items()
                if m.polls < 0 and now > m.window_end_ns + WINDOW_NS
            ]:
                del self.markets[cid]

    async def _discover(self) -> None:
        gamma = self.cfg.polymarket_gamma_rest.rstrip("/")
        known_slugs: dict[str, int] = {}
        while True:
            now = self.sink.clock.now_ns()
            first = window_start_ns(now)
            last = window_start_ns(now + int(self.cfg.discovery_lead_s * NS_PER_S))
            for ws in range(first, last + 1, WINDOW_NS):
                for asset in self.assets:
                    slug = slug_for(asset, ws)
                    if slug in known_slugs:
                        continue
                    url = f"{gamma}/markets?slug={slug}"
                    resp = await get_with_retry(
                        url, self.sink, CH_POLYMARKET_GAMMA, self.cfg, self.rng, tries=3
                    )
                    if resp is None:
                        continue
                    recv = self.sink.clock.now_ns()
                    try:
                        events = parse_gamma(resp.text, recv)
                    except ParseError:
                        continue  # not listed yet (an empty list): ask again next round
                    markets = [e for e in events if e.stream == "polymarket.market"]
                    if not markets:
                        continue
                    self.sink.emit(
                        Frame(
                            channel=CH_POLYMARKET_GAMMA,
                            recv_ns=recv,
                            text=resp.text,
                            request={"slug": slug},
                        )
                    )
                    known_slugs[slug] = ws
                    for ev in markets:
                        m = KnownMarket.of(ev)
                        m.next_poll_ns = m.window_end_ns + int(
                            self.cfg.resolution_delay_s * NS_PER_S
                        )
                        self.markets[m.condition_id] = m
                    self._first_market.set()
            # Forget slugs of windows long past (bounded memory).
            cutoff = window_start_ns(now) - 4 * WINDOW_NS
            known_slugs = {s: w for s, w in known_slugs.items() if w >= cutoff}
            await self.sink.clock.sleep(DISCOVERY_POLL_S)

    async def _resolve(self) -> None:
        gamma = self.cfg.polymarket_gamma_rest.rstrip("/")
        clob = self.cfg.polymarket_clob_rest.rstrip("/")
        while True:
            await self.sink.clock.sleep(min(5.0, self.cfg.resolution_poll_s))
            now = self.sink.clock.now_ns()
            for m in list(self.markets.values()):
                if m.polls < 0 or now < m.next_poll_ns:
                    continue
                m.polls += 1
                m.next_poll_ns = now + int(self.cfg.resolution_poll_s * NS_PER_S)
                if await self._poll_one(
                    f"{gamma}/markets?slug={m.slug}",
                    CH_POLYMARKET_GAMMA,
                    {"slug": m.slug},
                    parse_gamma,
                ):
                    m.polls = -1
                    continue
                if m.polls >= CLOB_FALLBACK_AFTER and await self._poll_one(
                    f"{clob}/markets/{m.condition_id}",
                    CH_POLYMARKET_CLOB_MARKET,
                    {"condition_id": m.condition_id},
                    lambda text, t: parse_clob_market(text, t, tokens={}),
                ):
                    m.polls = -1
                    continue
                if now > m.window_end_ns + int(RESOLUTION_GIVE_UP_S * NS_PER_S):
                    self._status(
                        "resolution_missing", f"{m.slug}: no outcome after {m.polls} polls"
                    )
                    m.polls = -1

    async def _poll_one(self, url: str, channel: str, request: dict[str, str], parse) -> bool:
        resp = await get_with_retry(url, self.sink, channel, self.cfg, self.rng, tries=1)
        if resp is None:
            return False
        recv = self.sink.clock.now_ns()
        try:
            events = parse(resp.text, recv)
        except ParseError:
            return False
        if not any(e.stream == "polymarket.resolution" for e in events):
            return False
        self.sink.emit(Frame(channel=channel, recv_ns=recv, text=resp.text, request=request))
        return True


REFERENCE_TOPICS = {
    "chainlink": "crypto_prices_chainlink",
    "twap60": "crypto_prices_twap_sixty",
    "twap30": "crypto_prices_twap_thirty",
}


RECORDED_TOPICS = tuple(REFERENCE_TOPICS.values())
"""Every RTDS Chainlink topic a market may settle on: all are recorded, whatever
``sources.reference_feed`` says, so each market's own feed (instantaneous before 2026-08-07,
the TWAP its config names after) is in the recording."""


class ReferenceAdapter:
    """The settlement reference feeds on RTDS: every Chainlink topic (:data:`RECORDED_TOPICS`),
    all symbols (parsing keys them by symbol and topic), whatever ``sources.reference_feed``
    says (PolyBolt, RTDS's successor, is recorded beside it by
    :class:`~polyrl.sources.polymarket.polybolt.PolyBoltAdapter` when credentials are given)."""

    def __init__(self, cfg: SourcesConfig, *, seed: int = 3) -> None:
        self.name = CH_RTDS_WS
        self.cfg = cfg
        self.topics = RECORDED_TOPICS
        self.rng = random.Random(seed)

    async def _on_open(self, ws: ClientConnection) -> None:
        # Unfiltered: the documented comma filter has been rejected by the live server. One
        # message per topic, so that a topic the server no longer knows spoils no other.
        for topic in self.topics:
            sub = {"topic": topic, "type": "*", "filters": ""}
            await ws.send(json.dumps({"action": "subscribe", "subscriptions": [sub]}))

    async def run(self, sink: FrameSink) -> None:
        conn = WsConnection(
            channel=CH_RTDS_WS,
            url=lambda: self.cfg.polymarket_rtds_ws,
            sink=sink,
            config=self.cfg,
            on_open=self._on_open,
            text_ping_s=5.0,
            rng=self.rng,
        )
        await conn.run()
