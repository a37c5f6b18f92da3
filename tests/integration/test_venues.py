"""Loopback venue servers (polyrl.sim.serve): protocols, REST, faults, sent logs, replay.

Clients here are written from the venues' documented protocols with the plain ``websockets``
client and urllib, not with polyrl's adapters. Every test runs its own servers on ephemeral
127.0.0.1 ports on an accelerated clock.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from polyrl.clock import LiveClock
from polyrl.events import NS_PER_MS, NS_PER_S, WINDOW_NS, iso_to_ns
from polyrl.recording.reader import RecordingReader
from polyrl.sections import Config
from polyrl.sim.config import SimConfig
from polyrl.sim.frames import Simulation
from polyrl.sim.polymarket import market_ids
from polyrl.sim.record import simulate_to_recording
from polyrl.sim.serve import (
    FaultSpec,
    RecordingContent,
    ServeConfig,
    ServersThread,
    SimContent,
    VenueServers,
)
from polyrl.sim.serve.rtds import filter_admits
from polyrl.sources.parse import Parser
from polyrl.sources.polymarket.book import TokenBook
from polyrl.sources.polymarket.clob_rest import parse_clob_book, parse_clob_market
from polyrl.sources.polymarket.clob_ws import parse_clob_ws
from polyrl.sources.polymarket.gamma import parse_gamma

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
T0 = iso_to_ns("2024-06-01T00:00")
SEED = 5
SEC = NS_PER_S


def content(
    minutes: int = 30,
    *,
    assets: tuple[str, ...] = ("btc",),
    start_ns: int = T0,
    **sim: Any,
) -> SimContent:
    cfg = Config(assets=assets, sim=SimConfig(**sim))
    return SimContent(cfg, start_ns=start_ns, end_ns=start_ns + minutes * 60 * SEC, seed=SEED)


def connect(url: str, **kw: Any) -> Any:
    """A websockets client that never stops reading: tests inspect its queue at leisure, and a
    client that stops reading would stop answering pings (and be cut, as on the venue)."""
    return ws_connect(url, max_queue=None, **kw)


def run(main: Callable[[], Awaitable[None]], timeout_s: float = 40.0) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(main(), timeout_s)

    asyncio.run(bounded())


async def read_for(ws: ClientConnection, seconds: float, at_least: int = 0) -> list[str]:
    """Every message received within ``seconds`` real seconds, reading on (up to 15 s) until
    there are ``at_least`` (a loaded machine may start the feed late)."""
    out: list[str] = []
    start = time.monotonic()
    end = start + seconds
    while True:
        now = time.monotonic()
        left = end - now if len(out) >= at_least else start + 15 - now
        if left <= 0:
            break
        try:
            msg = await asyncio.wait_for(ws.recv(), left)
        except TimeoutError:
            break
        out.append(msg if isinstance(msg, str) else msg.decode())
    return out


async def read_until(
    ws: ClientConnection, pred: Callable[[str], bool], timeout_s: float = 10.0
) -> list[str]:
    """Messages up to and including the first one matching ``pred``."""
    out: list[str] = []
    async with asyncio.timeout(timeout_s):
        while True:
            msg = await ws.recv()
            assert isinstance(msg, str)
            out.append(msg)
            if pred(msg):
                return out


async def read_to_close(ws: ClientConnection, timeout_s: float = 10.0) -> list[str]:
    """Every message until the connection ends."""
    out: list[str] = []
    async with asyncio.timeout(timeout_s):
        try:
            while True:
                msg = await ws.recv()
                out.append(msg if isinstance(msg, str) else msg.decode())
        except ConnectionClosed:
            return out


async def get(url: str) -> tuple[int, str, dict[str, str]]:
    """GET with urllib on a thread: (status, body, headers)."""

    def fetch() -> tuple[int, str, dict[str, str]]:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), dict(e.headers)

    return await asyncio.to_thread(fetch)


async def sleep_venue(clock: LiveClock, seconds: float) -> None:
    await asyncio.sleep(seconds / clock.speed)


def stream_name(text: str) -> str:
    return json.loads(text)["stream"]


# ---------------------------------------------------------------------------------------------
# Binance


def test_binance_spot_combined_url_subscribe_and_raw_streams() -> None:
    async def main() -> None:
        clock = LiveClock(speed=20, start_ns=T0)
        async with VenueServers(content(), clock=clock) as v:
            base = v.sources_config(Config().sources).binance_spot_ws
            async with connect(f"{base}/stream?streams=btcusdt@aggTrade") as ws:
                first = await read_for(ws, 0.3, at_least=1)
                assert first and {stream_name(m) for m in first} == {"btcusdt@aggTrade"}
                assert all(json.loads(m)["data"]["e"] == "aggTrade" for m in first)
                await ws.send(
                    json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 1})
                )
                got = await read_until(ws, lambda m: '"id":1' in m)
                assert got[-1] == '{"result":null,"id":1}'
                more = await read_for(ws, 0.3)
                assert {stream_name(m) for m in more} == {"btcusdt@aggTrade", "btcusdt@bookTicker"}
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
                got = await read_until(ws, lambda m: '"id":2' in m)
                assert json.loads(got[-1]) == {
                    "result": ["btcusdt@aggTrade", "btcusdt@bookTicker"],
                    "id": 2,
                }
                await ws.send(
                    json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 3})
                )
                await read_until(ws, lambda m: '"id":3' in m)
                after = await read_for(ws, 0.3)
                assert after and {stream_name(m) for m in after} == {"btcusdt@bookTicker"}
                # Errors use the documented codes.
                await ws.send("{not json")
                got = await read_until(ws, lambda m: '"code"' in m)
                assert json.loads(got[-1])["code"] == 3
                await ws.send(
                    json.dumps({"method": "SET_PROPERTY", "params": ["combined", "x"], "id": 4})
                )
                got = await read_until(ws, lambda m: '"code"' in m)
                assert json.loads(got[-1]) == {
                    "code": 1,
                    "msg": "Invalid value type: expected Boolean",
                }
                # Turning the combined property off sends raw payloads.
                await ws.send(
                    json.dumps({"method": "SET_PROPERTY", "params": ["combined", False], "id": 5})
                )
                await read_until(ws, lambda m: '"id":5' in m)
                raw = await read_for(ws, 0.3, at_least=1)
                assert raw and all("stream" not in json.loads(m) for m in raw)
                sent = v.spot.logs[0]
                assert [f.kind for f in sent.frames].count("reply") == 6
            async with connect(f"{base}/ws/btcusdt@aggTrade") as ws:
                raw = await read_for(ws, 0.3, at_least=1)
                assert raw and all(json.loads(m)["e"] == "aggTrade" for m in raw)
                # What arrived is what the log says was sent (more may be in flight).
                assert raw == v.spot.logs[1].delivered()[: len(raw)]
            with pytest.raises(InvalidStatus) as e:
                async with connect(f"{base}/nowhere"):
                    pass
            assert e.value.response.status_code == 404

    run(main)


def test_binance_futures_routes_public_market_and_silent_legacy() -> None:
    async def main() -> None:
        clock = LiveClock(speed=50, start_ns=T0)
        async with VenueServers(content(), clock=clock) as v:
            root = v.sources_config(Config().sources).binance_futures_ws
            market = await connect(
                f"{root}/market/stream?streams=btcusdt@aggTrade/btcusdt@markPrice@1s"
            )
            public = await connect(
                f"{root}/public/stream?streams=btcusdt@aggTrade/btcusdt@bookTicker"
            )
            legacy = await connect(f"{root}/stream?streams=btcusdt@markPrice@1s/btcusdt@bookTicker")
            await asyncio.sleep(0.6)  # 30 venue seconds
            ticker = (
                '{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":1,"s":"BTCUSDT",'
                '"b":"1.0","B":"1","a":"1.1","A":"1","T":1,"E":1}}'
            )
            v.futures.publish(ticker)  # the simulator has no futures book streams: inject one
            got_market = await read_for(market, 0.3, at_least=1)
            got_public = await read_for(public, 0.3)
            got_legacy = await read_for(legacy, 0.3)
            kinds = {stream_name(m) for m in got_market}
            assert kinds == {"btcusdt@aggTrade", "btcusdt@markPrice@1s"}
            assert sum(1 for m in got_market if "markPrice" in m) >= 20  # ~1 per venue second
            # /market streams asked on /public, and on the legacy route, never deliver...
            assert got_public == [ticker]
            assert got_legacy == [ticker]
            # ...but are accepted and listed.
            await public.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 9}))
            got = await read_until(public, lambda m: '"id":9' in m)
            assert json.loads(got[-1])["result"] == ["btcusdt@aggTrade", "btcusdt@bookTicker"]
            # Futures ids are unsigned integers.
            await market.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": "abc"}))
            got = await read_until(market, lambda m: '"code"' in m)
            assert json.loads(got[-1])["code"] == 2
            for ws in (market, public, legacy):
                await ws.close()

    run(main)


async def raw_ws_client(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A bare WebSocket client that never answers pings."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def read_ws_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    return b0 & 0x0F, await reader.readexactly(n)


def test_binance_pings_and_drops_a_client_that_does_not_pong() -> None:
    async def main() -> None:
        clock = LiveClock(speed=100, start_ns=T0)  # ping every 0.2 s, pong timeout 0.6 s
        cfg = ServeConfig(min_timeout_real_s=1.0)  # ...but never under 1 s real
        async with VenueServers(content(), clock=clock, config=cfg) as v:
            good = await connect(f"ws://127.0.0.1:{v.spot.port}/stream?streams=btcusdt@aggTrade")
            reader, writer = await raw_ws_client(v.spot.port, "/ws/btcusdt@aggTrade")
            opcodes: list[int] = []
            t0 = time.monotonic()
            with pytest.raises(asyncio.IncompleteReadError):
                while time.monotonic() - t0 < 10:
                    op, _ = await read_ws_frame(reader)
                    opcodes.append(op)
            elapsed = time.monotonic() - t0
            writer.close()
            assert opcodes.count(0x9) >= 2  # pinged, never answered
            assert 0x8 not in opcodes  # cut without a close frame
            assert 0.9 < elapsed < 4.0
            deaf = v.spot.logs[1]
            assert deaf.close_reason == "ping_timeout" and deaf.pings >= 2
            # The websockets client answers pings and stays connected.
            assert v.spot.logs[0].open and v.spot.logs[0].pings >= 2
            assert await read_for(good, 0.1, at_least=1)
            await good.close()

    run(main)


# ---------------------------------------------------------------------------------------------
# Polymarket CLOB


def sim_books_at(c: SimContent, t_ns: int, tokens: list[str]) -> dict[str, TokenBook]:
    """Each token's book after every simulated CLOB frame received by ``t_ns``."""
    sim = Simulation(
        c.sim.cfg,
        c.sim.sources,
        assets=c.sim.assets,
        start_ns=c.start_ns,
        end_ns=c.end_ns,
        seed=SEED,
    )
    parser = Parser()
    books = {t: TokenBook(t) for t in tokens}
    for f in sim.frames():
        if f.recv_ns > t_ns:
            break
        if f.channel != "polymarket.clob.ws":
            continue
        for ev in parser.parse(f):
            if ev.key in books:
                books[ev.key].apply(ev)
    return books


def test_clob_initial_dump_is_the_sim_book_and_subscriptions_filter() -> None:
    c = content(20)
    ids = market_ids(SEED, "btc", T0)
    up, down = ids.up_token, ids.down_token

    async def main() -> None:
        clock = LiveClock(speed=20, start_ns=T0 + 90 * SEC)
        async with VenueServers(c, clock=clock) as v:
            url = v.sources_config(Config().sources).polymarket_clob_ws
            async with connect(url) as ws:
                await ws.send(
                    json.dumps(
                        {"assets_ids": [up, down], "type": "market", "custom_feature_enabled": True}
                    )
                )
                dump_text = await ws.recv()
                assert isinstance(dump_text, str)
                dump = parse_clob_ws(dump_text, 0, tokens={})
                assert [e.key for e in dump] == [up, down]
                assert all(e.stream == "polymarket.book" for e in dump)
                # Wire order as the venue sends it: bids ascending, asks descending.
                wire = json.loads(dump_text)
                for b in wire:
                    bids = [float(x["price"]) for x in b["bids"]]
                    asks = [float(x["price"]) for x in b["asks"]]
                    assert bids == sorted(bids) and asks == sorted(asks, reverse=True)
                snap = v.clob.logs[0].frames[0]
                assert snap.kind == "snapshot" and snap.text == dump_text
                expected = sim_books_at(c, snap.due_ns, [up, down])
                for ev in dump:
                    got = TokenBook(ev.key)
                    got.apply(ev)
                    assert got.bids() == expected[ev.key].bids()
                    assert got.asks() == expected[ev.key].asks()
                # Both tokens' frames arrive; then unsubscribe Down and only Up remains.
                both = await read_for(ws, 0.5, at_least=2)
                assert any(down in m for m in both) and any(up in m for m in both)
                await ws.send(
                    json.dumps(
                        {
                            "assets_ids": [down],
                            "operation": "unsubscribe",
                            "custom_feature_enabled": True,
                        }
                    )
                )
                await ws.send("PING")
                await read_until(ws, lambda m: m == "PONG")
                only_up = await read_for(ws, 1.0, at_least=1)
                assert only_up and all(down not in m for m in only_up)
                pcs = [
                    e
                    for m in only_up
                    for e in parse_clob_ws(m, 0, tokens={})
                    if e.stream == "polymarket.price_change"
                ]
                assert pcs and {e.key for e in pcs} == {up}
                # Subscribing again sends the new token's current book first.
                await ws.send(
                    json.dumps(
                        {
                            "assets_ids": [down],
                            "operation": "subscribe",
                            "custom_feature_enabled": True,
                        }
                    )
                )
                await read_until(ws, lambda m: m.startswith("[") and f'"asset_id":"{down}"' in m)
                snaps = [f for f in v.clob.logs[0].frames if f.kind == "snapshot"]
                assert len(snaps) == 2 and [
                    e.key for e in parse_clob_ws(snaps[1].text, 0, tokens={})
                ] == [down]
                # An injected array frame is filtered element by element.
                await ws.send(json.dumps({"assets_ids": [down], "operation": "unsubscribe"}))
                await ws.send("PING")
                await read_until(ws, lambda m: m == "PONG")
                other = (
                    '{"event_type":"tick_size_change","asset_id":"999","market":"0x1",'
                    '"old_tick_size":"0.01","new_tick_size":"0.001","timestamp":"1"}'
                )
                mine = other.replace('"999"', f'"{up}"')
                v.clob.publish(f"[{other},{mine}]")
                await read_until(ws, lambda m: m == f"[{mine}]")
            async with connect(url) as quiet:
                await quiet.send(
                    json.dumps({"assets_ids": [up], "type": "market", "initial_dump": False})
                )
                await quiet.send("PING")
                await read_until(quiet, lambda m: m == "PONG")
                assert all(f.kind != "snapshot" for f in v.clob.logs[1].frames)

    run(main)


def test_clob_and_rtds_close_silent_clients() -> None:
    async def main() -> None:
        clock = LiveClock(speed=20, start_ns=T0)
        cfg = ServeConfig(clob_idle_s=10.0, rtds_idle_s=10.0, min_timeout_real_s=0.3)
        async with VenueServers(content(), clock=clock, config=cfg) as v:
            src = v.sources_config(Config().sources)
            silent = await connect(src.polymarket_clob_ws)
            chatty = await connect(src.polymarket_clob_ws)
            rtds_silent = await connect(src.polymarket_rtds_ws)
            for _ in range(6):  # PING every 5 venue seconds
                await chatty.send("PING")
                await sleep_venue(clock, 5)
            await read_to_close(silent)
            await read_to_close(rtds_silent)
            assert silent.close_code == 1000 and rtds_silent.close_code == 1000
            assert v.clob.logs[0].close_reason == "idle_timeout"
            assert v.rtds.logs[0].close_reason == "idle_timeout"
            assert v.clob.logs[1].open
            assert (await read_for(chatty, 0.2)).count("PONG") >= 1
            await chatty.close()

    run(main)


# ---------------------------------------------------------------------------------------------
# RTDS


def test_rtds_subscribe_filters_backfill_and_pong() -> None:
    assert filter_admits("", "btc/usd")
    assert filter_admits('{"symbol":"btc/usd"}', "BTC/USD")
    assert not filter_admits('{"symbol":"eth/usd"}', "btc/usd")
    assert filter_admits("btcusdt,ethusdt", "ethusdt") and not filter_admits("btcusdt", "solusdt")

    async def main() -> None:
        clock = LiveClock(speed=20, start_ns=T0 + 30 * SEC)
        async with VenueServers(content(assets=("btc", "eth")), clock=clock) as v:
            url = v.sources_config(Config().sources).polymarket_rtds_ws
            async with connect(url) as ws:
                sub = {
                    "topic": "crypto_prices_chainlink",
                    "type": "*",
                    "filters": json.dumps({"symbol": "btc/usd"}),
                }
                await ws.send(json.dumps({"action": "subscribe", "subscriptions": [sub]}))
                first = json.loads(await ws.recv())
                assert first["type"] == "subscribe" and first["payload"]["symbol"] == "btc/usd"
                data = first["payload"]["data"]
                assert 5 <= len(data) <= 10
                assert [d["timestamp"] for d in data] == sorted(d["timestamp"] for d in data)
                updates = await read_for(ws, 0.5, at_least=5)
                assert len(updates) >= 5
                for m in updates:
                    o = json.loads(m)
                    assert o["topic"] == "crypto_prices_chainlink" and o["type"] == "update"
                    assert o["payload"]["symbol"] == "btc/usd"
                # Unsubscribe: nothing after the PONG that follows it.
                await ws.send(json.dumps({"action": "unsubscribe", "subscriptions": [sub]}))
                await ws.send("PING")
                await read_until(ws, lambda m: m == "PONG")
                assert await read_for(ws, 0.4) == []
                # Another topic is not sent.
                await ws.send(
                    json.dumps(
                        {
                            "action": "subscribe",
                            "subscriptions": [
                                {"topic": "crypto_prices", "type": "update", "filters": "btcusdt"}
                            ],
                        }
                    )
                )
                assert await read_for(ws, 0.4) == []
            assert v.rtds.logs[0].frames[0].kind == "snapshot"

    run(main)


# ---------------------------------------------------------------------------------------------
# REST


def test_rest_endpoints_follow_time_and_agree_with_the_feed() -> None:
    c = content(45, listing_lead_s=600.0)
    w1, w2, w3 = T0, T0 + WINDOW_NS, T0 + 2 * WINDOW_NS
    ids1, ids2 = market_ids(SEED, "btc", w1), market_ids(SEED, "btc", w2)
    truth = {o.slug: o for o in c.sim.window_outcomes()}[ids1.slug]

    async def main() -> None:
        now0 = T0 + 16 * 60 * SEC + 10 * SEC  # window 1 closed (closedTime <= end + 60 s)
        clock = LiveClock(speed=5, start_ns=now0)
        async with VenueServers(c, clock=clock) as v:
            src = v.sources_config(Config().sources)
            spot, fut = src.binance_spot_rest, src.binance_futures_rest
            gamma, clob = src.polymarket_gamma_rest, src.polymarket_clob_rest
            # Klines: 12-field rows, consecutive minutes, closed before now, oldest first.
            st, body, _ = await get(f"{spot}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=5")
            rows = json.loads(body)
            assert st == 200 and len(rows) == 5 and all(len(r) == 12 for r in rows)
            opens = [r[0] for r in rows]
            assert all(b - a == 60_000 for a, b in zip(opens, opens[1:], strict=False))
            now_ms = clock.now_ns() // NS_PER_MS
            assert rows[-1][6] < now_ms and rows[-1][6] + 1 + 60_000 > now_ms - 5_000
            end = opens[2]
            _, body, _ = await get(
                f"{spot}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=2&endTime={end}"
            )
            assert json.loads(body) == rows[1:3]  # a bar reads the same in every response
            _, body, _ = await get(
                f"{spot}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=2&startTime={opens[1] - 1}"
            )
            assert json.loads(body) == rows[1:3]
            st, body, _ = await get(f"{spot}/api/v3/klines?symbol=DOGEUSDT&interval=1m")
            assert st == 400 and json.loads(body)["code"] == -1121
            st, body, _ = await get(f"{spot}/api/v3/klines?symbol=BTCUSDT&interval=5m")
            assert st == 400 and json.loads(body)["code"] == -1120
            # Open interest.
            st, body, _ = await get(f"{fut}/fapi/v1/openInterest?symbol=BTCUSDT")
            oi = json.loads(body)
            assert st == 200 and oi["symbol"] == "BTCUSDT" and float(oi["openInterest"]) > 0
            assert abs(oi["time"] - clock.now_ns() // NS_PER_MS) < 10_000
            # Gamma: window 1 closed and decided like the reference feed says.
            st, body, _ = await get(f"{gamma}/markets?slug={ids1.slug}")
            (m1,) = json.loads(body)
            assert st == 200 and m1["closed"] is True and m1["conditionId"] == ids1.condition_id
            assert json.loads(m1["clobTokenIds"]) == [ids1.up_token, ids1.down_token]
            events = parse_gamma(body, 0)
            assert [e.stream for e in events] == ["polymarket.market", "polymarket.resolution"]
            assert events[1].fields["outcome"] == truth.outcome
            # Its best bid/ask are the final book the CLOB feed sent.
            book = v.books.book(ids1.up_token)
            assert book is not None and book.touch() == (m1["bestBid"], m1["bestAsk"])
            # Window 2 is open, listed, not closed; window 3 is not listed yet.
            st, body, _ = await get(f"{gamma}/markets/slug/{ids2.slug}")
            m2 = json.loads(body)
            assert st == 200 and m2["closed"] is False and m2["acceptingOrders"] is True
            _, body, _ = await get(f"{gamma}/markets?slug=btc-updown-15m-{w3 // SEC}")
            assert json.loads(body) == []
            st, _, _ = await get(f"{gamma}/markets/slug/btc-updown-15m-{w3 // SEC}")
            assert st == 404
            _, body, _ = await get(f"{gamma}/events?slug={ids1.slug}")
            (ev,) = json.loads(body)
            assert ev["slug"] == ids1.slug and ev["markets"][0]["conditionId"] == ids1.condition_id
            st, body, _ = await get(f"{gamma}/events/slug/{ids2.slug}")
            assert st == 200 and json.loads(body)["markets"][0]["slug"] == ids2.slug
            # CLOB market: the same outcome through tokens[].winner.
            _, body, _ = await get(f"{clob}/markets/{ids1.condition_id}")
            (res,) = parse_clob_market(body, 0, tokens={})
            winner = ids1.up_token if truth.outcome == "Up" else ids1.down_token
            assert res.fields["winning_token"] == winner
            _, body, _ = await get(f"{clob}/markets/{ids2.condition_id}")
            assert parse_clob_market(body, 0, tokens={}) == []
            assert not any(t["winner"] for t in json.loads(body)["tokens"])
            st, _, _ = await get(f"{clob}/markets/0x{'0' * 64}")
            assert st == 404
            # CLOB book of an open window's token, as the feed has it now.
            st, body, _ = await get(f"{clob}/book?token_id={ids2.up_token}")
            assert st == 200
            (b,) = parse_clob_book(body, 0, tokens={})
            assert b.fields["bid_px"][0] < b.fields["ask_px"][0]
            st, _, _ = await get(f"{clob}/book?token_id=123")
            assert st == 404
            for url in (f"{clob}/time", f"{spot}/api/v3/time", f"{fut}/fapi/v1/time"):
                st, body, _ = await get(url)
                t = json.loads(body)
                t_s = t if isinstance(t, int) else t["serverTime"] // 1000
                assert st == 200 and abs(t_s - clock.now_ns() // SEC) < 60
            # Paths resolved against the host (no prefix) reach the same endpoints.
            host = spot.rsplit("/", 1)[0]
            st, body, _ = await get(f"{host}/markets?slug={ids1.slug}")
            assert st == 200 and json.loads(body)[0]["slug"] == ids1.slug
            st, _, _ = await get(f"{host}/fapi/v1/openInterest?symbol=BTCUSDT")
            assert st == 200
            assert all(not x.fault for x in v.http.log) and len(v.http.log) >= 18

    run(main)


# ---------------------------------------------------------------------------------------------
# Faults and the sent log


def test_drop_is_abrupt_and_the_sent_log_is_exact() -> None:
    async def main() -> None:
        clock = LiveClock(speed=50, start_ns=T0)
        async with VenueServers(content(), clock=clock) as v:
            base = f"ws://127.0.0.1:{v.spot.port}"
            ws = await connect(
                f"{base}/stream?streams=btcusdt@aggTrade/btcusdt@bookTicker/btcusdt@depth5@100ms"
            )
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
            received = await read_for(ws, 0.5, at_least=200)
            assert v.spot.drop() == 1
            received += await read_to_close(ws)
            assert isinstance(ws.close_code, int) and ws.close_code == 1006  # no close frame
            with pytest.raises(ConnectionClosedError) as e:
                await ws.recv()
            assert e.value.rcvd is None
            log = v.spot.logs[0]
            assert log.close_reason == "fault_drop" and log.closed_ns is not None
            assert len(received) > 500
            # Every frame sent while connected was received exactly once, in order.
            assert received == log.delivered()
            assert [f.kind for f in log.frames if f.kind == "reply"] == ["reply"]
            assert all(f.due_ns <= f.t_ns for f in log.frames)
            # A new connection is served normally.
            again = await connect(f"{base}/ws/btcusdt@aggTrade")
            assert await read_for(again, 0.2, at_least=1)
            await again.close()

    run(main)


def test_stall_sends_nothing_and_ignores_pings() -> None:
    async def main() -> None:
        clock = LiveClock(speed=50, start_ns=T0)
        async with VenueServers(content(), clock=clock) as v:
            ws = await connect(f"ws://127.0.0.1:{v.spot.port}/stream?streams=btcusdt@bookTicker")
            received = await read_for(ws, 0.2, at_least=1)
            loop = asyncio.get_running_loop()
            t_stall, v_stall = loop.time(), clock.now_ns()
            v.spot.stall(30.0)  # 0.6 s real
            pong = await ws.ping()
            pong_at: list[float] = []
            pong.add_done_callback(lambda _: pong_at.append(loop.time()))
            times: list[float] = []
            end = loop.time() + 1.5
            while loop.time() < end:
                try:
                    received.append(await asyncio.wait_for(ws.recv(), end - loop.time()))
                except TimeoutError:
                    break
                times.append(loop.time())
            await asyncio.wait_for(pong, 2.0)
            assert pong_at[0] - t_stall >= 0.5  # the ping was not read during the stall
            log = v.spot.logs[0]
            # What this client received had nothing written for the stall (server write times:
            # arrival times would shrink the gap whenever a busy client reads a backlog late)...
            sent = [f.t_ns for f in log.frames if f.delivered][: len(received)]
            gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
            assert max(gaps) >= 29 * SEC
            assert sum(1 for t in times if t > t_stall + 0.6) > 100  # ...then frames again
            sent_during = [f for f in log.frames if v_stall < f.t_ns < v_stall + 29 * SEC]
            assert sent_during == [] and log.stalled_frames > 100 and log.open
            assert received == log.delivered()[: len(received)]
            await ws.close()

    run(main)


def test_malformed_frames_next_n_and_rate() -> None:
    async def main() -> None:
        clock = LiveClock(speed=20, start_ns=T0)
        async with VenueServers(content(), clock=clock) as v:
            ws = await connect(f"ws://127.0.0.1:{v.spot.port}/stream?streams=btcusdt@aggTrade")
            first = await read_for(ws, 0.2, at_least=1)
            n0 = len(v.spot.logs[0].frames)
            v.spot.malformed(3)
            got = await read_for(ws, 0.3, at_least=4)
            log = v.spot.logs[0]
            sent = log.frames[n0:]
            assert [f.corrupted for f in sent[:4]] == [True, True, True, False]
            bad = [m for m in got if not _is_json(m)]
            assert bad == [f.text for f in sent[:3]]
            assert all(_is_json(m) for m in got if m not in bad)
            # A rate for a while: everything written during it is bad, then good again.
            n1, t1 = len(log.frames), clock.now_ns()
            v.spot.malformed(0, rate=1.0, seconds=10.0)
            during = await read_for(ws, 0.8)
            window = [f for f in log.frames[n1:] if f.t_ns < t1 + 10 * SEC]
            later = [f for f in log.frames[n1:] if f.t_ns >= t1 + 11 * SEC]
            assert window and all(f.corrupted for f in window)
            assert later and not any(f.corrupted for f in later)
            assert sum(not _is_json(m) for m in during) >= len(window) - 5
            received = first + got + during
            assert received == log.delivered()[: len(received)]
            await ws.close()

    run(main)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_refuse_new_connections_503_or_closed_socket() -> None:
    async def main() -> None:
        clock = LiveClock(speed=20, start_ns=T0)
        async with VenueServers(content(), clock=clock) as v:
            url = v.sources_config(Config().sources).polymarket_clob_ws
            v.clob.refuse(10.0)  # 0.5 s real
            with pytest.raises(InvalidStatus) as e:
                await connect(url, open_timeout=5)
            assert e.value.response.status_code == 503
            await sleep_venue(clock, 11)
            async with connect(url) as ok:
                await ok.send("PING")
                assert await ok.recv() == "PONG"
            v.clob.refuse(10.0, mode="close")
            with pytest.raises(Exception) as e2:  # noqa: PT011 - any handshake failure
                await connect(url, open_timeout=5)
            assert not isinstance(e2.value, InvalidStatus)  # no HTTP answer at all
            assert [r.mode for r in v.clob.refused] == ["http503", "close"]
            await sleep_venue(clock, 11)
            async with connect(url) as ok:
                await ok.send("PING")
                assert await ok.recv() == "PONG"

    run(main)


def test_http_errors_with_retry_after_for_n_requests_or_seconds() -> None:
    async def main() -> None:
        clock = LiveClock(speed=20, start_ns=T0 + 60 * SEC)
        async with VenueServers(content(), clock=clock) as v:
            src = v.sources_config(Config().sources)
            oi = f"{src.binance_futures_rest}/fapi/v1/openInterest?symbol=BTCUSDT"
            gamma = f"{src.polymarket_gamma_rest}/markets?slug=btc-updown-15m-{T0 // SEC}"
            v.http.fail(429, count=2, retry_after_s=3, path_prefix="/binance-futures")
            for _ in range(2):
                st, body, headers = await get(oi)
                assert st == 429 and headers["Retry-After"] == "3"
                assert json.loads(body)["code"] == -1003
                st, _, _ = await get(gamma)  # other venues unaffected
                assert st == 200
            assert (await get(oi))[0] == 200
            v.http.fail(503, seconds=10.0)  # 0.5 s real, every path
            assert (await get(oi))[0] == 503
            st, body, _ = await get(gamma)
            assert st == 503 and "error" in json.loads(body)
            await sleep_venue(clock, 11)
            assert (await get(gamma))[0] == 200
            v.http.fail(500, count=1)
            assert (await get(oi))[0] == 500
            assert (await get(oi))[0] == 200
            assert [x.status for x in v.http.log if x.fault] == [429, 429, 503, 503, 500]

    run(main)


def test_scheduled_faults_fire_at_their_venue_time() -> None:
    async def main() -> None:
        start = T0 + 30 * SEC
        clock = LiveClock(speed=20, start_ns=start)
        faults = [
            FaultSpec(at_ns=start + 10 * SEC, target="binance_spot", kind="drop"),
            FaultSpec(
                at_ns=start + 10 * SEC, target="http", kind="http_error", status=500, count=1
            ),
        ]
        async with VenueServers(content(), clock=clock, faults=faults) as v:
            ws = await connect(f"ws://127.0.0.1:{v.spot.port}/ws/btcusdt@aggTrade")
            await read_to_close(ws)
            log = v.spot.logs[0]
            assert log.close_reason == "fault_drop"
            assert start + 10 * SEC <= log.closed_ns < start + 15 * SEC  # type: ignore[operator]
            url = v.sources_config(Config().sources).binance_futures_rest
            assert (await get(f"{url}/fapi/v1/time"))[0] == 500
            assert (await get(f"{url}/fapi/v1/time"))[0] == 200

    run(main)


# ---------------------------------------------------------------------------------------------
# Time, replay, threads, CLI


def test_accelerated_time_frames_never_early() -> None:
    async def main() -> None:
        clock = LiveClock(speed=100, start_ns=T0 + 5 * SEC)
        async with VenueServers(content(), clock=clock) as v:
            ws = await connect(f"ws://127.0.0.1:{v.spot.port}/stream?streams=btcusdt@aggTrade")
            await read_for(ws, 0.2, at_least=1)
            e_ms: list[int] = []
            t_recv: list[int] = []
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                m = await asyncio.wait_for(ws.recv(), 1.0)
                t_recv.append(clock.now_ns())
                e_ms.append(json.loads(m)["data"]["E"])
            # A real second carries about 100 venue seconds of frames; none arrives before
            # its venue time, and the last is not far behind the clock.
            assert (e_ms[-1] - e_ms[0]) / 1000 >= 50
            assert all(t >= e * NS_PER_MS for t, e in zip(t_recv, e_ms, strict=True))
            assert t_recv[-1] - e_ms[-1] * NS_PER_MS < 50 * SEC  # 0.5 s real, even when loaded
            assert v.feed.lag_ns < 2 * SEC
            await ws.close()

    run(main)


def _recorded_raws(root: Path, streams: set[str], origin_ws: bool = False) -> list[str]:
    """Distinct raw texts of ``streams`` in receive order, as the recorder received them."""
    out: list[str] = []
    last: tuple[int, str] | None = None
    for ev in RecordingReader(root, raw=True, columns=["origin"]).events():
        if ev.stream not in streams:
            continue
        if ev.stream == "polymarket.book" and ev.fields.get("origin") != "ws":
            continue
        if (ev.recv_ns, ev.raw) != last:
            out.append(ev.raw)
        last = (ev.recv_ns, ev.raw)
    return out


def test_recording_replay_pushes_raw_frames_back_byte_identical(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    simulate_to_recording(
        root, start_ns=T0, end_ns=T0 + 300 * SEC, seed=SEED, config=Config(assets=("btc",))
    )
    tokens = [
        t
        for ev in RecordingReader(root, streams=["polymarket.market"]).events()
        for t in (ev.fields["up_token"], ev.fields["down_token"])
    ]
    assert tokens

    async def main() -> None:
        clock = LiveClock(speed=100, start_ns=T0 - 150 * SEC)
        async with VenueServers(RecordingContent(root), clock=clock) as v:
            src = v.sources_config(Config().sources)
            spot = await connect(f"{src.binance_spot_ws}/stream?streams=btcusdt@aggTrade")
            fut = await connect(
                f"{src.binance_futures_ws}/market/stream?streams="
                "btcusdt@aggTrade/btcusdt@markPrice@1s/btcusdt@forceOrder"
            )
            clob = await connect(src.polymarket_clob_ws)
            await clob.send(
                json.dumps({"assets_ids": tokens, "type": "market", "custom_feature_enabled": True})
            )
            rtds = await connect(src.polymarket_rtds_ws)
            await rtds.send(
                json.dumps(
                    {
                        "action": "subscribe",
                        "subscriptions": [
                            {"topic": "crypto_prices_chainlink", "type": "*", "filters": ""}
                        ],
                    }
                )
            )
            assert clock.now_ns() < T0  # connected before the first frame is due

            async def keep_pinging() -> None:  # as clients of these sockets must
                while True:
                    await clob.send("PING")
                    await rtds.send("PING")
                    await asyncio.sleep(0.1)

            pinger = asyncio.create_task(keep_pinging())
            tasks = [asyncio.create_task(read_for(ws, 5.0)) for ws in (spot, fut, clob, rtds)]
            got = list(await asyncio.gather(*tasks))
            while not v.feed.exhausted:  # a loaded machine may still be catching up
                await asyncio.sleep(0.05)
            for i, ws in enumerate((spot, fut, clob, rtds)):
                got[i] += await read_for(ws, 0.3)
            got_spot, got_fut, got_clob, got_rtds = got
            pinger.cancel()
            got_clob = [m for m in got_clob if m != "PONG"]
            got_rtds = [m for m in got_rtds if m != "PONG"]
            assert clock.now_ns() > T0 + 302 * SEC
            assert got_spot == _recorded_raws(root, {"binance.spot.trade"})
            assert got_fut == _recorded_raws(
                root,
                {"binance.futures.trade", "binance.futures.mark", "binance.futures.liquidation"},
            )
            pm = {
                "polymarket.book",
                "polymarket.price_change",
                "polymarket.trade",
                "polymarket.best_bid_ask",
                "polymarket.tick_size",
            }
            assert got_clob == _recorded_raws(root, pm)
            assert got_rtds == _recorded_raws(root, {"reference.price"})
            assert len(got_spot) > 1000 and len(got_clob) > 1000 and len(got_rtds) > 200
            # REST answers come from the recorded responses once due.
            st, body, _ = await get(
                f"{src.binance_spot_rest}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=3"
            )
            assert st == 200 and len(json.loads(body)) == 3
            st, body, _ = await get(
                f"{src.polymarket_gamma_rest}/markets?slug=btc-updown-15m-{T0 // SEC}"
            )
            assert st == 200 and json.loads(body)[0]["clobTokenIds"] == json.dumps(tokens[:2])
            for ws in (spot, fut, clob, rtds):
                await ws.close()

    run(main)


def test_servers_thread_for_synchronous_callers() -> None:
    clock = LiveClock(speed=20, start_ns=T0)
    with ServersThread(VenueServers(content(), clock=clock)) as v:
        url = v.sources_config(Config().sources).binance_futures_rest + "/fapi/v1/time"
        with urllib.request.urlopen(url, timeout=5) as r:
            t = json.loads(r.read())["serverTime"]
        assert abs(t - clock.now_ns() // NS_PER_MS) < 60_000
        assert v.http.log and v.http.log[0].status == 200


def test_cli_simulate_serve_writes_config_and_serves(tmp_path: Path) -> None:
    cfg_path = tmp_path / "serve.toml"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    stderr = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "polyrl",
            "simulate",
            "--serve",
            "--speed",
            "50",
            "--hours",
            "0.5",
            "--seed",
            "3",
            "--assets",
            "btc",
            "--config-out",
            str(cfg_path),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not any("serving until" in x for x in lines):
            assert time.monotonic() < deadline and proc.poll() is None, (
                lines,
                (tmp_path / "stderr.txt").read_text(),
            )
            time.sleep(0.05)
        assert any(x.startswith(f"config: {cfg_path}") for x in lines)
        cfg = tomllib.loads(cfg_path.read_text())
        assert cfg["assets"] == ["btc"]
        src = cfg["sources"]
        assert all(
            src[k].startswith(("ws://127.0.0.1:", "http://127.0.0.1:"))
            for k in src
            if k.endswith(("_ws", "_rest"))
        )

        async def client() -> None:
            async with connect(src["binance_spot_ws"] + "/stream?streams=btcusdt@aggTrade") as ws:
                assert stream_name(await asyncio.wait_for(ws.recv(), 10)) == "btcusdt@aggTrade"
            st, body, _ = await get(
                f"{src['polymarket_gamma_rest']}/markets?slug=btc-updown-15m-{T0 // SEC}"
            )
            assert st == 200 and json.loads(body)[0]["slug"] == f"btc-updown-15m-{T0 // SEC}"

        run(client)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        reader.join(5)
        assert lines[-1].strip() == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
        proc.stdout.close()
        stderr.close()
