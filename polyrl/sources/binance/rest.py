"""Binance REST responses -> ``binance.spot.kline`` and ``binance.futures.open_interest`` rows.

Reads (Binance FACTS §3.1, §3.2), pure:

- spot ``GET /api/v3/klines``: a JSON array of bars ``[openTime, "open", "high", "low",
  "close", "volume", closeTime, "quoteVolume", trades, "takerBuyBase", "takerBuyQuote",
  "0"]``, one row per bar, each keeping its own array element's text as ``raw``; the
  interval is read off the bar (the response does not repeat it), the symbol comes from the
  request;
- USD-M ``GET /fapi/v1/openInterest``: ``{"openInterest", "symbol", "time"}``, one row;
- either endpoint's error body ``{"code", "msg"}``: a ParseError that quotes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from polyrl.errors import ParseError
from polyrl.events import (
    CH_BINANCE_FUTURES_OI,
    CH_BINANCE_SPOT_KLINES,
    NS_PER_MS,
    NS_PER_S,
    NS_PER_US,
    Event,
    venue_time_to_ns,
)
from polyrl.sources.binance.fields import (
    DEC,
    FIELD_ERRORS,
    INT,
    STR,
    conforms,
    diagnose,
    req_int,
    required,
    short,
    symbol_key,
    venue_ns,
)
from polyrl.sources.jsontext import iter_json_array

__all__ = ["parse_rest_klines", "parse_rest_open_interest"]

_loads = json.loads
_OPEN_INTEREST = "binance.futures.open_interest"
_OPEN_INTEREST_SPEC = required(("symbol", STR), ("time", INT), ("openInterest", DEC))

# Bar length in seconds -> Binance interval name (months are matched by day count below).
_INTERVALS = {
    1: "1s", 60: "1m", 180: "3m", 300: "5m", 900: "15m", 1800: "30m", 3600: "1h",
    7200: "2h", 14400: "4h", 21600: "6h", 28800: "8h", 43200: "12h", 86400: "1d",
    259200: "3d", 604800: "1w",
}  # fmt: skip

_KLINE_ROW = (
    (0, "open time", INT), (1, "open", DEC), (2, "high", DEC), (3, "low", DEC), (4, "close", DEC),
    (5, "volume", DEC), (6, "close time", INT), (7, "quote volume", DEC), (8, "trades", INT),
    (9, "taker buy base", DEC), (10, "taker buy quote", DEC),
)  # fmt: skip


def _interval(open_raw: int, close_raw: int) -> str:
    """The interval of a bar from its open and close times (close = open + interval - 1 unit).

    The REST response does not repeat the requested interval, so it is read off the bar.
    """
    unit = NS_PER_US if close_raw >= 10**14 else NS_PER_MS
    length_ns = venue_time_to_ns(close_raw) - venue_time_to_ns(open_raw) + unit
    secs, rem = divmod(length_ns, NS_PER_S)
    name = _INTERVALS.get(secs) if rem == 0 else None
    if name is None and rem == 0 and secs % 86400 == 0 and 28 <= secs // 86400 <= 31:
        name = "1M"
    if name is None:
        raise ValueError(f"bar length {length_ns} ns is not a Binance kline interval")
    return name


def _rest_error(text: str) -> str | None:
    """``code=..: msg`` when ``text`` is a Binance REST error body, else None."""
    try:
        d = _loads(text)
    except (ValueError, RecursionError):
        return None
    if type(d) is dict and "code" in d and "msg" in d:
        return f"error reply code={d['code']!r}: {d['msg']}"
    return None


def parse_rest_klines(text: str, recv_ns: int, *, symbol: str) -> list[Event]:
    """One ``binance.spot.kline`` row per bar of a ``GET /api/v3/klines`` response.

    Each bar is ``[openTime, "open", "high", "low", "close", "volume", closeTime,
    "quoteVolume", trades, "takerBuyBase", "takerBuyQuote", "0"]`` with ms or µs times.
    ``exch_ns`` is the bar's close time; ``closed`` is true iff that close time is at or before
    ``recv_ns`` (the last bar of a response is usually still open). ``raw`` is the bar's own
    array text. ``symbol`` is the request's symbol (the response does not name it). A bad bar
    fails the whole response: a warm-up series with a silent hole is worse than none.
    """
    where = f"{CH_BINANCE_SPOT_KLINES} {symbol}"
    try:
        key, asset = symbol_key(symbol)
    except TypeError as e:
        raise ParseError(f"{CH_BINANCE_SPOT_KLINES}: {e}", channel=CH_BINANCE_SPOT_KLINES) from None
    try:
        items = iter_json_array(text)
    except ParseError as e:
        why = _rest_error(text) or str(e)
        raise ParseError(f"{where}: {why}", channel=CH_BINANCE_SPOT_KLINES, raw=text) from None
    out: list[Event] = []
    for i, (row, raw) in enumerate(items):
        try:
            if type(row) is not list or len(row) < 11:
                raise ValueError
            open_ns, close_ns = venue_ns(row[0]), venue_ns(row[6])
            fields = {
                "interval": _interval(row[0], row[6]),
                "open_ns": open_ns,
                "close_ns": close_ns,
                "open": float(row[1]),
                "high": float(row[2]),
                "low": float(row[3]),
                "close": float(row[4]),
                "volume": float(row[5]),
                "quote_volume": float(row[7]),
                "trades": req_int(row[8]),
                "taker_buy_base": float(row[9]),
                "taker_buy_quote": float(row[10]),
                "closed": close_ns <= recv_ns,
            }
        except FIELD_ERRORS as exc:
            raise ParseError(
                f"{where}: bar {i}: {_diagnose_kline_row(row, exc)}",
                channel=CH_BINANCE_SPOT_KLINES,
                raw=text,
            ) from None
        out.append(
            Event(
                stream="binance.spot.kline",
                recv_ns=recv_ns,
                exch_ns=close_ns,
                key=key,
                asset=asset,
                fields=fields,
                raw=raw,
            )
        )
    return out


def _diagnose_kline_row(row: Any, exc: BaseException) -> str:
    if type(row) is not list:
        return f"is {short(row)}, expected an array"
    if len(row) < 11:
        return f"has {len(row)} elements, expected 12"
    for idx, name, expected in _KLINE_ROW:
        if not conforms(row[idx], expected, False):
            return f"element {idx} ({name}) is {short(row[idx])}, expected {expected}"
    return f"{type(exc).__name__}: {exc}"


def parse_rest_open_interest(text: str, recv_ns: int) -> list[Event]:
    """One ``binance.futures.open_interest`` row from a ``GET /fapi/v1/openInterest`` response.

    ``{"openInterest":"10659.509","symbol":"BTCUSDT","time":1589437530011}``: open interest in
    contracts (base currency); ``exch_ns`` is ``time``.
    """
    ch = CH_BINANCE_FUTURES_OI
    try:
        d = _loads(text)
    except json.JSONDecodeError as e:
        what = "empty response" if not text.strip() else f"not valid JSON ({e.msg} at char {e.pos})"
        raise ParseError(f"{ch}: {what}", channel=ch, raw=text) from None
    except RecursionError:
        raise ParseError(f"{ch}: JSON nested too deeply", channel=ch, raw=text) from None
    if type(d) is dict and "code" in d and "msg" in d and "openInterest" not in d:
        raise ParseError(f"{ch}: {_rest_error(text)}", channel=ch, raw=text)
    try:
        key, asset = symbol_key(d["symbol"])
        exch_ns = venue_ns(d["time"])
        fields: Mapping[str, Any] = {"open_interest": float(d["openInterest"])}
    except FIELD_ERRORS as exc:
        why = diagnose(_OPEN_INTEREST_SPEC, d, exc)
        raise ParseError(f"{ch}: {why}", channel=ch, raw=text) from None
    return [
        Event(
            stream=_OPEN_INTEREST,
            recv_ns=recv_ns,
            exch_ns=exch_ns,
            key=key,
            asset=asset,
            fields=fields,
            raw=text,
        )
    ]
