"""One resilient WebSocket connection: connect, subscribe, receive, watch, reconnect.

Every venue adapter runs one or more :class:`WsConnection`. Each received message becomes a
:class:`~polyrl.events.Frame` stamped with the clock's ``recv_ns`` the moment it is taken off
the socket and handed to the sink (the Recorder). The connection never raises on bad data
and never gives up (unless its ``after_close`` hook says so, see :class:`WsConnection`):

- a socket that stays open but goes silent for ``watchdog_s`` is closed and reopened (a
  process too busy to read is not a silent socket: see :func:`_recv_within`);
- a connection older than ``max_connection_age_s`` is renewed before the venue's 24-hour cut;
- reconnects back off exponentially with full jitter between ``reconnect_min_s`` and
  ``reconnect_max_s``;
- every disconnect is written as a ``recorder.status`` row, and the outage as a ``gap`` row
  from the last frame received before it to the moment the new connection opened.

Protocol-level pings from the server are answered by the websockets library; venues that
want text heartbeats (Polymarket: ``PING``) get them every ``text_ping_s``. All durations
are in the clock's (possibly accelerated) seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from polyrl.clock import LiveClock
from polyrl.events import Frame
from polyrl.sources.config import SourcesConfig
from polyrl.sources.parse import status_frame
from polyrl.sources.sink import FrameSink

OnOpen = Callable[[ClientConnection], Awaitable[None]]
AfterClose = Callable[[int | None], float | None]
"""Called after each connection ends with the close code received (None: no connection was
opened, or no code); returns None for the usual backoff, a delay in clock seconds to wait
instead, or ``math.inf`` to stop reconnecting (``run`` returns)."""

SECOND_LOOK_S = 0.05
"""Real seconds of a second wait for a message after the watchdog's timer fired."""


async def _recv_within(ws: ClientConnection, wait_s: float) -> str | bytes | None:
    """The next message, or None when none came within ``wait_s`` real seconds.

    A timer that fires after the process was busy (a long garbage collection, a starved
    CPU) fires together with the frames that arrived meanwhile, and may win the race: a
    short second wait lets those frames through, so only a socket that really went silent
    counts as silent. ``recv`` is cancellation-safe: a message is never lost to a timeout.
    """
    for timeout in (max(wait_s, 0.001), SECOND_LOOK_S):
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that races with a message, and shutdown would hang.
            async with asyncio.timeout(timeout):
                return await ws.recv()
        except TimeoutError:
            continue
    return None


def _reason(e: BaseException) -> str:
    """Why a connection failed, with the body of a refused handshake (the venue's words)."""
    text = f"{type(e).__name__}: {e}"
    if isinstance(e, InvalidStatus):
        body = e.response.body.decode("utf-8", errors="replace").strip() if e.response.body else ""
        if body:
            text += f": {body[:200]}"
    return text


def is_loopback(url: str) -> bool:
    """True for ws(s)/http(s) URLs on 127.0.0.1, ::1 or localhost."""
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


class Backoff:
    """Exponential backoff with full jitter (delays in clock seconds)."""

    def __init__(self, lo: float, hi: float, rng: random.Random) -> None:
        self.lo, self.hi, self.rng = lo, hi, rng
        self.attempt = 0

    def reset(self) -> None:
        self.attempt = 0

    def next(self) -> float:
        cap = min(self.hi, self.lo * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return self.lo + self.rng.random() * (cap - self.lo) if cap > self.lo else self.lo


class WsConnection:
    """A self-healing WebSocket feeding frames on ``channel`` into ``sink``.

    ``url`` is called at every (re)connect so a subscription that changed while connected
    is rebuilt in full; ``on_open`` runs right after each connect (send subscribe messages
    there). ``name`` tells apart two connections of one channel (futures /market and
    /public) in status rows. ``reconnect_on(text)`` returning True after a frame has been
    recorded makes the connection renew itself at once (Binance ``serverShutdown``).
    ``after_close`` (see :data:`AfterClose`) lets a venue whose close codes mean "do not come
    back so soon" or "do not come back" (PolyBolt's auth failure) choose the next delay.
    """

    def __init__(
        self,
        *,
        channel: str,
        url: Callable[[], str],
        sink: FrameSink,
        config: SourcesConfig,
        on_open: OnOpen | None = None,
        text_ping_s: float | None = None,
        name: str | None = None,
        rng: random.Random | None = None,
        reconnect_on: Callable[[str], bool] | None = None,
        after_close: AfterClose | None = None,
    ) -> None:
        self.channel = channel
        self.name = name or channel
        self._url = url
        self.sink = sink
        self.clock: LiveClock = sink.clock
        self.config = config
        self.on_open = on_open
        self.text_ping_s = text_ping_s
        self.backoff = Backoff(
            config.reconnect_min_s, config.reconnect_max_s, rng or random.Random()
        )
        self.reconnect_on = reconnect_on
        self.after_close = after_close
        self.ws: ClientConnection | None = None
        self.connects = 0
        self.frames = 0
        self._reconnect_now = asyncio.Event()

    def _status(
        self,
        kind: str,
        message: str = "",
        *,
        gap_start_ns: int | None = None,
        gap_end_ns: int | None = None,
    ) -> None:
        self.sink.emit(
            status_frame(
                kind,
                self.clock.now_ns(),
                channel=self.channel,
                message=message,
                gap_start_ns=gap_start_ns,
                gap_end_ns=gap_end_ns,
            )
        )

    def reconnect(self) -> None:
        """Drop the current connection and open a fresh one (e.g. on serverShutdown)."""
        self._reconnect_now.set()

    async def send(self, text: str) -> bool:
        """Send a text message if connected; False when there is no open connection."""
        ws = self.ws
        if ws is None:
            return False
        try:
            await ws.send(text)
        except ConnectionClosed:
            return False
        return True

    async def run(self) -> None:
        """Connect and receive until cancelled."""
        last_frame_ns: int | None = None
        down_since_ns: int | None = None
        while True:
            url = self._url()
            opened = False
            reason = ""
            conn: ClientConnection | None = None
            try:
                async with connect(
                    url,
                    ping_interval=None,
                    max_size=None,
                    max_queue=4096,
                    open_timeout=self.clock.real_seconds(int(10e9)) + 1.0,
                    close_timeout=1.0,
                    compression=None,
                    proxy=None if is_loopback(url) else True,
                ) as ws:
                    self.ws = conn = ws
                    opened = True
                    self.connects += 1
                    now = self.clock.now_ns()
                    self._status("connect", f"{self.name} {url}")
                    if down_since_ns is not None:
                        start = last_frame_ns if last_frame_ns is not None else down_since_ns
                        self._status(
                            "gap",
                            f"{self.name} outage",
                            gap_start_ns=start,
                            gap_end_ns=now,
                        )
                        down_since_ns = None
                    self.backoff.reset()
                    if self.on_open is not None:
                        await self.on_open(ws)
                    reason, last = await self._receive(ws)
                    if last is not None:
                        last_frame_ns = last
            except (ConnectionClosed, InvalidHandshake, InvalidURI, OSError, TimeoutError) as e:
                reason = _reason(e)
            finally:
                self.ws = None
            if opened:
                down_since_ns = self.clock.now_ns()
                self._status("disconnect", f"{self.name}: {reason}"[:400])
            else:
                if down_since_ns is None:
                    down_since_ns = self.clock.now_ns()
                self._status("connect_failed", f"{self.name}: {reason}"[:400])
            delay = None
            if self.after_close is not None:
                delay = self.after_close(conn.close_code if conn is not None else None)
            if delay == math.inf:
                return
            await self.clock.sleep(self.backoff.next() if delay is None else delay)

    async def _receive(self, ws: ClientConnection) -> tuple[str, int | None]:
        """Receive until the socket closes, goes silent, ages out or a reconnect is asked."""
        cfg = self.config
        born = self.clock.now_ns()
        last: int | None = None
        pinger = asyncio.create_task(self._ping(ws)) if self.text_ping_s is not None else None
        self._reconnect_now.clear()
        try:
            while True:
                age_left = cfg.max_connection_age_s - (self.clock.now_ns() - born) / 1e9
                if age_left <= 0:
                    return f"renewing after {cfg.max_connection_age_s:.0f}s", last
                if self._reconnect_now.is_set():
                    return "reconnect requested", last
                wait = self.clock.real_seconds(int(min(cfg.watchdog_s, age_left) * 1e9))
                msg = await _recv_within(ws, wait)
                if msg is None:
                    if (self.clock.now_ns() - born) / 1e9 >= cfg.max_connection_age_s:
                        continue
                    return f"silent for {cfg.watchdog_s:g}s (watchdog)", last
                recv_ns = self.clock.now_ns()
                text = msg if isinstance(msg, str) else msg.decode("utf-8", errors="replace")
                last = recv_ns
                self.frames += 1
                self.sink.emit(Frame(channel=self.channel, recv_ns=recv_ns, text=text))
                if self.reconnect_on is not None and self.reconnect_on(text):
                    return "the server announced a shutdown", last
        except ConnectionClosed as e:
            return f"closed: {e}", last
        finally:
            if pinger is not None:
                pinger.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pinger
            await self._close_and_drain(ws)

    async def _close_and_drain(self, ws: ClientConnection) -> None:
        """Close, and keep every message the server sent before it saw our close: they were
        sent while the connection was open and are data like any other."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await ws.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                while True:
                    msg = await ws.recv()
                    text = msg if isinstance(msg, str) else msg.decode("utf-8", errors="replace")
                    self.frames += 1
                    self.sink.emit(
                        Frame(channel=self.channel, recv_ns=self.clock.now_ns(), text=text)
                    )

    async def _ping(self, ws: ClientConnection) -> None:
        assert self.text_ping_s is not None
        while True:
            await self.clock.sleep(self.text_ping_s)
            try:
                await ws.send("PING")
            except ConnectionClosed:
                return
