"""Loopback Polymarket CLOB market channel (``/ws/market``) and the books behind it.

**Books** (:mod:`polyrl.sim.serve.books`). :class:`BookStore` keeps every token's book as
the feed has it (subscribed or not), applying CLOB frames in order with
:class:`polyrl.sources.polymarket.book.TokenBook`'s rules: a ``book`` replaces both sides,
each ``price_changes[]`` entry sets the level of the token it names (size ``"0"`` deletes;
ignored until that token has had a ``book``), ``last_trade_price`` and ``tick_size_change``
update the token's last trade and tick. Level texts are kept exactly as sent, so a rendered
book repeats the venue's strings. A book is rendered in the wire order the venue uses (bids
ascending, asks descending: best last), stamped with the server time in ms and a hash of its
content (SHA-1 of the levels).

**Protocol** (Polymarket's CLOB WebSocket docs, market channel). The client sends
``{"assets_ids":[...],"type":"market","custom_feature_enabled":true}`` after connecting,
then ``{"assets_ids":[...],"operation":"subscribe"|"unsubscribe",...}`` at will. Each
subscription (the first and every later ``subscribe``) is answered, unless it says
``"initial_dump": false``, by one JSON-array frame holding the current ``book`` of every
newly subscribed token that has one (tokens whose book has not started yet get theirs when
the feed sends it). After that the connection gets the feed's frames for its tokens only:
``price_changes[]`` entries of other tokens are removed, elements of array frames are kept
or dropped one by one, and a frame that keeps everything is sent byte for byte.
``best_bid_ask``, ``new_market`` and ``market_resolved`` go only to connections that enabled
``custom_feature_enabled``. Text ``PING`` is answered ``PONG``; other messages are ignored.

**Idle rule.** A connection whose client sends nothing (no subscription, no ``PING``) for
``ServeConfig.clob_idle_s`` venue seconds (default 60 s; clients are told to PING every 10 s)
is closed with code 1000.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from polyrl.errors import ParseError
from polyrl.sim.serve.books import BookStore
from polyrl.sim.serve.ws import Conn, WsServer, text_request
from polyrl.sources.jsontext import iter_json_array

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from polyrl.sim.serve.config import ServeConfig
    from polyrl.sim.serve.feed import SpeedClock

_CUSTOM = frozenset({"best_bid_ask", "new_market", "market_resolved"})


@dataclass(slots=True)
class ClobSession:
    """One connection's tokens and whether it enabled the custom feature events."""

    tokens: set[str] = field(default_factory=set)
    custom: bool = False


class ClobWsServer(WsServer):
    """The CLOB market channel at ``/ws/market`` (see the module docstring)."""

    def __init__(
        self,
        name: str,
        clock: SpeedClock,
        cfg: ServeConfig,
        books: BookStore,
        *,
        sync: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        super().__init__(
            name,
            clock,
            cfg,
            sync=sync,
            idle_timeout_s=cfg.clob_idle_s,
            fault_seed=cfg.fault_seed + 3,
        )
        self.books = books

    def accepts(self, target: str) -> bool:
        return urlsplit(target).path.rstrip("/") == "/ws/market"

    def on_open(self, conn: Conn) -> None:
        conn.session = ClobSession()

    async def on_message(self, conn: Conn, text: str) -> None:
        msg = text_request(conn, text)
        if msg is None:
            return
        ids = msg.get("assets_ids")
        if not isinstance(ids, list) or not all(isinstance(t, str) for t in ids):
            return
        session: ClobSession = conn.session
        if msg.get("custom_feature_enabled") is True:
            session.custom = True
        op = msg.get("operation")
        if op == "unsubscribe":
            session.tokens.difference_update(ids)
            return
        if op == "subscribe" or (op is None and str(msg.get("type", "")).lower() == "market"):
            # Every frame due by `now` is applied before the tokens are added and the books
            # rendered (no await in between): the snapshot is the book as of `now`, and the
            # connection gets exactly the frames due after it.
            now = await self.sync()
            new = [t for t in dict.fromkeys(ids) if t not in session.tokens]
            session.tokens.update(new)
            if msg.get("initial_dump", True) is not False:
                self._dump(conn, new, now)

    def _dump(self, conn: Conn, tokens: Iterable[str], now: int) -> None:
        books = [b.render_ws(now) for t in tokens if (b := self.books.book(t)) is not None]
        if books:
            conn.enqueue("[" + ",".join(books) + "]", "snapshot", now)

    # -- feed -----------------------------------------------------------------------------------

    def publish(self, text: str, due_ns: int | None = None) -> None:
        """Apply a CLOB frame to the books and send each connection its part of it
        (``due_ns``: its receive time; default now)."""
        now = self.clock.now_ns() if due_ns is None else due_ns
        targets = [c for c in self.conns.values() if c.session.tokens]
        is_array = text.lstrip()[:1] == "["
        try:
            if is_array:
                items = iter_json_array(text)
            else:
                obj = json.loads(text)
                items = [(obj, text)]
        except (ParseError, ValueError):
            for conn in targets:  # garbage from the venue reaches everyone listening
                conn.enqueue(text, "data", now)
            return
        for obj, _ in items:
            if isinstance(obj, dict):
                self.books.apply(obj, now)
        for conn in targets:
            out = self._select(conn.session, items, text, is_array)
            if out is not None:
                conn.enqueue(out, "data", now)

    @staticmethod
    def _select(
        session: ClobSession, items: list[tuple[Any, str]], text: str, is_array: bool
    ) -> str | None:
        parts: list[str] = []
        whole = True
        for obj, raw in items:
            part = _element_for(session, obj, raw)
            if part is None:
                whole = False
                continue
            if part is not raw:
                whole = False
            parts.append(part)
        if whole:
            return text
        if not parts:
            return None
        return "[" + ",".join(parts) + "]" if is_array else parts[0]


def _element_for(session: ClobSession, obj: Any, raw: str) -> str | None:
    """What of one event a connection gets: ``raw`` itself, a filtered copy, or None."""
    if not isinstance(obj, dict):
        return raw  # not an event object: passed on as the venue sent it
    et = obj.get("event_type")
    if et in _CUSTOM and not session.custom:
        return None
    tokens = session.tokens
    if et == "new_market":
        return raw
    if et == "market_resolved":
        ids = obj.get("assets_ids")
        return raw if isinstance(ids, list) and tokens.intersection(map(str, ids)) else None
    entries = obj.get("price_changes") if et == "price_change" else None
    if isinstance(entries, list):
        keep = [e for e in entries if isinstance(e, dict) and str(e.get("asset_id")) in tokens]
        if len(keep) == len(entries):
            return raw
        if not keep:
            return None
        return json.dumps({**obj, "price_changes": keep}, separators=(",", ":"), ensure_ascii=False)
    return raw if str(obj.get("asset_id")) in tokens else None
