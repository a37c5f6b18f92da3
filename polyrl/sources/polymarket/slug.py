"""Up/Down market slugs: ``{asset}-updown-{5m|15m}-{window_start_s}`` -> asset and window.

Gamma names every crypto Up/Down market by such a slug (``btc-updown-15m-1767225600``: the
BTC 15-minute market whose window starts at that epoch second); CLOB WebSocket
``new_market``/``market_resolved`` frames and CLOB ``GET /markets`` responses repeat it
(Polymarket FACTS §1). The parsers read the asset and the window from it, and a slug that is
not one of ours marks a market we do not trade. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from polyrl.events import NS_PER_S

__all__ = ["UpDownSlug", "parse_updown_slug"]

_SLUG_RE = re.compile(r"(btc|eth|sol|xrp)-updown-(5m|15m)-(\d{9,11})")

_INTERVAL_S = {"5m": 300, "15m": 900}


@dataclass(frozen=True, slots=True)
class UpDownSlug:
    """What an Up/Down slug ``{asset}-updown-{5m|15m}-{window_start_s}`` says.

    ``start_ns``/``end_ns`` bound the window (``end_ns = start_ns + interval``), in ns.
    """

    asset: str
    interval_s: int
    start_ns: int

    @property
    def end_ns(self) -> int:
        """Window end, ns (start + interval)."""
        return self.start_ns + self.interval_s * NS_PER_S


def parse_updown_slug(slug: object) -> UpDownSlug | None:
    """An Up/Down crypto slug of one of our assets, or None for any other market."""
    if not isinstance(slug, str):
        return None
    m = _SLUG_RE.fullmatch(slug)
    if m is None:
        return None
    return UpDownSlug(m.group(1), _INTERVAL_S[m.group(2)], int(m.group(3)) * NS_PER_S)
