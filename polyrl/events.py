"""The Event model, channel ids and nanosecond time helpers (pure).

An :class:`Event` is one normalised message of one stream (``binance.spot.trade``,
``polymarket.price_change``, ...). Every event keeps the local receive time (``recv_ns``),
a recorder-wide increasing ``seq``, the venue's own time where it has one (``exch_ns``), its
key (a symbol, token id, condition id or channel), the asset it belongs to where known, its
typed fields (named and documented per stream in :mod:`polyrl.recording.schema`) and the raw
text it was parsed from, so that a recording can be re-parsed when a schema grows.

A *channel* is one venue connection or REST poll that frames arrive on; parsers dispatch on
it (see :mod:`polyrl.sources`). Times are integers in nanoseconds since the Unix epoch, UTC,
in names ending ``_ns``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
WINDOW_S = 900
"""Length of one Up/Down market window, seconds."""
WINDOW_NS = WINDOW_S * NS_PER_S

ASSETS: tuple[str, ...] = ("btc", "eth", "sol", "xrp")
"""The four assets polyrl trades, in their canonical order (index = market slot)."""

# Channels: where a raw frame came from. Parsers dispatch on these.
CH_BINANCE_SPOT_WS = "binance.spot.ws"
"""Binance spot combined stream (``/stream?streams=...``)."""
CH_BINANCE_FUTURES_WS = "binance.futures.ws"
"""Binance USD-M futures combined streams (``/market`` and ``/public`` routes)."""
CH_BINANCE_SPOT_KLINES = "binance.spot.rest.klines"
"""REST ``GET /api/v3/klines`` response; the request's symbol is passed alongside."""
CH_BINANCE_FUTURES_OI = "binance.futures.rest.open_interest"
"""REST ``GET /fapi/v1/openInterest`` response."""
CH_POLYMARKET_WS = "polymarket.clob.ws"
"""Polymarket CLOB market channel WebSocket."""
CH_POLYMARKET_GAMMA = "polymarket.gamma.rest"
"""Gamma ``/markets?slug=`` / ``/markets/slug/`` / ``/events?slug=`` responses."""
CH_POLYMARKET_CLOB_MARKET = "polymarket.clob.rest.market"
"""CLOB ``GET /markets/{condition_id}`` response (resolution via ``tokens[].winner``)."""
CH_POLYMARKET_CLOB_BOOK = "polymarket.clob.rest.book"
"""CLOB ``GET /book?token_id=`` response."""
CH_RTDS_WS = "polymarket.rtds.ws"
"""Polymarket real-time data socket (Chainlink reference prices and TWAP)."""
CH_POLYBOLT_WS = "polymarket.polybolt.ws"
"""PolyBolt (``ws-live-v2``), RTDS's successor: Chainlink 60 s TWAP, needs API credentials."""
CH_RECORDER = "recorder"
"""Status events the recorder itself writes."""

CHANNELS: tuple[str, ...] = (
    CH_BINANCE_SPOT_WS,
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_KLINES,
    CH_BINANCE_FUTURES_OI,
    CH_POLYMARKET_WS,
    CH_POLYMARKET_GAMMA,
    CH_POLYMARKET_CLOB_MARKET,
    CH_POLYMARKET_CLOB_BOOK,
    CH_RTDS_WS,
    CH_POLYBOLT_WS,
    CH_RECORDER,
)

STATUS_STREAM = "recorder.status"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One normalised message of one stream.

    ``fields`` holds the stream's typed fields by name (see ``polyrl schema STREAM``).
    ``seq`` is ``-1`` until a recorder sequences the event; events read back from a
    recording carry their recorded ``seq``. ``quality`` is the bitmask of impossible values
    found in the event (0 = clean; bits in :mod:`polyrl.sources.quality.flags`).
    """

    stream: str
    recv_ns: int
    exch_ns: int | None
    key: str
    asset: str | None
    fields: Mapping[str, Any]
    raw: str
    seq: int = -1
    quality: int = 0

    def get(self, name: str, default: Any = None) -> Any:
        """A typed field by name (``default`` when absent)."""
        return self.fields.get(name, default)


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """One raw frame as it arrived on a channel, before parsing.

    ``request`` carries what a REST response does not say about itself (for example the
    symbol of a klines request or the slug of a Gamma lookup).
    """

    channel: str
    recv_ns: int
    text: str
    request: Mapping[str, str] = field(default_factory=dict)


def status_event(
    kind: str,
    recv_ns: int,
    *,
    channel: str,
    stream: str | None = None,
    message: str = "",
    gap_start_ns: int | None = None,
    gap_end_ns: int | None = None,
    raw: str = "",
) -> Event:
    """A ``recorder.status`` event (start, stop, connect, disconnect, gap, parse_error, ...)."""
    return Event(
        stream=STATUS_STREAM,
        recv_ns=recv_ns,
        exch_ns=None,
        key=channel,
        asset=None,
        fields={
            "kind": kind,
            "stream_id": stream,
            "message": message,
            "gap_start_ns": gap_start_ns,
            "gap_end_ns": gap_end_ns,
        },
        raw=raw,
    )


# ---------------------------------------------------------------------------------------------
# Time helpers


def venue_time_to_ns(value: int | float | str) -> int:
    """A venue timestamp in s, ms, µs or ns (decided by magnitude) -> ns since the epoch.

    Binance sends ms (13 digits) or, with ``timeUnit=MICROSECOND``, µs (16 digits); Polymarket
    sends ms as decimal strings; RTDS sends ms numbers. Branch on size, never on date.
    """
    v = int(value) if not isinstance(value, float) else int(round(value))
    a = abs(v)
    if a >= 10**17:
        return v
    if a >= 10**14:
        return v * NS_PER_US
    if a >= 10**11:
        return v * NS_PER_MS
    return v * NS_PER_S


def iso_to_ns(text: str) -> int:
    """An ISO-8601 time (``2026-08-22T16:00:00Z``, ``2026-07-24 00:00:16+00``) -> ns, UTC.

    Naive times are taken as UTC.
    """
    t = text.strip().replace(" ", "T", 1)
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    elif len(t) >= 3 and t[-3] in "+-" and t[-2:].isdigit() and ":" not in t[-3:]:
        t = t + ":00"
    d = _dt.datetime.fromisoformat(t)
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.UTC)
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
    delta = d - epoch
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * NS_PER_US


def ns_to_datetime(ns: int) -> _dt.datetime:
    """ns since the epoch -> an aware UTC datetime (µs resolution)."""
    return _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(microseconds=ns // NS_PER_US)


def ns_to_iso(ns: int) -> str:
    """ns since the epoch -> ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return ns_to_datetime(ns).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def partition_of(recv_ns: int) -> tuple[str, int]:
    """The ``(date, hour)`` partition a receive time falls in, UTC: ``("2024-06-01", 13)``."""
    d = ns_to_datetime(recv_ns)
    return d.strftime("%Y-%m-%d"), d.hour


def window_start_ns(t_ns: int, window_ns: int = WINDOW_NS) -> int:
    """Start of the window containing ``t_ns`` (windows are aligned to the epoch)."""
    return t_ns - (t_ns % window_ns)


def asset_of_symbol(symbol: str) -> str | None:
    """``BTCUSDT`` / ``btcusdt`` / ``btc/usd`` / ``BTC`` -> ``btc`` when it is one of ours."""
    s = symbol.lower()
    for suffix in ("usdt", "/usd", "usd", "/usdt"):
        if s.endswith(suffix):
            s = s[: -len(suffix)]
            break
    return s if s in ASSETS else None
