"""Book builders and random scenarios shared by the broker tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from polyrl.broker import ASK, BID, DOWN, UP, Books, MarketRules

Levels = Sequence[tuple[float, float]]


def make_books(markets: Sequence[dict[str, Levels]], levels: int = 5) -> Books:
    """Books from level lists: each market a dict with any of up_bid, up_ask, down_bid,
    down_ask -> [(price, shares), ...] best first; missing levels are NaN / 0."""
    books = Books.empty(len(markets), levels)
    where = {
        "up_bid": (UP, BID),
        "up_ask": (UP, ASK),
        "down_bid": (DOWN, BID),
        "down_ask": (DOWN, ASK),
    }
    for i, m in enumerate(markets):
        for key, lv in m.items():
            tok, side = where[key]
            for j, (p, s) in enumerate(lv):
                books.px[i, tok, side, j] = p
                books.size[i, tok, side, j] = s
    return books


def random_books(rng: np.random.Generator, n: int, levels: int) -> Books:
    """Plausible random books: Up mid on the 0.01 grid, Down near 1 - mid, 0..L levels per
    side (sometimes empty), sizes with cents, a thin level now and then."""
    books = Books.empty(n, levels)
    for i in range(n):
        mid = int(rng.integers(3, 98))
        for tok in (UP, DOWN):
            centre = mid if tok == UP else 100 - mid + int(rng.integers(-1, 2))
            for side in (BID, ASK):
                k = int(rng.integers(0, levels + 1)) if rng.random() < 0.15 else levels
                start = centre - 1 if side == BID else centre + 1
                step = -1 if side == BID else 1
                ticks = start + step * np.cumsum(rng.integers(1, 3, size=k)) - step
                for j, tick in enumerate(ticks):
                    if not 1 <= tick <= 99:
                        break
                    books.px[i, tok, side, j] = tick / 100
                    books.size[i, tok, side, j] = (
                        round(float(rng.uniform(0.05, 3.0)), 2)
                        if rng.random() < 0.2
                        else round(float(rng.uniform(1.0, 60.0)), 2)
                    )
    return books


def random_rules(rng: np.random.Generator, n: int) -> MarketRules:
    """Mixed fee schedules, some fee-free markets, a spread of minimums."""
    return MarketRules(
        fee_rate=rng.choice([0.0, 0.07, 0.072, 0.25], size=n),
        fee_exponent=rng.choice([1.0, 2.0], size=n),
        fees_enabled=rng.random(n) < 0.8,
        min_size=rng.choice([0.0, 5.0, 20.0], size=n),
        min_notional=rng.choice([0.0, 1.0], size=n),
    )
