"""The Polymarket books the loopback venues serve: :class:`BookStore` keeps every token's
:class:`WireBook` as the feed has it (see :mod:`polyrl.sim.serve.polymarket` for the
rules and the wire order), with the venue's own price and size texts.

The store floor of :mod:`polyrl.sim.serve`: the content sources and the CLOB channel read
it; it imports neither.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from polyrl.events import NS_PER_MS


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _notional(price: object, size: object) -> float | None:
    """price x size of a trade from its wire texts; None unless both are finite numbers >= 0,
    so a malformed trade (no price, "NaN", "inf") never turns a market's volume into NaN."""
    p, q = _amount(price), _amount(size)
    return p * q if p is not None and q is not None else None


def _amount(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        return None
    try:
        x = float(v)
    except ValueError:
        return None
    return x if math.isfinite(x) and x >= 0 else None


class WireBook:
    """One token's book with the venue's own price and size texts."""

    __slots__ = ("token", "market", "bids", "asks", "tick", "last_trade", "synced", "updated_ns")

    def __init__(self, token: str) -> None:
        self.token = token
        self.market = ""
        self.bids: dict[float, tuple[str, str]] = {}
        """price -> (price text, size text); sizes > 0 only."""
        self.asks: dict[float, tuple[str, str]] = {}
        self.tick = "0.01"
        self.last_trade = ""
        """Last trade price text ("" before the first trade)."""
        self.synced = False
        """True once a full book has been applied."""
        self.updated_ns = 0

    @staticmethod
    def _side(levels: object) -> dict[float, tuple[str, str]]:
        out: dict[float, tuple[str, str]] = {}
        if not isinstance(levels, list):
            return out
        for lv in levels:
            if not isinstance(lv, dict):
                continue
            p, s = str(lv.get("price")), str(lv.get("size"))
            try:
                if float(s) > 0:
                    out[float(p)] = (p, s)
            except ValueError:
                continue
        return out

    def set_book(self, obj: dict[str, Any]) -> None:
        """Replace both sides with a ``book`` event's levels."""
        self.market = str(obj.get("market", self.market))
        self.bids = self._side(obj.get("bids"))
        self.asks = self._side(obj.get("asks"))
        if obj.get("tick_size"):
            self.tick = str(obj["tick_size"])
        if obj.get("last_trade_price"):
            self.last_trade = str(obj["last_trade_price"])
        self.synced = True

    def set_level(self, side: str, price: str, size: str) -> None:
        """Set one level (``BUY`` = bid, ``SELL`` = ask) to ``size``; ``"0"`` deletes."""
        if not self.synced:
            return
        levels = self.bids if side == "BUY" else self.asks if side == "SELL" else None
        if levels is None:
            return
        try:
            p, s = float(price), float(size)
        except ValueError:
            return
        if s > 0:
            levels[p] = (price, size)
        else:
            levels.pop(p, None)

    def touch(self) -> tuple[float, float] | None:
        """(best bid, best ask) as floats, or None while a side is empty."""
        if not self.bids or not self.asks:
            return None
        return max(self.bids), min(self.asks)

    def _levels(self) -> tuple[str, str]:
        bids = ",".join(
            f'{{"price":{_q(p)},"size":{_q(s)}}}' for _, (p, s) in sorted(self.bids.items())
        )
        asks = ",".join(
            f'{{"price":{_q(p)},"size":{_q(s)}}}'
            for _, (p, s) in sorted(self.asks.items(), reverse=True)
        )
        return bids, asks

    def _hash(self, bids: str, asks: str) -> str:
        return hashlib.sha1(f"{self.market}|{self.token}|{bids}|{asks}".encode()).hexdigest()

    def render_ws(self, now_ns: int) -> str:
        """The book as the market channel sends it on subscribe."""
        bids, asks = self._levels()
        return (
            f'{{"market":{_q(self.market)},"asset_id":{_q(self.token)},'
            f'"timestamp":"{now_ns // NS_PER_MS}","hash":"{self._hash(bids, asks)}",'
            f'"bids":[{bids}],"asks":[{asks}],"tick_size":{_q(self.tick)},'
            f'"event_type":"book","last_trade_price":{_q(self.last_trade)}}}'
        )

    def render_rest(self, now_ns: int) -> str:
        """The book as CLOB ``GET /book?token_id=`` returns it."""
        bids, asks = self._levels()
        return (
            f'{{"market":{_q(self.market)},"asset_id":{_q(self.token)},'
            f'"timestamp":"{now_ns // NS_PER_MS}","hash":"{self._hash(bids, asks)}",'
            f'"bids":[{bids}],"asks":[{asks}],"min_order_size":"5",'
            f'"tick_size":{_q(self.tick)},"neg_risk":false,'
            f'"last_trade_price":{_q(self.last_trade)}}}'
        )


@dataclass(slots=True)
class BookStore:
    """Every token's :class:`WireBook` and each market's traded volume, fed by CLOB frames."""

    books: dict[str, WireBook] = field(default_factory=dict)
    volume: dict[str, float] = field(default_factory=dict)
    """Traded notional per condition id, USDC (sum of price x size of last_trade_price)."""

    def book(self, token: str) -> WireBook | None:
        """The token's book once it has had a full ``book``, else None."""
        b = self.books.get(token)
        return b if b is not None and b.synced else None

    def apply(self, obj: dict[str, Any], now_ns: int) -> None:
        """Apply one CLOB event object (others than book-changing ones are ignored)."""
        et = obj.get("event_type")
        if et == "book":
            token = str(obj.get("asset_id"))
            b = self.books.get(token)
            if b is None:
                b = self.books[token] = WireBook(token)
            b.set_book(obj)
            b.updated_ns = now_ns
        elif et == "price_change":
            entries = obj.get("price_changes")
            if not isinstance(entries, list):  # legacy forms: one token at the top
                entries = [
                    {**c, "asset_id": obj.get("asset_id")}
                    for c in (obj.get("changes") or [obj])
                    if isinstance(c, dict)
                ]
            for e in entries:
                if not isinstance(e, dict):
                    continue
                b = self.books.get(str(e.get("asset_id")))
                if b is not None:
                    b.set_level(str(e.get("side")), str(e.get("price")), str(e.get("size")))
                    b.updated_ns = now_ns
        elif et == "last_trade_price":
            price = obj.get("price")
            if _amount(price) is None:  # a trade without a usable price changes nothing
                return
            b = self.books.get(str(obj.get("asset_id")))
            if b is not None:
                b.last_trade = str(price)
                b.updated_ns = now_ns
            notional = _notional(price, obj.get("size"))
            if notional is None:
                return
            m = str(obj.get("market"))
            self.volume[m] = self.volume.get(m, 0.0) + notional
        elif et == "tick_size_change":
            b = self.books.get(str(obj.get("asset_id")))
            if b is not None and obj.get("new_tick_size"):
                b.tick = str(obj["new_tick_size"])
                b.updated_ns = now_ns

    def prune(self, before_ns: int) -> None:
        """Forget books not updated since ``before_ns`` (markets long over)."""
        old = [t for t, b in self.books.items() if b.updated_ns < before_ns]
        for t in old:
            del self.books[t]
