"""Loopback PolyBolt socket (``wss://ws-live-v2.polymarket.com/ws``), RTDS's successor.

Protocol (Polymarket's live-data docs), as far as polyrl uses it:

- ``{"op":"auth","rid":..,"auth":{"apiKey","secret","passphrase"}}``: the right credentials
  (``ServeConfig.polybolt_*``) are answered ``{"op":"authed","rid":..}``; a presented but
  wrong credential closes the connection with code 4001; an auth op without an ``auth``
  object gets an error acknowledgement (the connection stays open). A connection that sends
  more than 8 auth ops is closed 4008.
- ``{"op":"subscribe","rid":..,"subscriptions":[{"channel","filter"}]}``: before auth every
  entry gets ``{"op":"error","code":"auth_required","channel":..}``; after it, each new
  ``price.crypto.twap`` subscription (filter ``{"symbol":"btcusd","window_seconds":60}``)
  gets ``{"op":"subscribed","channel":..}`` and one snapshot envelope holding the last two
  minutes of ticks (an empty ``data`` list when there are none); repeating one gets the
  acknowledgement only; other windows or channels get an error acknowledgement; more than 64
  active subscriptions close 4008.
- ``{"op":"ping"}`` is answered ``{"op":"pong"}``.

Envelopes: ``{"v":1,"channel","seq","ts","snapshot"?,"payload"}``; ``seq`` counts per
connection and channel from 1, snapshots included. A live TWAP payload is ``{symbol,
timestamp, value, full_accuracy_value, window_seconds}`` with the exact decimal string (not
RTDS's E18 integer).

Content: the feed's RTDS ``crypto_prices_twap_sixty`` updates (the simulator's 60 s TWAP
mode, or a recording's) are re-published here as ``price.crypto.twap`` (``btc/usd`` ->
``btcusd``, ``ts`` = the RTDS server time). The server pings every ``polybolt_ping_s`` venue
seconds (25 s) and cuts a connection that missed two pongs. Faults (drop, stall, refuse,
malformed) are the shared ones of :class:`~polyrl.sim.serve.ws.WsServer`; :meth:`drain`
closes every connection 4003.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from polyrl.events import NS_PER_MS
from polyrl.sim.serve.ws import Conn, WsServer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from polyrl.sim.serve.config import ServeConfig
    from polyrl.sim.serve.feed import SpeedClock
    from polyrl.sim.serve.log import CloseReason

TWAP_CHANNEL = "price.crypto.twap"
RTDS_TWAP60 = "crypto_prices_twap_sixty"
SNAPSHOT_MS = 120_000
"""A snapshot holds the ticks of the last two minutes."""
MAX_SUBSCRIPTIONS = 64
MAX_AUTH_OPS = 8
CLOSE_AUTH = 4001
CLOSE_DRAIN = 4003
CLOSE_POLICY = 4008


def decimal_of_e18(e18: str) -> str:
    """RTDS's E18 fixed-point integer string as an exact decimal string (18 places)."""
    n = int(e18)
    sign = "-" if n < 0 else ""
    whole, frac = divmod(abs(n), 10**18)
    return f"{sign}{whole}.{frac:018d}"


@dataclass(slots=True)
class PolyBoltSession:
    """One connection's state."""

    authed: bool = False
    auth_ops: int = 0
    subs: set[tuple[str, str, int]] = field(default_factory=set)
    """(channel, symbol, window_seconds)."""
    seq: dict[str, int] = field(default_factory=dict)

    def next_seq(self, channel: str) -> int:
        self.seq[channel] = self.seq.get(channel, 0) + 1
        return self.seq[channel]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


class PolyBoltServer(WsServer):
    """The PolyBolt socket at ``/ws`` (see the module docstring)."""

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
            ping_interval_s=cfg.polybolt_ping_s,
            pong_timeout_s=2 * cfg.polybolt_ping_s,
            fault_seed=cfg.fault_seed + 5,
        )
        self._ticks: dict[str, deque[dict[str, Any]]] = {}
        self.closes: list[tuple[int, int]] = []
        """(connection id, close code) of every connection this server closed on purpose."""

    def drain(self) -> int:
        """Close every open connection with 4003 (server draining), as a deploy does; returns
        how many."""
        conns = list(self.conns.values())
        for conn in conns:
            self._close_with(conn, CLOSE_DRAIN, "server draining")
        return len(conns)

    def accepts(self, target: str) -> bool:
        return urlsplit(target).path == "/ws"

    def on_open(self, conn: Conn) -> None:
        conn.session = PolyBoltSession()

    def _reply(self, conn: Conn, obj: dict[str, Any], rid: Any) -> None:
        if rid is not None:
            obj["rid"] = rid
        conn.enqueue(_dumps(obj), "reply")

    def _close_with(self, conn: Conn, code: int, reason: str) -> None:
        self.closes.append((conn.log.conn_id, code))
        reasons: dict[int, CloseReason] = {CLOSE_AUTH: "auth_failed", CLOSE_DRAIN: "server_stop"}
        self._finish(conn, reasons.get(code, "policy_violation"))
        task = asyncio.get_running_loop().create_task(self._close(conn, code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def on_message(self, conn: Conn, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
            self._reply(conn, {"op": "error", "code": "bad_request"}, None)
            return
        session: PolyBoltSession = conn.session
        op, rid = msg["op"], msg.get("rid")
        if op == "ping":
            self._reply(conn, {"op": "pong"}, rid)
        elif op == "auth":
            session.auth_ops += 1
            if session.auth_ops > MAX_AUTH_OPS:
                self._close_with(conn, CLOSE_POLICY, "too many auth attempts")
                return
            auth = msg.get("auth")
            if not isinstance(auth, dict):
                self._reply(conn, {"op": "error", "code": "bad_request"}, rid)
                return
            cfg = self.cfg
            want = (cfg.polybolt_api_key, cfg.polybolt_secret, cfg.polybolt_passphrase)
            got = (auth.get("apiKey"), auth.get("secret"), auth.get("passphrase"))
            if got != want:
                self._close_with(conn, CLOSE_AUTH, "authentication failed")
                return
            session.authed = True
            self._reply(conn, {"op": "authed"}, rid)
        elif op == "subscribe":
            await self._subscribe(conn, session, msg, rid)
        elif op == "unsubscribe":
            for ch, sym, win in self._entries(msg):
                session.subs.discard((ch, sym, win))
                self._reply(conn, {"op": "unsubscribed", "channel": ch}, rid)
        else:
            self._reply(conn, {"op": "error", "code": "unknown_op"}, rid)

    @staticmethod
    def _entries(msg: dict[str, Any]) -> list[tuple[str, str, int]]:
        subs = msg.get("subscriptions")
        if not isinstance(subs, list):
            subs = [{"channel": msg.get("channel"), "filter": msg.get("filter")}]
        out = []
        for e in subs:
            if not isinstance(e, dict) or not isinstance(e.get("channel"), str):
                continue
            raw = e.get("filter")
            f = raw if isinstance(raw, dict) else {}
            win = f.get("window_seconds")
            out.append((e["channel"], str(f.get("symbol", "")), win if isinstance(win, int) else 0))
        return out

    async def _subscribe(
        self, conn: Conn, session: PolyBoltSession, msg: dict[str, Any], rid: Any
    ) -> None:
        entries = self._entries(msg)
        if not session.authed:
            for ch, _, _ in entries:
                self._reply(conn, {"op": "error", "code": "auth_required", "channel": ch}, rid)
            return
        if len(session.subs | set(entries)) > MAX_SUBSCRIPTIONS:
            self._close_with(conn, CLOSE_POLICY, "too many subscriptions")
            return
        now = await self.sync()  # the snapshot holds exactly the ticks due by now
        for entry in entries:
            ch, sym, win = entry
            if ch != TWAP_CHANNEL or win != 60 or not sym:
                self._reply(conn, {"op": "error", "code": "invalid_filter", "channel": ch}, rid)
                continue
            self._reply(conn, {"op": "subscribed", "channel": ch}, rid)
            if entry in session.subs:
                continue  # a repeat gets the acknowledgement, not a new snapshot
            session.subs.add(entry)
            data = [
                {k: t[k] for k in ("timestamp", "value", "full_accuracy_value")}
                for t in self._ticks.get(sym, ())
            ]
            env = {
                "v": 1,
                "channel": ch,
                "seq": session.next_seq(ch),
                "ts": now // NS_PER_MS,
                "snapshot": True,
                "payload": {"symbol": sym, "window_seconds": 60, "data": data},
            }
            conn.enqueue(_dumps(env), "snapshot", now)

    def publish(self, text: str, due_ns: int | None = None) -> None:
        """Re-publish an RTDS ``crypto_prices_twap_sixty`` update as a ``price.crypto.twap``
        envelope to the connections subscribed to its symbol (other frames are not
        PolyBolt's and are ignored)."""
        try:
            obj = json.loads(text)
            if obj.get("topic") != RTDS_TWAP60 or obj.get("type") != "update":
                return
            p = obj["payload"]
            sym = str(p["symbol"]).replace("/", "").lower()
            full = p.get("full_accuracy_value")
            payload = {
                "symbol": sym,
                "timestamp": int(p["timestamp"]),
                "value": p["value"],
                "full_accuracy_value": decimal_of_e18(full) if full else repr(p["value"]),
                "window_seconds": 60,
            }
            ts = int(obj.get("timestamp") or p["timestamp"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        ring = self._ticks.get(sym)
        if ring is None:
            ring = self._ticks[sym] = deque()
        ring.append(payload)
        while ring and ring[0]["timestamp"] < payload["timestamp"] - SNAPSHOT_MS:
            ring.popleft()
        key = (TWAP_CHANNEL, sym, 60)
        for conn in tuple(self.conns.values()):
            session: PolyBoltSession = conn.session
            if key in session.subs:
                env = {
                    "v": 1,
                    "channel": TWAP_CHANNEL,
                    "seq": session.next_seq(TWAP_CHANNEL),
                    "ts": ts,
                    "payload": payload,
                }
                conn.enqueue(_dumps(env), "data", due_ns)
