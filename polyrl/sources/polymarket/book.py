"""Order-book state of one Polymarket token, rebuilt from parsed events (pure).

A :class:`TokenBook` holds the price levels of one token (one outcome of one market):

* a ``polymarket.book`` event replaces both sides whole (the venue sends full books on
  subscribe and after trades);
* a ``polymarket.price_change`` row sets one level to its new *aggregate* size, and a size of
  0 deletes it (``BUY`` rows are bid levels, ``SELL`` rows ask levels);
* ``polymarket.trade`` rows do not move levels by themselves: a trade arrives as
  price_change deltas and/or a fresh book.

Invariants: every stored size is > 0; :meth:`bids` is sorted by price descending and
:meth:`asks` ascending (best first). Prices are the float64 values the parser produced from
the venue's decimal strings, so the same wire price always hits the same level.

The book is *synced* from its first ``book`` until :meth:`reset` (call that on a gap or a
reconnect: the venue has no sequence numbers, so only a fresh ``book`` re-synchronises).
Level updates that arrive while not synced are ignored, since the next ``book`` replaces
the sides anyway. A ``tick_size_change`` is left to the caller (some clients drop the book
until the next snapshot; levels themselves stay valid prices).

Entries' ``best_bid``/``best_ask`` are not used: within a burst sharing one timestamp the
first entry already reports the post-burst BBO before the level removals arrive, so the
book is the truth and the reported BBO matches it only after the last entry of the burst.
"""

from __future__ import annotations

import numpy as np

from polyrl.events import Event

BOOK_STREAM = "polymarket.book"
PRICE_CHANGE_STREAM = "polymarket.price_change"


class TokenBook:
    """Level-2 book of one token: price (USDC) -> size (shares), both float64."""

    __slots__ = ("token", "synced", "exch_ns", "hash", "_bids", "_asks", "_sorted", "_top")

    def __init__(self, token: str) -> None:
        self.token = token
        self.synced = False
        self.exch_ns: int | None = None
        """Venue time of the last event applied, ns."""
        self.hash: str | None = None
        """Hash of the last full book (opaque)."""
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        self._sorted: tuple[list[tuple[float, float]], list[tuple[float, float]]] | None = None
        self._top: tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None = None

    def _check(self, event: Event, stream: str) -> None:
        if event.stream != stream:
            raise ValueError(f"TokenBook: expected a {stream} event, got {event.stream}")
        if event.key != self.token:
            raise ValueError(f"TokenBook for {self.token[:12]}...: event is for {event.key[:12]}")

    def apply_book(self, event: Event) -> None:
        """Replace both sides with a ``polymarket.book`` event's levels; the book is synced."""
        self._check(event, BOOK_STREAM)
        f = event.fields
        self.replace(f["bid_px"], f["bid_size"], f["ask_px"], f["ask_size"])
        self.exch_ns = event.exch_ns
        self.hash = f.get("hash")

    def replace(
        self,
        bid_px: list[float],
        bid_size: list[float],
        ask_px: list[float],
        ask_size: list[float],
    ) -> None:
        """Both sides replaced by a full book's levels (columns); the book is synced."""
        # Zero-size levels mean "no level" here as in price_change, so they are not stored.
        self._bids = {p: s for p, s in zip(bid_px, bid_size, strict=True) if s > 0}
        self._asks = {p: s for p, s in zip(ask_px, ask_size, strict=True) if s > 0}
        self._changed()
        self.synced = True

    def apply_price_change(self, event: Event) -> bool:
        """Set (or with size 0 delete) one level; False when ignored because not synced."""
        self._check(event, PRICE_CHANGE_STREAM)
        f = event.fields
        side = f["side"]
        if side not in ("BUY", "SELL"):
            raise ValueError(f"TokenBook: price_change side must be BUY or SELL, got {side!r}")
        applied = self.set_level(side == "BUY", f["price"], f["size"])
        if applied:
            self.exch_ns = event.exch_ns
        return applied

    def set_level(self, is_bid: bool, price: float, size: float) -> bool:
        """One level's new aggregate size (0 deletes it); False when ignored (not synced)."""
        if not self.synced:
            return False
        levels = self._bids if is_bid else self._asks
        if size > 0:
            levels[price] = size
        else:
            levels.pop(price, None)
        self._changed()
        return True

    def _changed(self) -> None:
        self._sorted = None
        self._top = None

    def apply(self, event: Event) -> bool:
        """Apply a book or price_change event of this token; other streams are ignored.

        Returns True when the event changed the book.
        """
        if event.stream == BOOK_STREAM:
            self.apply_book(event)
            return True
        if event.stream == PRICE_CHANGE_STREAM:
            return self.apply_price_change(event)
        return False

    def reset(self) -> None:
        """Forget all levels and wait for the next full book (after a gap or reconnect)."""
        self._bids = {}
        self._asks = {}
        self._changed()
        self.synced = False

    def _sides(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        if self._sorted is None:
            self._sorted = (
                sorted(self._bids.items(), reverse=True),
                sorted(self._asks.items()),
            )
        return self._sorted

    def bids(self) -> list[tuple[float, float]]:
        """Bid levels ``(price, size)``, highest price first (a new list)."""
        return list(self._sides()[0])

    def asks(self) -> list[tuple[float, float]]:
        """Ask levels ``(price, size)``, lowest price first (a new list)."""
        return list(self._sides()[1])

    def best_bid(self) -> float | None:
        """Highest bid price, or None when there are no bids."""
        b = self._sides()[0]
        return b[0][0] if b else None

    def best_ask(self) -> float | None:
        """Lowest ask price, or None when there are no asks."""
        a = self._sides()[1]
        return a[0][0] if a else None

    def top(self, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(bid_px, bid_size, ask_px, ask_size)`` float64 [depth] each, best first, padded
        with NaN prices and 0 sizes; cached until the book changes (the decision loop asks
        at every tick)."""
        if self._top is not None and self._top[0] == depth:
            return self._top[1]
        bids, asks = self._sides()
        bp = np.full(depth, np.nan)
        bs = np.zeros(depth)
        ap = np.full(depth, np.nan)
        as_ = np.zeros(depth)
        b, a = bids[:depth], asks[:depth]
        if b:
            bp[: len(b)] = [p for p, _ in b]
            bs[: len(b)] = [q for _, q in b]
        if a:
            ap[: len(a)] = [p for p, _ in a]
            as_[: len(a)] = [q for _, q in a]
        out = (bp, bs, ap, as_)
        self._top = (depth, out)
        return out
