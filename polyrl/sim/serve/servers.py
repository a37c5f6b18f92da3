"""All loopback venues together: :class:`VenueServers` (async) and :class:`ServersThread`
(the same on a background thread, for CLIs, notebooks and synchronous code).

::

    clock = LiveClock(speed=100, start_ns=t0)
    async with VenueServers(SimContent(cfg, start_ns=t0, end_ns=t1, seed=0), clock=clock) as v:
        sources = v.sources_config(cfg.sources)   # every URL -> 127.0.0.1
        ...                                       # run the client under test with `sources`
        v.spot.drop()                             # faults: methods on each server
        v.spot.logs[0].delivered()                # what was sent on the first connection

Ports (``ServeConfig.base_port`` = P, or each ephemeral when 0): Binance spot WS P, Binance
futures WS P+1, Polymarket CLOB WS P+2 (path ``/ws/market``), RTDS WS P+3 (path ``/``),
HTTP P+4 for every REST base (paths ``/binance-spot``, ``/binance-futures``, ``/gamma``,
``/clob``), PolyBolt WS P+5 (path ``/ws``; it re-publishes the RTDS 60 s TWAP and takes the
test credentials ``ServeConfig.polybolt_*``). Everything binds ``ServeConfig.host``
(127.0.0.1).

One :class:`~polyrl.sim.serve.feed.FrameFeed` drives them all on the shared clock: each
WebSocket frame goes to its venue's server at its ``recv_ns``; REST-channel frames go to
the content source (recordings answer REST from them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypedDict, TypeVar

from polyrl.events import (
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_WS,
    CH_POLYMARKET_WS,
    CH_RTDS_WS,
    NS_PER_S,
    Frame,
)
from polyrl.sim.serve.binance import BinanceWsServer
from polyrl.sim.serve.books import BookStore
from polyrl.sim.serve.config import ServeConfig
from polyrl.sim.serve.content import REST_CHANNELS, VenueContent
from polyrl.sim.serve.faults import FaultSpec
from polyrl.sim.serve.feed import FrameFeed, SpeedClock
from polyrl.sim.serve.http import HttpServer
from polyrl.sim.serve.polybolt import PolyBoltServer
from polyrl.sim.serve.polymarket import ClobWsServer
from polyrl.sim.serve.rtds import RtdsServer
from polyrl.sim.serve.ws import WsServer
from polyrl.sources.config import SourcesConfig

_LOG = logging.getLogger("polyrl.sim.serve")
T = TypeVar("T")


class VenueUrls(TypedDict):
    """Base URL of each venue endpoint, keyed by :class:`SourcesConfig` field name."""

    binance_spot_ws: str
    binance_spot_rest: str
    binance_futures_ws: str
    binance_futures_rest: str
    polymarket_clob_ws: str
    polymarket_clob_rest: str
    polymarket_gamma_rest: str
    polymarket_rtds_ws: str
    polymarket_polybolt_ws: str


class VenueServers:
    """Every loopback venue on one clock and one content source (see the module docstring).

    Attributes ``spot``, ``futures`` (:class:`BinanceWsServer`), ``clob``
    (:class:`ClobWsServer`), ``rtds`` (:class:`RtdsServer`), ``polybolt``
    (:class:`PolyBoltServer`) and ``http``
    (:class:`HttpServer`) carry each server's fault methods and logs. ``faults`` are
    applied at their venue times while the servers run.
    """

    def __init__(
        self,
        content: VenueContent,
        *,
        clock: SpeedClock,
        config: ServeConfig | None = None,
        faults: Sequence[FaultSpec] = (),
    ) -> None:
        cfg = config if config is not None else ServeConfig()
        self.content = content
        self.clock = clock
        self.config = cfg
        self.books = BookStore()
        sync = self.sync
        self.spot = BinanceWsServer("binance_spot", clock, cfg, futures=False, sync=sync)
        self.futures = BinanceWsServer("binance_futures", clock, cfg, futures=True, sync=sync)
        self.clob = ClobWsServer("clob", clock, cfg, self.books, sync=sync)
        self.rtds = RtdsServer("rtds", clock, cfg, sync=sync)
        self.polybolt = PolyBoltServer("polybolt", clock, cfg, sync=sync)
        self.http = HttpServer(clock, content, self.books, cfg, sync=sync)
        self.faults = sorted(faults, key=lambda f: f.at_ns)
        self.feed = FrameFeed(content.frames(), clock, self._dispatch)
        self._tasks: list[asyncio.Task[None]] = []
        self._next_prune_ns: int | None = None
        self._publish: dict[str, Callable[[str, int | None], None]] = {
            CH_BINANCE_SPOT_WS: self.spot.publish,
            CH_BINANCE_FUTURES_WS: self.futures.publish,
            CH_POLYMARKET_WS: self.clob.publish,
            CH_RTDS_WS: self._publish_reference,
        }

    def _publish_reference(self, text: str, due_ns: int | None) -> None:
        self.rtds.publish(text, due_ns)
        self.polybolt.publish(text, due_ns)

    # -- servers ------------------------------------------------------------------------------

    @property
    def ws_servers(self) -> dict[str, WsServer]:
        """The WebSocket servers by name."""
        servers = (self.spot, self.futures, self.clob, self.rtds, self.polybolt)
        return {s.name: s for s in servers}

    def urls(self) -> VenueUrls:
        """Base URL of each venue endpoint, by :class:`SourcesConfig` field name."""
        h = self.config.host
        http_base = f"http://{h}:{self.http.port}"
        return {
            "binance_spot_ws": f"ws://{h}:{self.spot.port}",
            "binance_spot_rest": f"{http_base}/binance-spot",
            "binance_futures_ws": f"ws://{h}:{self.futures.port}",
            "binance_futures_rest": f"{http_base}/binance-futures",
            "polymarket_clob_ws": f"ws://{h}:{self.clob.port}/ws/market",
            "polymarket_clob_rest": f"{http_base}/clob",
            "polymarket_gamma_rest": f"{http_base}/gamma",
            "polymarket_rtds_ws": f"ws://{h}:{self.rtds.port}",
            "polymarket_polybolt_ws": f"ws://{h}:{self.polybolt.port}/ws",
        }

    def sources_config(self, base: SourcesConfig) -> SourcesConfig:
        """``base`` with every venue URL pointed at these servers (all else unchanged)."""
        if not self.http.port:
            raise RuntimeError("venue servers are not started: no ports to point at yet")
        return dataclasses.replace(base, **self.urls())

    async def __aenter__(self) -> VenueServers:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind every server and start the feed and the fault schedule."""
        cfg = self.config
        servers: list[Any] = [self.spot, self.futures, self.clob, self.rtds, self.http]
        servers.append(self.polybolt)  # P+5: after HTTP, so the older ports keep their places
        try:
            for k, server in enumerate(servers):
                await server.start(cfg.host, cfg.base_port + k if cfg.base_port else 0)
        except BaseException:
            for server in servers:
                await server.stop()
            raise
        self._tasks.append(asyncio.create_task(self._run_feed(), name="polyrl-feed"))
        if self.faults:
            self._tasks.append(asyncio.create_task(self._run_faults(), name="polyrl-faults"))

    async def stop(self) -> None:
        """Stop the feed, the faults and every server."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - already logged
                pass
        self._tasks.clear()
        for server in (self.spot, self.futures, self.clob, self.rtds, self.polybolt, self.http):
            await server.stop()
        self.feed.close()

    def end_span(self, reason: str) -> None:
        """The content's span is over: close every WebSocket (code 1001, ``reason``) and
        answer every new handshake and REST request ``410 Gone`` with ``reason``, so a
        client learns that the venues are gone and why instead of meeting silence."""
        for server in self.ws_servers.values():
            server.gone(reason)
        self.http.gone(reason)

    # -- feed ---------------------------------------------------------------------------------

    def pump(self, now_ns: int | None = None) -> None:
        """Bring every server's state up to ``now_ns`` (default the clock's now): dispatch
        every frame due by then."""
        self.feed.pump(now_ns)

    async def sync(self) -> int:
        """Catch the feed up with the clock and return the time it caught up to, ns.

        Waits (at most ``ServeConfig.sync_timeout_real_s``) until the content source has
        produced every frame due by now, dispatches them, and returns that now. State read
        right after, with no ``await`` in between, reflects exactly the frames with
        ``recv_ns`` at or before the returned time. Servers call this before snapshots and
        REST answers, so a slow producer (a simulator chunk being generated) never makes
        them answer from stale state.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.sync_timeout_real_s
        while True:
            now = self.clock.now_ns()
            self.feed.pump(now)
            if self.feed.caught_up(now) or loop.time() >= deadline:
                return now
            await asyncio.sleep(0.002)

    def _dispatch(self, frame: Frame) -> None:
        publish = self._publish.get(frame.channel)
        if publish is not None:
            publish(frame.text, frame.recv_ns)
        elif frame.channel in REST_CHANNELS:
            self.content.observe(frame)
        if self._next_prune_ns is None or frame.recv_ns >= self._next_prune_ns:
            retention = int(self.config.book_retention_s * NS_PER_S)
            self.books.prune(frame.recv_ns - retention)
            self._next_prune_ns = frame.recv_ns + 600 * NS_PER_S

    async def _run_feed(self) -> None:
        try:
            await self.feed.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOG.exception("venue feed stopped")
            raise

    # -- faults -------------------------------------------------------------------------------

    async def _run_faults(self) -> None:
        for spec in self.faults:
            delay = (spec.at_ns - self.clock.now_ns()) / NS_PER_S / self.clock.speed
            if delay > 0:
                await asyncio.sleep(delay)
            self.apply(spec)

    def apply(self, spec: FaultSpec) -> None:
        """Inject one fault now."""
        if spec.kind == "http_error":
            self.http.fail(
                spec.status,
                seconds=spec.seconds,
                count=spec.count,
                retry_after_s=spec.retry_after_s,
                path_prefix=spec.path_prefix,
            )
            return
        server = self.ws_servers[spec.target]
        if spec.kind == "drop":
            server.drop()
        elif spec.kind == "stall":
            assert spec.seconds is not None
            server.stall(spec.seconds)
        elif spec.kind == "refuse":
            assert spec.seconds is not None
            server.refuse(spec.seconds, mode=spec.mode)
        elif spec.kind == "malformed":
            server.malformed(spec.count or 0, rate=spec.rate, seconds=spec.seconds)


class ServersThread:
    """Runs :class:`VenueServers` on their own event loop in a daemon thread.

    ``with ServersThread(servers) as v:`` starts them (ports bound on return) and stops them
    on exit. Touch the servers (fault methods, logs) only through :meth:`call`, which runs a
    function on the servers' loop and returns its result.
    """

    def __init__(self, servers: VenueServers) -> None:
        self.servers = servers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="polyrl-venues", daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                await self.servers.start()
            except BaseException as e:
                self._error = e
                self._ready.set()
                return
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await self.servers.stop()

        try:
            asyncio.run(run())
        except BaseException as e:  # noqa: BLE001 - reported to the starting thread
            self._error = self._error or e
            self._ready.set()

    def start(self, timeout_s: float = 30.0) -> VenueServers:
        """Start the thread and wait until every server listens."""
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("venue servers did not start in time")
        if self._error is not None:
            raise RuntimeError(f"venue servers failed to start: {self._error!r}") from self._error
        return self.servers

    def call(self, fn: Callable[..., T], *args: Any, timeout_s: float = 30.0) -> T:
        """Run ``fn(*args)`` on the servers' loop and return its result."""
        if self._loop is None:
            raise RuntimeError("venue servers are not running")

        async def invoke() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result(timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the servers and wait for the thread to end."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)

    def __enter__(self) -> VenueServers:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
