"""A Polymarket Up/Down market as the CLOB writes it: its identity (:class:`MarketIds`), the
price grid (thousandths, on a 0.01 or 0.001 tick) and the wire text of prices and sizes.

Shared by the book simulation (:mod:`polyrl.sim.book`) and the Gamma side
(:mod:`polyrl.sim.polymarket`, which builds the ids).
"""

from __future__ import annotations

from dataclasses import dataclass

from polyrl.events import WINDOW_NS
from polyrl.sim.numeric import trim_decimal

PX: list[str] = [trim_decimal(p, 3) for p in range(1001)]
"""Wire text of each price in thousandths: ``PX[500] == "0.5"``, ``PX[301] == "0.301"``."""
COARSE, FINE = 10, 1
"""Tick sizes in thousandths (0.01 and 0.001)."""
TICK_TEXT = {COARSE: "0.01", FINE: "0.001"}


def size_text(s: int) -> str:
    """Hundredths of a share -> wire text (``330000 -> "3300"``, ``7028120 -> "70281.2"``)."""
    if s % 100 == 0:
        return str(s // 100)
    return trim_decimal(s, 2)


def small_tick(best_bid: int, best_ask: int) -> bool:
    """Whether an Up book with this touch (thousandths) trades on the 0.001 tick."""
    return best_bid > 960 or best_ask < 40


@dataclass(frozen=True, slots=True)
class MarketIds:
    """Identity of one market (all text as the venue writes it)."""

    asset: str
    asset_index: int
    window_start_ns: int
    slug: str
    condition_id: str
    up_token: str
    down_token: str
    market_id: str
    question_id: str
    question: str

    @property
    def window_end_ns(self) -> int:
        """Window end, ns."""
        return self.window_start_ns + WINDOW_NS
