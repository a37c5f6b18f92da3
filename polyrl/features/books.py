"""Polymarket token books for the FeatureEngine: levels as dicts, top-L as arrays (pure).

One :class:`BookSide`-pair per token, rebuilt exactly as
:mod:`polyrl.sources.polymarket.book` documents (a ``book`` replaces both sides; a
``price_change`` sets a level's aggregate size, 0 deletes it; nothing is patched across a
gap: a token is *synced* only from a full ``book`` received after the last disconnect).
The hot operation is "top L levels as arrays" at every decision tick; it is cached until
the token changes.
"""

from __future__ import annotations

import numpy as np


class TokenLevels:
    """Bids and asks of one token: price -> size (both float64)."""

    __slots__ = ("bids", "asks", "synced", "_top", "_top_l")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.synced = False
        self._top: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._top_l = 0

    def replace(
        self, bid_px: list[float], bid_sz: list[float], ask_px: list[float], ask_sz: list[float]
    ) -> None:
        """A full book: both sides replaced; the token is synced."""
        self.bids = {p: s for p, s in zip(bid_px, bid_sz, strict=True) if s > 0}
        self.asks = {p: s for p, s in zip(ask_px, ask_sz, strict=True) if s > 0}
        self.synced = True
        self._top = None

    def set_level(self, side_is_bid: bool, price: float, size: float) -> None:
        """One level's new aggregate size (0 removes it); ignored while not synced."""
        if not self.synced:
            return
        levels = self.bids if side_is_bid else self.asks
        if size > 0:
            levels[price] = size
        else:
            levels.pop(price, None)
        self._top = None

    def unsync(self) -> None:
        """A gap: forget the levels until the next full book."""
        self.bids = {}
        self.asks = {}
        self.synced = False
        self._top = None

    def top(self, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(bid_px, bid_size, ask_px, ask_size), each [depth], best first; NaN/0 padded."""
        if self._top is not None and self._top_l == depth:
            return self._top
        bp = np.full(depth, np.nan)
        bs = np.zeros(depth)
        ap = np.full(depth, np.nan)
        as_ = np.zeros(depth)
        if self.bids:
            b = sorted(self.bids.items(), reverse=True)[:depth]
            bp[: len(b)] = [p for p, _ in b]
            bs[: len(b)] = [s for _, s in b]
        if self.asks:
            a = sorted(self.asks.items())[:depth]
            ap[: len(a)] = [p for p, _ in a]
            as_[: len(a)] = [s for _, s in a]
        self._top = (bp, bs, ap, as_)
        self._top_l = depth
        return self._top
