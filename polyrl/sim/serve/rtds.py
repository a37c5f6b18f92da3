"""Loopback Polymarket real-time data socket (RTDS, ``wss://ws-live-data.polymarket.com``).

Protocol (Polymarket's real-time data socket docs): the client sends
``{"action":"subscribe","subscriptions":[{"topic":..,"type":..,"filters":..}]}`` (and
``"action":"unsubscribe"`` with the same entries to stop); text ``PING`` is answered
``PONG``. A feed frame ``{"topic","type","timestamp","payload":{"symbol",..}}`` goes to a
connection when one of its subscriptions has the frame's topic, a type of ``"*"`` (or empty)
or the frame's type, and a filter that admits the symbol: empty; a JSON object
``{"symbol":"btc/usd"}``; or a comma-separated list ``"btcusdt,ethusdt"`` (case-insensitive).

On subscribing, the server first sends, for every topic/symbol it has seen that the new
subscription admits, a ``type:"subscribe"`` message whose ``payload.data`` holds the last
``ServeConfig.rtds_backfill`` ticks ``{timestamp, value}`` (as the live socket backfills).

**Idle rule**: like the CLOB channel, a client silent for ``ServeConfig.rtds_idle_s`` venue
seconds (clients PING every 5 s) is closed with code 1000.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from polyrl.events import NS_PER_MS
from polyrl.sim.serve.ws import Conn, WsServer, text_request

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from polyrl.sim.serve.config import ServeConfig
    from polyrl.sim.serve.feed import SpeedClock


@dataclass(frozen=True, slots=True)
class Subscription:
    """One RTDS subscription entry."""

    topic: str
    type: str
    filters: str

    def admits(self, topic: str, kind: str, symbol: str) -> bool:
        """Whether a frame of ``topic``/``kind`` for ``symbol`` matches."""
        if topic != self.topic:
            return False
        if self.type not in ("", "*", kind) and kind != "subscribe":
            return False
        return filter_admits(self.filters, symbol)


def filter_admits(filters: str, symbol: str) -> bool:
    """Whether an RTDS ``filters`` value lets ``symbol`` through (see the module docstring)."""
    f = filters.strip()
    if not f:
        return True
    sym = symbol.lower()
    if f.startswith("{"):
        try:
            obj = json.loads(f)
        except ValueError:
            return False
        want = obj.get("symbol") if isinstance(obj, dict) else None
        return want is None or str(want).lower() == sym
    return sym in {s.strip().lower() for s in f.split(",")}


@dataclass(slots=True)
class RtdsSession:
    """One connection's subscriptions."""

    subs: list[Subscription] = field(default_factory=list)


def _entry(obj: Any) -> Subscription | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("topic"), str):
        return None
    filters = obj.get("filters", "")
    if isinstance(filters, dict):
        filters = json.dumps(filters)
    return Subscription(obj["topic"], str(obj.get("type", "*") or "*"), str(filters or ""))


class RtdsServer(WsServer):
    """The RTDS socket at ``/`` (see the module docstring)."""

    def __init__(
        self,
        name: str,
        clock: SpeedClock,
        cfg: ServeConfig,
        *,
        sync: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        super().__init__(
            name,
            clock,
            cfg,
            sync=sync,
            idle_timeout_s=cfg.rtds_idle_s,
            fault_seed=cfg.fault_seed + 4,
        )
        self._ticks: dict[tuple[str, str], deque[tuple[Any, Any]]] = {}

    def accepts(self, target: str) -> bool:
        return urlsplit(target).path in ("", "/")

    def on_open(self, conn: Conn) -> None:
        conn.session = RtdsSession()

    async def on_message(self, conn: Conn, text: str) -> None:
        msg = text_request(conn, text)
        if msg is None or not isinstance(msg.get("subscriptions"), list):
            return
        entries = [e for e in map(_entry, msg["subscriptions"]) if e is not None]
        session: RtdsSession = conn.session
        action = msg.get("action")
        if action == "unsubscribe":
            session.subs = [
                s
                for s in session.subs
                if not any(
                    s.topic == e.topic and e.type in ("*", s.type) and e.filters in ("", s.filters)
                    for e in entries
                )
            ]
        elif action == "subscribe":
            now = await self.sync()  # the backfill holds exactly the ticks due by now
            for e in entries:
                if e not in session.subs:
                    session.subs.append(e)
                    self._backfill(conn, e, now)

    def _backfill(self, conn: Conn, sub: Subscription, now_ns: int) -> None:
        if self.cfg.rtds_backfill <= 0:
            return
        now_ms = now_ns // NS_PER_MS
        for (topic, symbol), ticks in self._ticks.items():
            if ticks and sub.admits(topic, "update", symbol):
                data = [{"timestamp": t, "value": v} for t, v in ticks]
                msg = {
                    "topic": topic,
                    "type": "subscribe",
                    "timestamp": now_ms,
                    "payload": {"symbol": symbol, "data": data},
                }
                conn.enqueue(json.dumps(msg, separators=(",", ":")), "snapshot", now_ns)

    def publish(self, text: str, due_ns: int | None = None) -> None:
        """Send a feed frame to the connections whose subscriptions admit it (``due_ns``: its
        receive time; default now)."""
        try:
            obj = json.loads(text)
            topic, kind = str(obj["topic"]), str(obj.get("type", ""))
            payload = obj.get("payload") or {}
            symbol = str(payload.get("symbol", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            for conn in self.conns.values():  # garbage reaches every subscriber
                if conn.session.subs:
                    conn.enqueue(text, "data", due_ns)
            return
        if kind == "update" and "timestamp" in payload and "value" in payload:
            key = (topic, symbol)
            ring = self._ticks.get(key)
            if ring is None:
                ring = self._ticks[key] = deque(maxlen=max(1, self.cfg.rtds_backfill))
            ring.append((payload["timestamp"], payload["value"]))
        for conn in tuple(self.conns.values()):
            if any(s.admits(topic, kind, symbol) for s in conn.session.subs):
                conn.enqueue(text, "data", due_ns)
