"""One loopback HTTP/1.1 server for every REST endpoint the recorder polls.

Each venue's REST base is this server plus a path prefix, so one port serves them all
without ambiguity (``VenueServers.sources_config`` sets the bases):

==================  ==================================================================
prefix              endpoints (relative to the prefix)
==================  ==================================================================
``/binance-spot``   ``GET /api/v3/klines?symbol=&interval=1m&limit=[&startTime=][&endTime=]``
                    (array of 12-element arrays, bars closed before now, oldest first;
                    ``limit`` default 500, at most 1000), ``/api/v3/time``, ``/api/v3/ping``
``/binance-futures`` ``GET /fapi/v1/openInterest?symbol=``, ``/fapi/v1/time``, ``/fapi/v1/ping``
``/gamma``          ``GET /markets?slug=..`` (array; ``[]`` when unknown or not yet listed),
                    ``/markets/slug/<slug>`` (object; 404 when unknown), ``/events?slug=..``
                    and ``/events/slug/<slug>`` (events with ``markets``)
``/clob``           ``GET /markets/<condition_id>`` (404 when unknown), ``/book?token_id=``
                    (the book as the CLOB feed has it now; 404 when the token has no book),
                    ``/time``
==================  ==================================================================

Unprefixed paths are routed too when they can only mean one venue (``/api/``, ``/fapi/``,
``/events``, ``/markets?slug=``, ``/markets/slug/``, ``/markets/0x..``, ``/book``), for
clients that resolve paths against the host rather than appending them to the base.

Errors follow each venue's shape: Binance ``{"code":-1121,"msg":"Invalid symbol."}`` (400),
Polymarket ``{"error":...}``. Faults (:meth:`HttpServer.fail`) answer 429/5xx with
``Retry-After`` (venue seconds) when given. Every exchange is logged in :attr:`HttpServer.log`.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from polyrl.events import NS_PER_MS, NS_PER_S
from polyrl.sim.serve.content import gamma_event
from polyrl.sim.serve.faults import HttpFaultRule
from polyrl.sim.serve.log import HttpExchange

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from polyrl.sim.serve.books import BookStore
    from polyrl.sim.serve.config import ServeConfig
    from polyrl.sim.serve.content import VenueContent
    from polyrl.sim.serve.feed import SpeedClock

_LOG = logging.getLogger("polyrl.sim.serve")
PREFIXES = {
    "/binance-spot": "spot",
    "/binance-futures": "futures",
    "/gamma": "gamma",
    "/clob": "clob",
}
_MAX_LINE = 16_384

Answer = tuple[int, str, dict[str, str]]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _binance_error(code: int, msg: str) -> Answer:
    return 400, _dumps({"code": code, "msg": msg}), {}


def _not_found(what: str = "not found") -> Answer:
    return 404, _dumps({"error": what}), {}


def split_venue(path: str) -> tuple[str | None, str]:
    """(venue, path within the venue) of a request path (see the module docstring)."""
    for prefix, venue in PREFIXES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return venue, path[len(prefix) :] or "/"
    if path.startswith("/api/"):
        return "spot", path
    if path.startswith("/fapi/"):
        return "futures", path
    if (
        path.startswith("/events")
        or path in ("/markets", "/markets/")
        or path.startswith("/markets/slug/")
    ):
        return "gamma", path
    if path.startswith("/markets/") or path in ("/book", "/time"):
        return "clob", path
    return None, path


class HttpServer:
    """The REST endpoints of every venue on one port (see the module docstring)."""

    def __init__(
        self,
        clock: SpeedClock,
        content: VenueContent,
        books: BookStore,
        cfg: ServeConfig,
        *,
        sync: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self.name = "http"
        self.clock = clock
        self.content = content
        self.books = books
        self.cfg = cfg
        self.sync: Callable[[], Awaitable[int]] = sync if sync is not None else self._now
        self.log: list[HttpExchange] = []
        self.rules: list[HttpFaultRule] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self.gone_reason: str | None = None
        """Set by :meth:`gone`: every request is answered 410 with it."""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (0 = ephemeral; see :attr:`port`)."""
        self._server = await asyncio.start_server(self._client, host, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop open client connections."""
        if self._server is not None:
            self._server.close()
            for t in list(self._clients):
                t.cancel()
            await self._server.wait_closed()
            self._server = None

    # -- faults ------------------------------------------------------------------------------

    def fail(
        self,
        status: int,
        *,
        seconds: float | None = None,
        count: int | None = None,
        retry_after_s: float | None = None,
        path_prefix: str | None = None,
    ) -> None:
        """Answer ``status`` for ``seconds`` venue seconds or the next ``count`` requests
        (whichever ends first; one of them is required), only for request paths starting
        with ``path_prefix`` when given. ``Retry-After`` is sent when ``retry_after_s`` is."""
        if seconds is None and count is None:
            raise ValueError("http fault: give seconds or count")
        if not 400 <= status <= 599:
            raise ValueError(f"http fault: status must be 4xx or 5xx, got {status}")
        until = None if seconds is None else self.clock.now_ns() + int(seconds * NS_PER_S)
        self.rules.append(HttpFaultRule(status, until, count, retry_after_s, path_prefix))

    def gone(self, reason: str) -> None:
        """The venues are over for good: answer every request ``410 Gone`` with ``reason``."""
        self.gone_reason = reason

    def clear_faults(self) -> None:
        """End every http fault now."""
        self.rules.clear()

    def _fault(self, path: str, venue: str | None, now_ns: int) -> Answer | None:
        for rule in self.rules:
            if rule.matches(path, now_ns):
                if rule.count is not None:
                    rule.count -= 1
                self.rules = [r for r in self.rules if not r.spent]
                phrase = http.HTTPStatus(rule.status).phrase
                if venue in ("spot", "futures"):
                    code = -1003 if rule.status == 429 else -1001
                    body = _dumps({"code": code, "msg": phrase})
                else:
                    body = _dumps({"error": phrase})
                headers = {}
                if rule.retry_after_s is not None:
                    r = rule.retry_after_s
                    headers["Retry-After"] = str(int(r)) if float(r).is_integer() else str(r)
                return rule.status, body, headers
        return None

    # -- requests ----------------------------------------------------------------------------

    async def _now(self) -> int:
        return self.clock.now_ns()

    async def handle(self, method: str, target: str) -> tuple[int, str, dict[str, str], bool]:
        """Answer one request: (status, body, extra headers, produced by a fault)."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        venue, rel = split_venue(path)
        if self.gone_reason is not None:
            body = (
                _dumps({"code": -1000, "msg": self.gone_reason})
                if venue in ("spot", "futures")
                else _dumps({"error": self.gone_reason})
            )
            return 410, body, {}, False
        now = self.clock.now_ns()
        fault = self._fault(path, venue, now)
        if fault is not None:
            return (*fault, True)
        if method not in ("GET", "HEAD"):
            return 405, _dumps({"error": "method not allowed"}), {}, False
        q = {k: v for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        now = await self.sync()  # answer from the state as of now
        try:
            if venue == "spot":
                ans = self._spot(rel, q, now)
            elif venue == "futures":
                ans = self._futures(rel, q, now)
            elif venue == "gamma":
                ans = self._gamma(rel, q, now)
            elif venue == "clob":
                ans = self._clob(rel, q, now)
            else:
                ans = _not_found()
        except ValueError as e:
            ans = 400, _dumps({"error": f"bad request: {e}"}), {}
        except Exception:  # a server bug must not look like a dead venue: answer 500
            _LOG.exception("REST %s %s failed", method, target)
            ans = 500, _dumps({"error": "internal server error"}), {}
        return (*ans, False)

    def _spot(self, rel: str, q: dict[str, list[str]], now: int) -> Answer:
        if rel == "/api/v3/ping":
            return 200, "{}", {}
        if rel == "/api/v3/time":
            return 200, _dumps({"serverTime": now // NS_PER_MS}), {}
        if rel != "/api/v3/klines":
            return _not_found()
        symbol = q.get("symbol", [""])[0]
        if not symbol:
            return _binance_error(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        if q.get("interval", [""])[0] != "1m":
            return _binance_error(-1120, "Invalid interval.")
        try:
            limit = int(q.get("limit", ["500"])[0])
            start = int(q["startTime"][0]) if "startTime" in q else None
            end = int(q["endTime"][0]) if "endTime" in q else None
        except ValueError:
            return _binance_error(-1100, "Illegal characters found in a parameter.")
        if not 1 <= limit <= 1000:
            return _binance_error(-1130, "Invalid data sent for a parameter: limit.")
        rows = self.content.klines(symbol, now, start_ms=start, end_ms=end, limit=limit)
        if rows is None:
            return _binance_error(-1121, "Invalid symbol.")
        return 200, "[" + ",".join(rows) + "]", {}

    def _futures(self, rel: str, q: dict[str, list[str]], now: int) -> Answer:
        if rel == "/fapi/v1/ping":
            return 200, "{}", {}
        if rel == "/fapi/v1/time":
            return 200, _dumps({"serverTime": now // NS_PER_MS}), {}
        if rel != "/fapi/v1/openInterest":
            return _not_found()
        symbol = q.get("symbol", [""])[0]
        if not symbol:
            return _binance_error(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        text = self.content.open_interest(symbol, now)
        if text is None:
            return _binance_error(-1121, "Invalid symbol.")
        return 200, text, {}

    def _gamma(self, rel: str, q: dict[str, list[str]], now: int) -> Answer:
        rel = rel.rstrip("/") or "/"
        if rel in ("/markets", "/events"):
            markets = [
                m
                for slug in q.get("slug", [])
                if (m := self.content.gamma_market(slug, now, self.books)) is not None
            ]
            items = markets if rel == "/markets" else [gamma_event(m) for m in markets]
            return 200, _dumps(items), {}
        for prefix, wrap in (("/markets/slug/", False), ("/events/slug/", True)):
            if rel.startswith(prefix):
                m = self.content.gamma_market(rel[len(prefix) :], now, self.books)
                if m is None:
                    return _not_found()
                return 200, _dumps(gamma_event(m) if wrap else m), {}
        return _not_found()

    def _clob(self, rel: str, q: dict[str, list[str]], now: int) -> Answer:
        if rel == "/time":
            return 200, str(now // NS_PER_S), {}
        if rel == "/book":
            token = q.get("token_id", [""])[0]
            book = self.books.book(token)
            if book is None:
                return _not_found("No orderbook exists for the requested token id")
            return 200, book.render_rest(now), {}
        if rel.startswith("/markets/"):
            m = self.content.clob_market(rel[len("/markets/") :], now, self.books)
            if m is None:
                return _not_found("market not found")
            return 200, m if isinstance(m, str) else _dumps(m), {}
        return _not_found()

    # -- HTTP/1.1 ----------------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, ConnectionError):
                    return
                if not line:
                    return
                try:
                    method, target, version = line.decode("latin-1").split()
                except ValueError:
                    await self._respond(writer, 400, _dumps({"error": "bad request"}), {}, False)
                    return
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    if len(headers) > 100 or len(h) > _MAX_LINE:
                        return
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
                status, body, extra, fault = await self.handle(method, target)
                self.log.append(
                    HttpExchange(
                        self.clock.now_ns(),
                        method,
                        target,
                        status,
                        body if self.cfg.log_frames else "",
                        fault,
                    )
                )
                await self._respond(writer, status, "" if method == "HEAD" else body, extra, keep)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._clients.discard(task)
            writer.close()

    @staticmethod
    async def _respond(
        writer: asyncio.StreamWriter, status: int, body: str, extra: dict[str, str], keep: bool
    ) -> None:
        data = body.encode("utf-8")
        head = [
            f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
            "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(data)}",
            f"Connection: {'keep-alive' if keep else 'close'}",
            *(f"{k}: {v}" for k, v in extra.items()),
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        await writer.drain()
