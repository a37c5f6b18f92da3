"""Loopback Binance market-data WebSockets: spot and USD-M futures.

Paths (Binance's spot "WebSocket Streams" and USD-M futures "Websocket Market Streams"
docs):

* spot: ``/stream?streams=<s1>/<s2>/...`` (combined: frames wrapped
  ``{"stream":..,"data":..}``), ``/ws/<stream>`` and ``/ws`` (raw payloads);
* futures: the same under the routes ``/public`` (``@bookTicker``, ``@depth*``) and
  ``/market`` (``@aggTrade``, ``@markPrice``, ``@forceOrder``, ``@kline_*``, tickers, ...).
  A stream asked for on the wrong route, or on the legacy unrouted ``/stream``/``/ws``
  (which carry ``/public`` data only), is accepted, listed, and never delivered: the real
  venue goes silent without an error since 2026-04-23.

Control messages ``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS``/``SET_PROPERTY
["combined", bool]``/``GET_PROPERTY ["combined"]`` are answered ``{"result":..,"id":..}``;
bad ones get the documented error objects ``{"code":N,"msg":..}`` (0 unknown property,
1 invalid value type, 2 invalid request, 3 invalid JSON). Stream names match with the symbol
part lower-cased. Not modelled: the 5 (spot) / 10 (futures) incoming messages per second
limit, the 1024-stream limit, ``timeUnit=MICROSECOND`` (frames stay in ms) and
``serverShutdown`` events.

A feed frame is delivered to every connection subscribed to its stream on a route that
carries it; a frame whose stream cannot be read (a malformed frame of the content source)
goes to every connection, as garbage from the venue would.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, urlsplit

from polyrl.sim.serve.ws import Conn, WsServer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from polyrl.sim.serve.config import ServeConfig
    from polyrl.sim.serve.feed import SpeedClock

Route = Literal["spot", "public", "market", "legacy"]

_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_PUBLIC_KINDS = ("bookTicker", "depth")


def normalize_stream(name: str) -> str:
    """``BTCUSDT@aggTrade`` -> ``btcusdt@aggTrade`` (symbols are lower case on the wire)."""
    sym, at, rest = name.partition("@")
    return sym.lower() + at + rest


def futures_route(stream: str) -> Literal["public", "market"]:
    """The USD-M route that carries ``stream``: book streams are ``/public``, the rest
    ``/market``."""
    sym, _, kind = stream.partition("@")
    if sym in ("!bookTicker",) or kind.startswith(_PUBLIC_KINDS):
        return "public"
    return "market"


def stream_of(text: str) -> str | None:
    """The stream name of a combined frame ``{"stream":"<name>","data":...}``, or None."""
    if text.startswith('{"stream":"'):
        j = text.find('"', 11)
        if j > 0 and text.startswith(',"data":', j + 1) and text.endswith("}"):
            return text[11:j]
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("stream"), str) and "data" in obj:
        return obj["stream"]
    return None


def payload_of(text: str) -> str:
    """The raw payload of a combined frame (the exact ``data`` text when the frame is in the
    venue's compact form, else re-serialised)."""
    if text.startswith('{"stream":"'):
        j = text.find('"', 11)
        if j > 0 and text.startswith(',"data":', j + 1) and text.endswith("}"):
            return text[j + 9 : -1]
    obj = json.loads(text)
    return json.dumps(obj["data"], separators=(",", ":"), ensure_ascii=False)


@dataclass(slots=True)
class BinanceSession:
    """One connection's route, payload form and subscriptions (in subscription order)."""

    route: Route
    combined: bool
    streams: list[str] = field(default_factory=list)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class BinanceWsServer(WsServer):
    """Binance spot (``futures=False``) or USD-M futures (``futures=True``) streams."""

    def __init__(
        self,
        name: str,
        clock: SpeedClock,
        cfg: ServeConfig,
        *,
        futures: bool,
        sync: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        super().__init__(
            name,
            clock,
            cfg,
            sync=sync,
            ping_interval_s=cfg.futures_ping_s if futures else cfg.spot_ping_s,
            pong_timeout_s=cfg.futures_pong_timeout_s if futures else cfg.spot_pong_timeout_s,
            max_age_s=cfg.max_connection_age_s,
            fault_seed=cfg.fault_seed + (2 if futures else 1),
        )
        self.futures = futures
        self._by_stream: dict[str, set[Conn]] = defaultdict(set)

    # -- paths ---------------------------------------------------------------------------------

    def parse_target(self, target: str) -> BinanceSession | None:
        """The session a request target opens, or None for a path the venue does not serve."""
        parts = urlsplit(target)
        path = parts.path
        route: Route = "spot"
        if self.futures:
            route = "legacy"
            for r in ("public", "market"):
                if path == f"/{r}" or path.startswith(f"/{r}/"):
                    route = r
                    path = path[len(r) + 1 :]
                    break
        if path in ("/stream", "/stream/"):
            raw = parse_qs(parts.query).get("streams", [""])[0]
            streams = [s for s in raw.split("/") if s]
            return BinanceSession(route, True, _unique(streams))
        if path in ("/ws", "/ws/"):
            return BinanceSession(route, False, [])
        if path.startswith("/ws/"):
            streams = [s for s in path[4:].split("/") if s]
            return BinanceSession(route, False, _unique(streams))
        return None

    def accepts(self, target: str) -> bool:
        return self.parse_target(target) is not None

    def carries(self, route: Route, stream: str) -> bool:
        """Whether a connection on ``route`` is sent ``stream``'s frames."""
        if not self.futures:
            return True
        kind = futures_route(stream)
        return kind == "market" if route == "market" else kind == "public"

    # -- session --------------------------------------------------------------------------------

    def on_open(self, conn: Conn) -> None:
        assert conn.ws.request is not None
        session = self.parse_target(conn.ws.request.path)
        assert session is not None  # accepts() checked the path
        streams = session.streams
        session.streams = []
        conn.session = session
        self._subscribe(conn, streams)

    def on_close(self, conn: Conn) -> None:
        session: BinanceSession | None = conn.session
        if session is None:
            return
        for s in session.streams:
            self._by_stream.get(s, set()).discard(conn)

    def _subscribe(self, conn: Conn, streams: list[str]) -> None:
        session: BinanceSession = conn.session
        for raw in streams:
            s = normalize_stream(raw)
            if s in session.streams:
                continue
            session.streams.append(s)
            if self.carries(session.route, s):
                self._by_stream[s].add(conn)

    def _unsubscribe(self, conn: Conn, streams: list[str]) -> None:
        session: BinanceSession = conn.session
        for raw in streams:
            s = normalize_stream(raw)
            if s in session.streams:
                session.streams.remove(s)
                self._by_stream.get(s, set()).discard(conn)

    async def on_message(self, conn: Conn, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError as e:
            conn.enqueue(_dumps({"code": 3, "msg": f"Invalid JSON: {e}"}), "reply")
            return
        if not isinstance(msg, dict):
            conn.enqueue(_dumps({"code": 2, "msg": "Invalid request: expected an object"}), "reply")
            return
        rid = msg.get("id")
        if not self._valid_id(rid):
            kind = "an unsigned integer" if self.futures else "an integer, a string or null"
            conn.enqueue(
                _dumps({"code": 2, "msg": f"Invalid request: request ID must be {kind}"}), "reply"
            )
            return
        method = msg.get("method")
        params = msg.get("params", [])
        if method not in _METHODS:
            conn.enqueue(
                _dumps(
                    {
                        "code": 2,
                        "msg": f"Invalid request: unknown variant {method!r}, expected one of "
                        + ", ".join(_METHODS),
                    }
                ),
                "reply",
            )
            return
        if not isinstance(params, list):
            conn.enqueue(
                _dumps({"code": 2, "msg": "Invalid request: params must be a list"}), "reply"
            )
            return
        session: BinanceSession = conn.session
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not all(isinstance(p, str) and p for p in params):
                conn.enqueue(
                    _dumps({"code": 2, "msg": "Invalid request: stream names must be strings"}),
                    "reply",
                )
                return
            if method == "SUBSCRIBE":
                self._subscribe(conn, params)
            else:
                self._unsubscribe(conn, params)
            result: Any = None
        elif method == "LIST_SUBSCRIPTIONS":
            result = list(session.streams)
        else:
            if not params or params[0] != "combined":
                if params and not isinstance(params[0], str):
                    err = {"code": 2, "msg": "Invalid request: property name must be a string"}
                else:
                    err = {"code": 0, "msg": "Unknown property"}
                conn.enqueue(_dumps(err), "reply")
                return
            if method == "GET_PROPERTY":
                result = session.combined
            else:
                if len(params) != 2 or not isinstance(params[1], bool):
                    err = {"code": 1, "msg": "Invalid value type: expected Boolean"}
                    conn.enqueue(_dumps(err), "reply")
                    return
                session.combined = params[1]
                result = None
        conn.enqueue(_dumps({"result": result, "id": rid}), "reply")

    def _valid_id(self, rid: object) -> bool:
        if isinstance(rid, bool):
            return False
        if self.futures:
            return isinstance(rid, int) and rid >= 0
        if rid is None or isinstance(rid, int):
            return True
        return isinstance(rid, str) and len(rid) <= 36 and rid.isalnum()

    # -- feed -----------------------------------------------------------------------------------

    def publish(self, text: str, due_ns: int | None = None) -> None:
        """Send a combined frame ``{"stream":..,"data":..}`` to the connections it is for
        (``due_ns``: its receive time, for the log; default now)."""
        name = stream_of(text)
        if name is None:
            targets: tuple[Conn, ...] = tuple(self.conns.values())
        else:
            subscribed = self._by_stream.get(name)
            if not subscribed:
                return
            targets = tuple(subscribed)
        payload: str | None = None
        for conn in targets:
            if name is None or conn.session.combined:
                conn.enqueue(text, "data", due_ns)
            else:
                if payload is None:
                    payload = payload_of(text)
                conn.enqueue(payload, "data", due_ns)


def _unique(items: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for s in items:
        seen.setdefault(s, None)
    return list(seen)
