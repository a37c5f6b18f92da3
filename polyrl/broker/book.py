"""Order books as the broker sees them, and the level-by-level taker walk (pure numpy).

:class:`Books` holds the Polymarket books of a batch of N markets as two float64 arrays
``px`` and ``size`` of shape [N, 2, 2, L], indexed ``[market, token, side, level]``: token
0 = Up, 1 = Down; side 0 = bids, 1 = asks; level 0 = the best price (bids descending,
asks ascending). A missing level has ``px`` NaN and ``size`` 0. Prices are USDC per share,
sizes are shares.

A level is *usable* when ``px > 0`` and ``size > 0`` (a NaN price never is); the walks skip
unusable levels, so a book whose usable levels are not contiguous from level 0 still fills
at the prices it shows. :meth:`Books.validate` checks the full layout and is off the hot
path (``BrokerConfig.check_books``).

The walks are vectorised over markets with cumulative sums along the level axis; every
total is the last element of a cumulative sum, so a market's numbers are summed in the
same order whether it is stepped alone or in a batch of thousands (bit-identical parity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UP, DOWN = 0, 1
"""Token axis of :class:`Books`: the Up token and the Down token."""
BID, ASK = 0, 1
"""Side axis of :class:`Books`: resting bids and resting asks."""


@dataclass(frozen=True, slots=True)
class Books:
    """Books of N markets: ``px`` and ``size`` float64 [N, 2, 2, L] (see the module doc)."""

    px: np.ndarray
    """Price of each level, USDC per share, NaN where the level is missing."""
    size: np.ndarray
    """Shares resting at each level, 0 where the level is missing."""

    def __post_init__(self) -> None:
        px = np.asarray(self.px, dtype=np.float64)
        size = np.asarray(self.size, dtype=np.float64)
        if px.ndim != 4 or px.shape[1:3] != (2, 2) or px.shape[3] < 1:
            raise ValueError(f"books.px must have shape [N, 2, 2, L>=1], got {px.shape}")
        if size.shape != px.shape:
            raise ValueError(f"books.size shape {size.shape} differs from books.px {px.shape}")
        object.__setattr__(self, "px", px)
        object.__setattr__(self, "size", size)

    @property
    def n(self) -> int:
        """Number of markets N."""
        return int(self.px.shape[0])

    @property
    def levels(self) -> int:
        """Levels per side L."""
        return int(self.px.shape[3])

    @classmethod
    def empty(cls, n: int, levels: int) -> Books:
        """N markets with no levels at all (px NaN, size 0)."""
        return cls(px=np.full((n, 2, 2, levels), np.nan), size=np.zeros((n, 2, 2, levels)))

    def select(self, idx: np.ndarray | slice | list[int]) -> Books:
        """The books of a subset of markets (fancy or slice index on the market axis)."""
        return Books(px=self.px[idx], size=self.size[idx])

    def validate(self) -> None:
        """Raise ``ValueError`` naming market, token and side if the layout is broken.

        Checks: sizes finite and >= 0; a level with size > 0 has a price in (0, 1); levels
        with size > 0 are contiguous from level 0; bids strictly descending, asks strictly
        ascending over those levels.
        """
        px, size = self.px, self.size
        where = _first_bad(~np.isfinite(size) | (size < 0))
        if where:
            raise ValueError(f"books.size must be finite and >= 0 at {where}")
        live = size > 0
        where = _first_bad(live & ~((px > 0) & (px < 1)))
        if where:
            raise ValueError(f"books.px must be in (0, 1) where size > 0, at {where}")
        where = _first_bad(live[..., 1:] & ~live[..., :-1])
        if where:
            raise ValueError(f"books levels must be contiguous from level 0, gap at {where}")
        step = np.diff(px, axis=-1)
        both = live[..., 1:] & live[..., :-1]
        bad = np.zeros(step.shape, dtype=bool)
        bad[:, :, BID] = both[:, :, BID] & ~(step[:, :, BID] < 0)
        bad[:, :, ASK] = both[:, :, ASK] & ~(step[:, :, ASK] > 0)
        where = _first_bad(bad)
        if where:
            raise ValueError(
                f"books must have bids strictly descending and asks strictly ascending, at {where}"
            )


def _first_bad(bad: np.ndarray) -> str:
    """'' when nothing is bad, else 'market i, token t, side s, level l' of the first hit."""
    if not bad.any():
        return ""
    i, t, s, lvl = (int(v) for v in np.argwhere(bad)[0])
    token, side = ("Up" if t == UP else "Down"), ("bid" if s == BID else "ask")
    return f"market {i}, token {token}, side {side}, level {lvl}"


def best_price(px: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best usable price of one side: ``px``/``size`` [M, L] -> (price [M], has [M]).

    ``price`` is NaN where the side has no usable level.
    """
    top, top_size = px[:, 0], size[:, 0]
    has = (top > 0) & (top_size > 0)
    price = np.where(has, top, np.nan)
    if has.all():
        return price, has
    # Level 0 is normally the best; only rows where it is unusable need the search.
    rest = np.flatnonzero(~has)
    usable = (px[rest] > 0) & (size[rest] > 0)
    first = np.argmax(usable, axis=1)
    found = usable[np.arange(rest.size), first]
    has[rest] = found
    price[rest] = np.where(found, px[rest, first], np.nan)
    return price, has


@dataclass(frozen=True, slots=True)
class Walk:
    """Result of walking one side of M books level by level.

    Per-level arrays are [M, L]; totals are [M]. ``price`` is the level price where the level
    is usable and 0 elsewhere (so ``shares * price`` is NaN-free).
    """

    price: np.ndarray
    """Level price, USDC per share (0 where unusable), [M, L]."""
    shares: np.ndarray
    """Shares matched at each level, [M, L]."""
    notional: np.ndarray
    """USDC exchanged at each level (shares * price), [M, L]."""
    total_shares: np.ndarray
    """Shares matched over all levels, [M]."""
    total_notional: np.ndarray
    """USDC exchanged over all levels, [M]."""
    levels: np.ndarray
    """Levels with a non-zero match, int32 [M]."""
    complete: np.ndarray
    """True where the book had enough depth for the whole order, bool [M]."""

    @classmethod
    def of(
        cls, price: np.ndarray, shares: np.ndarray, notional: np.ndarray, complete: np.ndarray
    ) -> Walk:
        """A walk from its per-level matches (the totals and level counts follow)."""
        return cls(
            price=price,
            shares=shares,
            notional=notional,
            total_shares=np.cumsum(shares, axis=1)[:, -1],
            total_notional=np.cumsum(notional, axis=1)[:, -1],
            levels=np.count_nonzero(shares > 0, axis=1).astype(np.int32),
            complete=complete,
        )


def _prev_cum(cum: np.ndarray) -> np.ndarray:
    """Cumulative sum *before* each level: [0, cum[0], ..., cum[L-2]] per row."""
    prev = np.zeros_like(cum)
    prev[:, 1:] = cum[:, :-1]
    return prev


def walk_buy(px: np.ndarray, size: np.ndarray, budget: np.ndarray) -> Walk:
    """Spend ``budget`` USDC [M] on the asks ``px``/``size`` [M, L], best level first.

    Each level is taken whole while the remaining budget covers it; the level where the
    budget runs out is taken for ``remaining / price`` shares. If the book's depth costs
    less than the budget the walk takes everything (``complete`` False: fill and kill).
    """
    usable = (px > 0) & (size > 0)
    p = np.where(usable, px, 0.0)
    s = np.where(usable, size, 0.0)
    cost = p * s
    cum = np.cumsum(cost, axis=1)
    left = budget[:, None] - _prev_cum(cum)
    full = left >= cost
    part = ~full & (left > 0)
    p_safe = np.where(usable, px, 1.0)
    shares = np.where(full, s, np.where(part, left / p_safe, 0.0))
    notional = np.where(full, cost, np.where(part, left, 0.0))
    return Walk.of(p, shares, notional, cum[:, -1] >= budget)


def walk_sell(px: np.ndarray, size: np.ndarray, quantity: np.ndarray) -> Walk:
    """Sell ``quantity`` shares [M] into the bids ``px``/``size`` [M, L], best level first.

    If the bids hold fewer shares than ``quantity`` the walk takes all of them
    (``complete`` False; the caller keeps the rest of the position).
    """
    usable = (px > 0) & (size > 0)
    p = np.where(usable, px, 0.0)
    s = np.where(usable, size, 0.0)
    cum = np.cumsum(s, axis=1)
    left = quantity[:, None] - _prev_cum(cum)
    full = left >= s
    part = ~full & (left > 0)
    shares = np.where(full, s, np.where(part, left, 0.0))
    notional = shares * p
    return Walk.of(p, shares, notional, cum[:, -1] >= quantity)
