"""What the venue parsers and the frame dispatcher share: the token map and the error row.

The floor under the parsers: :mod:`polyrl.sources.parse` (the dispatcher) imports the venue
parsers (``sources/binance/``, ``sources/polymarket/``), and they import only this module
and :mod:`polyrl.sources.jsontext` from ``sources/``, so nothing imports in a circle.

- :data:`TokenMap`: the one piece of state parsing needs, which asset and outcome each
  Polymarket token belongs to (the dispatcher learns it from ``polymarket.market`` rows and
  hands it to the CLOB parsers);
- :func:`parse_error_event`: the ``recorder.status`` ``parse_error`` row a parser emits for a
  bad *part* of an otherwise good frame (one bad element of a JSON-array push).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polyrl.events import Event, status_event

TokenMap = Mapping[str, tuple[str, str]]
"""token id -> (asset, outcome) where outcome is ``Up`` or ``Down``."""


def parse_error_event(channel: str, recv_ns: int, message: str, raw: str, **kw: Any) -> Event:
    """A ``parse_error`` status event for a bad part of a frame (venue parsers use this)."""
    return status_event(
        "parse_error", recv_ns, channel=channel, message=message[:500], raw=raw, **kw
    )
