"""The WebSocket server every loopback venue shares: connections, per-connection writers,
keepalive and idle rules in venue time, fault injection and the sent log.

A venue subclass (:mod:`.binance`, :mod:`.polymarket`, :mod:`.rtds`) says which paths it
accepts (:meth:`WsServer.accepts`), what a connection starts with (:meth:`WsServer.on_open`),
how it answers client messages (:meth:`WsServer.on_message`) and which connections a feed
frame goes to (its ``publish``). Everything a connection is sent goes through one FIFO
and one writer task, so replies, snapshots and feed frames keep the order they were queued
in, and the writer is the one place that applies faults and writes the log.

Time rules (venue seconds, converted to real seconds at the clock's speed, never below
``ServeConfig.min_timeout_real_s`` for timeouts so a loaded test machine does not trip them):

* ``ping_interval_s``/``pong_timeout_s``: protocol pings; a connection that has not answered
  any ping for ``pong_timeout_s`` is cut (Binance: 20 s/60 s spot, 180 s/600 s futures);
* ``idle_timeout_s``: a connection whose client has sent no message (subscription, ``PING``)
  for that long is closed with code 1000 (the Polymarket sockets' rule, see ServeConfig);
* ``max_age_s``: connections are closed with code 1000 at that age (Binance: 24 h).

A client that does not read fast enough is cut (``slow_consumer``) once
``max_queue_frames`` frames wait for it, as real venues drop slow consumers.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from polyrl.events import NS_PER_S
from polyrl.sim.serve.faults import RefuseMode, WsFaultState
from polyrl.sim.serve.log import CloseReason, ConnectionLog, FrameKind, RefusedAttempt, SentFrame

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from polyrl.sim.serve.config import ServeConfig
    from polyrl.sim.serve.feed import SpeedClock

_LOG = logging.getLogger("polyrl.sim.serve")
_PING_FRAME_BYTES = 6
"""A server ping on the wire: 2 header bytes + the 4-byte payload websockets sends."""


def ws_frame_bytes(text: str) -> int:
    """Bytes of an unmasked, uncompressed server text frame carrying ``text``."""
    n = len(text.encode("utf-8"))
    return n + (2 if n < 126 else 4 if n < 65_536 else 10)


def text_request(conn: Conn, text: str) -> dict[str, Any] | None:
    """A client message as the venues with text keepalives (Polymarket CLOB, RTDS) read it:
    ``PING`` is answered ``PONG``; a JSON object is returned; anything else (including PING)
    gives None, ignored as the venues ignore it."""
    if text.strip() == "PING":
        conn.enqueue("PONG", "pong")
        return None
    try:
        msg = json.loads(text)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None


class Conn:
    """One open connection: its socket, log, outgoing FIFO and venue-specific session."""

    __slots__ = (
        "server",
        "ws",
        "log",
        "out",
        "wake",
        "closed",
        "recent",
        "last_pong_real",
        "last_msg_real",
        "session",
    )

    def __init__(self, server: WsServer, ws: ServerConnection, log: ConnectionLog) -> None:
        loop = asyncio.get_running_loop()
        self.server = server
        self.ws = ws
        self.log = log
        self.out: deque[tuple[str, FrameKind, int]] = deque()
        self.wake = asyncio.Event()
        self.closed = False
        # The last writes (None = a ping), to tell which frames an abrupt close lost.
        self.recent: deque[SentFrame | None] = deque(maxlen=512)
        self.last_pong_real = loop.time()
        self.last_msg_real = loop.time()
        self.session: Any = None

    def enqueue(self, text: str, kind: FrameKind = "data", due_ns: int | None = None) -> None:
        """Queue a text frame for this connection (dropped once it has closed).

        ``due_ns`` is what the frame stands for in time (see :class:`SentFrame`); default now.
        """
        if self.closed:
            return
        if len(self.out) >= self.server.cfg.max_queue_frames:
            self.server.abort(self, "slow_consumer")
            return
        due = self.server.clock.now_ns() if due_ns is None else due_ns
        self.out.append((text, kind, due))
        self.wake.set()


class WsServer:
    """Base of the loopback WebSocket venues (see the module docstring)."""

    def __init__(
        self,
        name: str,
        clock: SpeedClock,
        cfg: ServeConfig,
        *,
        sync: Callable[[], Awaitable[int]] | None = None,
        ping_interval_s: float | None = None,
        pong_timeout_s: float | None = None,
        idle_timeout_s: float | None = None,
        max_age_s: float | None = None,
        fault_seed: int = 0,
    ) -> None:
        self.name = name
        self.clock = clock
        self.cfg = cfg
        self.sync: Callable[[], Awaitable[int]] = sync if sync is not None else self._now
        """Catch the feed up with the clock and return that now (see VenueServers.sync)."""
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_age_s = max_age_s
        self.faults = WsFaultState(fault_seed)
        self.logs: list[ConnectionLog] = []
        """Every connection accepted, in accept order (open ones included)."""
        self.refused: list[RefusedAttempt] = []
        self.conns: dict[int, Conn] = {}
        """Open connections by id."""
        self.port = 0
        self._server: Server | None = None
        self._next_id = 0
        self._resume_handle: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.gone_reason: str | None = None
        """Set by :meth:`gone`: why this venue serves no more (handshakes get 410 with it)."""

    # -- venue hooks ------------------------------------------------------------------------

    def accepts(self, target: str) -> bool:
        """Whether a handshake for request target ``target`` (path + query) is accepted."""
        return True

    def on_open(self, conn: Conn) -> None:
        """A connection was accepted (set ``conn.session``)."""

    async def _now(self) -> int:
        return self.clock.now_ns()

    async def on_message(self, conn: Conn, text: str) -> None:
        """A text message arrived from the client (the next is read once this returns)."""

    def on_close(self, conn: Conn) -> None:
        """The connection closed (forget its subscriptions)."""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (0 = an ephemeral port; see :attr:`port`)."""
        self._server = await serve(
            self._handler,
            host,
            port,
            process_request=self._process_request,
            ping_interval=None,  # pings follow venue time: see _keepalive
            compression=None,  # exact byte accounting of the sent log
            close_timeout=2.0,
            max_size=2**20,
            logger=_LOG,
            server_header=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every connection (code 1001) and stop listening."""
        for conn in list(self.conns.values()):
            self._finish(conn, "server_stop")
        if self._resume_handle is not None:
            self._resume_handle.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._closing):
            task.cancel()

    def real_s(self, venue_s: float, *, timeout: bool = False) -> float:
        """Real seconds of a venue duration (timeouts never below the configured floor)."""
        r = venue_s / self.clock.speed
        return max(r, self.cfg.min_timeout_real_s) if timeout else r

    # -- faults ------------------------------------------------------------------------------

    def drop(self) -> int:
        """Cut every open connection now, abruptly (no close frame); returns how many."""
        conns = list(self.conns.values())
        for conn in conns:
            self.abort(conn, "fault_drop")
        return len(conns)

    def stall(self, seconds: float) -> None:
        """Send nothing and read nothing (pings included) for ``seconds`` venue seconds.

        Frames that fall due meanwhile are lost (counted in ``stalled_frames``); sockets
        stay open. New connections complete their handshake, then stall too.
        """
        now = self.clock.now_ns()
        end = self.faults.set_stall(now, seconds)
        for conn in self.conns.values():
            conn.ws.transport.pause_reading()
        self._schedule_resume(end)

    def _schedule_resume(self, end_ns: int) -> None:
        if self._resume_handle is not None:
            self._resume_handle.cancel()
        delay = max(0.0, (end_ns - self.clock.now_ns()) / NS_PER_S / self.clock.speed)
        loop = asyncio.get_running_loop()
        self._resume_handle = loop.call_later(delay, self._resume)

    def _resume(self) -> None:
        self._resume_handle = None
        now = self.clock.now_ns()
        if self.faults.stalled(now):
            self._schedule_resume(self.faults.stalled_until_ns)
            return
        loop = asyncio.get_running_loop()
        for conn in self.conns.values():
            tr = conn.ws.transport
            if not tr.is_closing() and not tr.is_reading():
                tr.resume_reading()
            # The client could not be heard during the stall: its clocks restart now.
            conn.last_pong_real = conn.last_msg_real = loop.time()

    def malformed(self, count: int = 1, *, rate: float = 0.0, seconds: float | None = None) -> None:
        """Corrupt the next ``count`` frames sent (any connection, in send order), and each
        frame with probability ``rate`` for ``seconds`` venue seconds (None: until changed)."""
        self.faults.set_malformed(self.clock.now_ns(), count, rate, seconds)

    def refuse(self, seconds: float, *, mode: RefuseMode = "http503") -> None:
        """Refuse new connections for ``seconds`` venue seconds (see :mod:`.faults`)."""
        self.faults.set_refuse(self.clock.now_ns(), seconds, mode)

    def gone(self, reason: str) -> None:
        """The venue is over for good: close every connection (code 1001, ``reason``) and
        answer every new handshake ``410 Gone`` with ``reason`` as the body."""
        self.gone_reason = reason
        for conn in list(self.conns.values()):
            self._finish(conn, "span_end")

    # -- connections -------------------------------------------------------------------------

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        if self.gone_reason is not None:
            return connection.respond(410, self.gone_reason + "\n")
        now = self.clock.now_ns()
        mode = self.faults.refusing(now)
        if mode is not None:
            self.refused.append(RefusedAttempt(now, request.path, mode))
            if mode == "close":
                connection.transport.abort()
                # Let connection_lost run, so the handshake finds the socket gone and
                # writes nothing: the client sees its TCP connection closed unanswered.
                await asyncio.sleep(0)
                await asyncio.sleep(0)
            return connection.respond(503, "Service Unavailable\n")
        if not self.accepts(request.path):
            return connection.respond(404, "Not Found\n")
        return None  # accept

    async def _handler(self, ws: ServerConnection) -> None:
        now = self.clock.now_ns()
        self._next_id += 1
        assert ws.request is not None
        log = ConnectionLog(self.name, self._next_id, ws.request.path, now)
        self.logs.append(log)
        conn = Conn(self, ws, log)
        self.conns[log.conn_id] = conn
        if self.faults.stalled(now):
            ws.transport.pause_reading()
        writer = asyncio.create_task(self._writer(conn))
        keeper = asyncio.create_task(self._keepalive(conn))
        loop = asyncio.get_running_loop()
        try:
            self.on_open(conn)
            while True:
                msg = await ws.recv()
                if not isinstance(msg, str) or conn.closed:
                    continue
                log.received.append((self.clock.now_ns(), msg))
                conn.last_msg_real = loop.time()
                while self.faults.stalled(self.clock.now_ns()):
                    await asyncio.sleep(0.005)
                await self.on_message(conn, msg)
        except ConnectionClosed:
            pass
        finally:
            self._finish(conn, "client")
            writer.cancel()
            keeper.cancel()

    def _finish(self, conn: Conn, reason: CloseReason) -> None:
        """Mark a connection closed (first reason wins) and forget it."""
        if conn.closed:
            return
        conn.closed = True
        conn.out.clear()
        conn.wake.set()
        conn.log.closed_ns = self.clock.now_ns()
        conn.log.close_reason = reason
        self.conns.pop(conn.log.conn_id, None)
        self.on_close(conn)
        if reason in ("idle_timeout", "max_age", "span_end"):
            # A clean close (code 1000, or 1001 "going away" when the venue is over, with a
            # reason); server_stop leaves it to websockets' own shutdown (code 1001).
            code, text = 1000, reason.replace("_", " ")
            if reason == "span_end":
                code, text = 1001, (self.gone_reason or "")[:120]
            task = asyncio.get_running_loop().create_task(self._close(conn, code, text))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close(conn: Conn, code: int, reason: str) -> None:
        try:
            await conn.ws.close(code, reason)
        except Exception:  # noqa: BLE001 - the socket may be gone already
            conn.ws.transport.abort()

    def abort(self, conn: Conn, reason: CloseReason) -> None:
        """Cut a connection abruptly (no close frame), marking lost frames undelivered."""
        if conn.closed:
            return
        tr = conn.ws.transport
        buffered = tr.get_write_buffer_size() if not tr.is_closing() else 0
        # Bytes still in the write buffer die with the socket: the newest writes first.
        for rec in reversed(conn.recent):
            if buffered <= 0:
                break
            if rec is None:
                buffered -= _PING_FRAME_BYTES
            else:
                rec.delivered = False
                buffered -= ws_frame_bytes(rec.text)
        self._finish(conn, reason)
        tr.abort()

    async def _writer(self, conn: Conn) -> None:
        ws, log = conn.ws, conn.log
        keep = self.cfg.log_frames
        while not conn.closed:
            if not conn.out:
                conn.wake.clear()
                await conn.wake.wait()
                continue
            text, kind, due = conn.out.popleft()
            now = self.clock.now_ns()
            if self.faults.stalled(now):
                log.stalled_frames += 1
                continue
            text, bad = self.faults.maybe_corrupt(text, now)
            rec = SentFrame(now, text, kind, due, bad)
            if keep:
                log.frames.append(rec)
            conn.recent.append(rec)
            if ws.protocol.close_sent is not None:
                # websockets lets a data frame follow our own close frame (state CLOSING),
                # but a client discards anything after the close: not delivered.
                rec.delivered = False
                return
            try:
                await ws.send(text)
            except ConnectionClosed:
                rec.delivered = False
                return

    async def _keepalive(self, conn: Conn) -> None:
        """Pings, pong timeout, idle rule and maximum age, in venue time."""
        loop = asyncio.get_running_loop()
        steps = [1.0]
        if self.ping_interval_s is not None:
            steps.append(self.real_s(self.ping_interval_s))
        if self.idle_timeout_s is not None:
            steps.append(self.real_s(self.idle_timeout_s, timeout=True) / 4)
        step = max(min(steps), 0.005)
        since_ping = 0.0
        try:
            while not conn.closed:
                await asyncio.sleep(step)
                since_ping += step
                if conn.closed or self.faults.stalled(self.clock.now_ns()):
                    continue
                t = loop.time()
                if self.max_age_s is not None:
                    age = (self.clock.now_ns() - conn.log.opened_ns) / NS_PER_S
                    if age >= self.max_age_s:
                        self._finish(conn, "max_age")
                        return
                if self.idle_timeout_s is not None and t - conn.last_msg_real > self.real_s(
                    self.idle_timeout_s, timeout=True
                ):
                    self._finish(conn, "idle_timeout")
                    return
                if self.ping_interval_s is None:
                    continue
                if self.pong_timeout_s is not None and t - conn.last_pong_real > self.real_s(
                    self.pong_timeout_s, timeout=True
                ):
                    self.abort(conn, "ping_timeout")
                    return
                if since_ping + 1e-9 >= self.real_s(self.ping_interval_s):
                    since_ping = 0.0
                    # ping() is typed as returning an Awaitable; it is a Future, which
                    # ensure_future hands back unchanged.
                    waiter = asyncio.ensure_future(await conn.ws.ping())
                    conn.log.pings += 1
                    conn.recent.append(None)
                    waiter.add_done_callback(functools.partial(_ponged, conn))
        except ConnectionClosed:
            return


def _ponged(conn: Conn, fut: asyncio.Future[float]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        conn.last_pong_real = asyncio.get_running_loop().time()
