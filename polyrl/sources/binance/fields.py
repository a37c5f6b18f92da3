"""What the Binance parsers share: where a venue's rows go, field checks, and the diagnosis.

Every Binance parser (:mod:`~polyrl.sources.binance.parse` for WebSocket frames, the payload
handlers in :mod:`~polyrl.sources.binance.trades`, :mod:`~polyrl.sources.binance.books` and
:mod:`~polyrl.sources.binance.futures`, and :mod:`~polyrl.sources.binance.rest`) reads its
fields through these helpers. The wire conventions they encode (Binance FACTS §1.3, §2.2, §5):

- a symbol arrives lower-case in stream names and upper-case in payloads: ``key`` is the
  upper-case symbol, ``asset`` :func:`polyrl.events.asset_of_symbol` of it;
- times are integers of ms (13 digits) or, for spot with ``timeUnit=MICROSECOND``, µs (16
  digits), told apart by magnitude (:func:`~polyrl.events.venue_time_to_ns`);
- prices and quantities are decimal strings -> float; a book side ``[[price, qty], ...]`` is
  sorted best first (bids descending, asks ascending) whatever order it arrives in.

Each check raises TypeError/ValueError on a wrong type and costs nothing more on a good
field; :func:`diagnose` runs only after a failure, walks the payload kind's :data:`Spec` and
names the first missing or mistyped field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from polyrl.errors import ParseError
from polyrl.events import (
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_WS,
    Event,
    asset_of_symbol,
    venue_time_to_ns,
)

# Exceptions a handler raises on a missing (KeyError) or mistyped field; turned into ParseError.
FIELD_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


@dataclass(frozen=True, slots=True)
class Venue:
    """Where one venue's rows go: its channel and its stream ids."""

    name: str
    futures: bool
    channel: str
    trade: str
    book_ticker: str
    depth: str
    kline: str


SPOT = Venue(
    "spot",
    False,
    CH_BINANCE_SPOT_WS,
    "binance.spot.trade",
    "binance.spot.book_ticker",
    "binance.spot.depth",
    "binance.spot.kline",
)

FUTURES = Venue(
    "futures",
    True,
    CH_BINANCE_FUTURES_WS,
    "binance.futures.trade",
    "binance.futures.book_ticker",
    "binance.futures.depth",
    "binance.futures.kline",
)

VENUES = {"spot": SPOT, "futures": FUTURES}

Handler = Callable[[dict[str, Any], str, int, Venue, "str | None", int], Event]
"""A payload kind's handler: (payload, raw, recv_ns, venue, symbol from the stream name or None,
level count from the stream name or 0) -> its row."""


# ---------------------------------------------------------------------------------------------
# Field helpers. Each raises TypeError/ValueError on a wrong type; the diagnosis names the field.


_SYMBOLS: dict[str, tuple[str, str | None]] = {}

MEMO_MAX = 4096  # bound on memo tables: a few hundred symbols and streams exist in practice


def symbol_key(s: Any) -> tuple[str, str | None]:
    """``(KEY, asset)`` of a symbol as sent (``btcusdt`` or ``BTCUSDT``), memoised."""
    hit = _SYMBOLS.get(s)
    if hit is not None:
        return hit
    if type(s) is not str or not s:
        raise TypeError(f"symbol must be a non-empty string, got {s!r}")
    hit = (s.upper(), asset_of_symbol(s))
    if len(_SYMBOLS) >= MEMO_MAX:
        _SYMBOLS.clear()
    _SYMBOLS[s] = hit
    return hit


def venue_ns(v: Any) -> int:
    """A Binance integer time (ms or µs) -> ns."""
    if type(v) is not int:
        raise TypeError(f"time must be an integer, got {v!r}")
    return venue_time_to_ns(v)


def req_int(v: Any) -> int:
    if type(v) is not int:
        raise TypeError(f"expected an integer, got {v!r}")
    return v


def req_bool(v: Any) -> bool:
    if v is not True and v is not False:
        raise TypeError(f"expected true/false, got {v!r}")
    return v


def req_str(v: Any) -> str:
    if type(v) is not str:
        raise TypeError(f"expected a string, got {v!r}")
    return v


def opt_float(v: Any) -> float | None:
    """A nullable decimal field: absent (None) or sent empty -> None."""
    return None if v is None or v == "" else float(v)


def opt_int(v: Any) -> int | None:
    return None if v is None else req_int(v)


def opt_ns(v: Any) -> int | None:
    return None if v is None else venue_ns(v)


def bid_side(levels: Any) -> tuple[list[float], list[float]]:
    """``[[price, qty], ...]`` -> (prices, qtys), highest price first."""
    pairs = [(float(p), float(q)) for p, q in levels]
    pairs.sort(reverse=True)  # timsort: linear when already in order, as it usually is
    return [p for p, _ in pairs], [q for _, q in pairs]


def ask_side(levels: Any) -> tuple[list[float], list[float]]:
    """``[[price, qty], ...]`` -> (prices, qtys), lowest price first."""
    pairs = [(float(p), float(q)) for p, q in levels]
    pairs.sort()
    return [p for p, _ in pairs], [q for _, q in pairs]


# ---------------------------------------------------------------------------------------------
# Diagnosis of a failed payload: the first missing or mistyped field, by kind.

INT, DEC, BOOL, STR, LEVELS, OBJ = (
    "an integer",
    "a decimal",
    "true/false",
    "a string",
    "levels",
    "an object",
)

Spec = tuple[tuple[str, str, bool], ...]  # (path, expected, optional)
"""A payload kind's fields as (path, expected, optional); a dotted path reaches into an object."""


def required(*fields: tuple[str, str]) -> Spec:
    return tuple((p, t, False) for p, t in fields)


def optional(*fields: tuple[str, str]) -> Spec:
    return tuple((p, t, True) for p, t in fields)


_MISSING = object()


def conforms(value: Any, expected: str, optional: bool) -> bool:
    if optional and (value is None or (expected == DEC and value == "")):
        return True
    if expected == INT:
        return type(value) is int
    if expected == BOOL:
        return value is True or value is False
    if expected == STR:
        return type(value) is str and value != ""
    if expected == OBJ:
        return type(value) is dict
    if expected == DEC:
        return _is_decimal(value)
    if expected == LEVELS:
        return type(value) is list and all(
            type(lv) is list and len(lv) == 2 and _is_decimal(lv[0]) and _is_decimal(lv[1])
            for lv in value
        )
    raise AssertionError(expected)


def _is_decimal(value: Any) -> bool:
    if type(value) not in (str, int, float):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def _lookup(d: Any, path: str) -> Any:
    for part in path.split("."):
        if type(d) is not dict or part not in d:
            return _MISSING
        d = d[part]
    return d


def short(value: Any, limit: int = 40) -> str:
    """A value for a message: JSON text (strings quoted), cut to ``limit`` characters."""
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def diagnose(spec: Spec, d: Any, exc: BaseException | None) -> str:
    """What is wrong with payload ``d`` of a kind: the first field of ``spec`` it breaks."""
    if type(d) is not dict:
        return f"payload is {type(d).__name__} {short(d)}, expected an object"
    for path, expected, optional in spec:
        value = _lookup(d, path)
        if value is _MISSING:
            if optional:
                continue
            return f"missing field {path!r}"
        if not conforms(value, expected, optional):
            return f"field {path!r} is {short(value)}, expected {expected}"
    if isinstance(exc, ParseError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if exc is not None else "unreadable payload"
