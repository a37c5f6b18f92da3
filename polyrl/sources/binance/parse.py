"""Binance spot and USD-M futures WebSocket frames -> Events (pure: no I/O, no clock, no sockets).

:func:`parse_ws` reads one frame from the spot or the futures connection (Binance FACTS §1.1,
§2.1), in any of its shapes:

- combined, ``{"stream": name, "data": payload}``: dispatched on the stream name (resolved
  once per distinct name and memoised), the only source of the symbol and level count of a
  spot partial book;
- raw, the bare payload: dispatched on its event type ``e`` or, for spot ``bookTicker``, on
  its shape;
- an array of payloads (``!markPrice@arr``), one row per element, each keeping the exact text
  of its own element as ``raw`` (so a push of N rows is not stored N times); one bad element
  becomes a ``parse_error`` status event beside the good elements' rows;
- a reply to SUBSCRIBE & co. or an error reply, and ``serverShutdown``: a ``recorder.status``
  ``control`` event.

The payload kinds and their rows live by family: trades and klines in
:mod:`~polyrl.sources.binance.trades`, book tickers and depth in
:mod:`~polyrl.sources.binance.books`, the futures-only mark price and liquidations in
:mod:`~polyrl.sources.binance.futures`; REST responses in :mod:`~polyrl.sources.binance.rest`;
the field helpers they share in :mod:`~polyrl.sources.binance.fields`. Every row's columns
are documented in :mod:`polyrl.recording.schema`; ``raw`` is the exact frame text.

A frame that cannot be read raises :class:`~polyrl.errors.ParseError` whose message names the
channel, the stream (or event type) and the first missing or mistyped field; no rows are
returned from it.

Speed: one ``json.loads`` per frame, dispatch by dict lookup on the stream name, and field
validation that costs nothing unless a field is wrong (the precise diagnosis runs only after
a failure).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from polyrl.errors import ParseError
from polyrl.events import Event, status_event
from polyrl.sources.binance import books, futures, trades
from polyrl.sources.binance.books import book_ticker_row, depth_row
from polyrl.sources.binance.fields import (
    FIELD_ERRORS,
    INT,
    MEMO_MAX,
    VENUES,
    Handler,
    Spec,
    Venue,
    diagnose,
    required,
    short,
    venue_ns,
)
from polyrl.sources.binance.futures import force_order_row, mark_row
from polyrl.sources.binance.trades import agg_trade_row, kline_row, trade_row
from polyrl.sources.common import parse_error_event
from polyrl.sources.jsontext import iter_json_array, member_span

__all__ = ["parse_ws"]

_loads = json.loads


# ---------------------------------------------------------------------------------------------
# Payload kinds: each one's handler and the ``e`` it carries; the fields each must carry (for
# the diagnosis) come from its family's module.


def _server_shutdown(
    d: dict[str, Any], raw: str, recv_ns: int, v: Venue, sym: Any, n: int
) -> Event:
    e_ns = venue_ns(d["E"])
    return status_event(
        "control",
        recv_ns,
        channel=v.channel,
        message=f"serverShutdown: the server will close this connection (E={e_ns} ns)",
        raw=raw,
    )


@dataclass(frozen=True, slots=True)
class _Kind:
    """One payload kind: its handler, the ``e`` it carries, whether futures-only."""

    name: str
    handler: Handler
    e: str
    futures_only: bool = False


_KINDS: dict[str, _Kind] = {
    k.name: k
    for k in (
        _Kind("aggTrade", agg_trade_row, "aggTrade"),
        _Kind("trade", trade_row, "trade"),
        _Kind("bookTicker", book_ticker_row, "bookTicker"),
        _Kind("depth", depth_row, "depthUpdate"),
        _Kind("kline", kline_row, "kline"),
        _Kind("markPrice", mark_row, "markPriceUpdate", futures_only=True),
        _Kind("forceOrder", force_order_row, "forceOrder", futures_only=True),
        _Kind("serverShutdown", _server_shutdown, "serverShutdown"),
    )
}

_BY_E: dict[str, _Kind] = {k.e: k for k in _KINDS.values()}

_SPECS: dict[tuple[str, bool], Spec] = {**trades.SPECS, **books.SPECS, **futures.SPECS}
_SPECS[("serverShutdown", False)] = _SPECS[("serverShutdown", True)] = required(("E", INT))


# ---------------------------------------------------------------------------------------------
# Stream names -> (kind, symbol, level count), memoised.

_ROUTES: dict[str, tuple[_Kind, str | None, int]] = {}


def _route(stream: Any) -> tuple[_Kind, str | None, int]:
    """Resolve a combined-stream name such as ``btcusdt@depth5@100ms`` or ``!markPrice@arr@1s``.

    The symbol is ``None`` for the all-market ``!...`` streams; the level count is N for
    ``@depth<N>`` streams and 0 otherwise.
    """
    hit = _ROUTES.get(stream) if type(stream) is str else None
    if hit is not None:
        return hit
    if type(stream) is not str:
        raise ParseError(f"combined-stream name must be a string, got {stream!r}")
    if stream.startswith("!"):
        sym = None
        head = stream[1:].split("@", 1)[0]
    else:
        sym, _, rest = stream.partition("@")
        head = rest.split("@", 1)[0]
        if not sym:
            raise ParseError(f"stream {stream!r} has no symbol")
    levels = 0
    if head.startswith("kline_"):
        kind = _KINDS["kline"]
    elif head.startswith("depth") and head != "depth" and head[5:].isdigit():
        kind = _KINDS["depth"]
        levels = int(head[5:])
    else:
        found = _KINDS.get(head)
        if found is None:
            raise ParseError(f"unknown stream {stream!r} (kind {head!r})")
        kind = found
    hit = (kind, sym, levels)
    if len(_ROUTES) >= MEMO_MAX:
        _ROUTES.clear()
    _ROUTES[stream] = hit
    return hit


def _where(channel: str, stream: str | None, d: Any) -> str:
    if stream is not None:
        return f"{channel} {stream}"
    e = d.get("e") if type(d) is dict else None
    return f"{channel} e={e}" if e is not None else channel


# ---------------------------------------------------------------------------------------------
# Dispatch


def _one(
    kind: _Kind,
    d: Any,
    raw: str,
    recv_ns: int,
    v: Venue,
    sym: str | None,
    levels: int,
    stream: str | None,
) -> Event:
    """Apply ``kind``'s handler to payload ``d``; every failure is a ParseError naming why."""
    if kind.futures_only and not v.futures:
        raise ParseError(f"{_where(v.channel, stream, d)}: {kind.e} only exists on futures")
    try:
        e = d.get("e")
        if e is not None and e != kind.e:
            raise ParseError(
                f"{_where(v.channel, stream, d)}: payload has e={short(e)}, expected {kind.e!r}",
                channel=v.channel,
                raw=raw,
            )
        return kind.handler(d, raw, recv_ns, v, sym, levels)
    except ParseError as exc:
        if exc.channel:  # already complete (the e check above)
            raise
        why = diagnose(_SPECS.get((_spec_name(kind, d), v.futures), ()), d, exc)
        raise ParseError(
            f"{_where(v.channel, stream, d)}: {why}", channel=v.channel, raw=raw
        ) from None
    except FIELD_ERRORS as exc:
        why = diagnose(_SPECS.get((_spec_name(kind, d), v.futures), ()), d, exc)
        raise ParseError(
            f"{_where(v.channel, stream, d)}: {why}", channel=v.channel, raw=raw
        ) from None


def _spec_name(kind: _Kind, d: Any) -> str:
    if kind.name == "depth" and type(d) is dict and "lastUpdateId" in d:
        return "partial"
    return kind.name


def _kind_of_payload(d: dict[str, Any], v: Venue) -> _Kind | None:
    """The kind of a raw (non-combined) payload object; None for a control reply."""
    e = d.get("e")
    if e is not None:
        kind = _BY_E.get(e) if type(e) is str else None
        if kind is None:
            raise ParseError(f"{v.channel}: unknown event type e={short(e)}")
        return kind
    if "result" in d or "code" in d or "error" in d:
        return None
    if "lastUpdateId" in d:
        return _KINDS["depth"]  # raises: a raw partial book has no symbol
    if "u" in d and "b" in d and "a" in d and "s" in d:
        return _KINDS["bookTicker"]  # spot bookTicker: the one payload with no `e`
    raise ParseError(f"{v.channel}: unrecognised payload (no 'e', not a control reply)")


def _control(d: dict[str, Any], text: str, recv_ns: int, v: Venue) -> Event:
    """A reply to SUBSCRIBE & co. (``{"result":..,"id":..}``) or an error reply."""
    err = d.get("error")
    if type(err) is dict:  # {"error": {"code":..,"msg":..}, "id":..}
        d = {**err, "id": d.get("id")}
    if "code" in d or "msg" in d:
        msg = f"error reply code={d.get('code')!r}: {d.get('msg')}"
        if d.get("id") is not None:
            msg += f" (request id={d['id']!r})"
    elif "result" in d:
        msg = f"reply to request id={d.get('id')!r}: result={short(d['result'], 300)}"
    else:
        raise ParseError(f"{v.channel}: unrecognised control reply {short(d)}")
    return status_event("control", recv_ns, channel=v.channel, message=msg, raw=text)


def _array(
    items: list[tuple[Any, str]],
    recv_ns: int,
    v: Venue,
    kind: _Kind | None,
    sym: str | None,
    levels: int,
    stream: str | None,
) -> list[Event]:
    """One row per element of an array push; a bad element becomes a parse_error event."""
    out: list[Event] = []
    for i, (d, raw) in enumerate(items):
        try:
            if type(d) is not dict:
                raise ParseError(f"element {i} is {type(d).__name__}, expected an object")
            k = kind if kind is not None else _kind_of_payload(d, v)
            if k is None:
                raise ParseError(f"element {i} is a control reply inside an array")
            out.append(_one(k, d, raw, recv_ns, v, sym, levels, stream))
        except ParseError as exc:
            out.append(
                parse_error_event(v.channel, recv_ns, f"element {i}: {exc}", raw, stream=None)
            )
    return out


def parse_ws(text: str, recv_ns: int, *, venue: Literal["spot", "futures"]) -> list[Event]:
    """All events in one WebSocket frame from Binance ``venue``'s connection.

    ``text`` is the frame exactly as received; ``recv_ns`` the local receive time (ns). The
    frame is a combined-stream wrapper ``{"stream": name, "data": payload}`` (dispatched on the
    stream name, the only source of the symbol and level count of spot partial books), a raw
    payload (dispatched on ``e`` or, for spot bookTicker, on its shape), an array of payloads
    (``!markPrice@arr``), or a control reply (a ``recorder.status`` ``control`` event).
    Raises ParseError (carrying the channel and the frame) when the frame cannot be read.
    """
    v = VENUES[venue]
    try:
        return _parse_frame(text, recv_ns, v)
    except ParseError as e:
        if e.channel:
            raise
        msg = str(e) if str(e).startswith(v.channel) else f"{v.channel}: {e}"
        raise ParseError(msg, channel=v.channel, raw=text) from None


def _parse_frame(text: str, recv_ns: int, v: Venue) -> list[Event]:
    try:
        msg = _loads(text)
    except json.JSONDecodeError as e:
        what = "empty frame" if not text.strip() else f"not valid JSON ({e.msg} at char {e.pos})"
        raise ParseError(f"{v.channel}: {what}", channel=v.channel, raw=text) from None
    except RecursionError:
        raise ParseError(
            f"{v.channel}: JSON nested too deeply", channel=v.channel, raw=text
        ) from None
    if type(msg) is dict:
        stream = msg.get("stream")
        if stream is not None:
            if "data" not in msg:
                raise ParseError(
                    f"{v.channel} {stream}: combined-stream frame has no 'data'",
                    channel=v.channel,
                    raw=text,
                )
            kind, sym, levels = _route(stream)
            data = msg["data"]
            if type(data) is list:
                span = member_span(text, "data")
                assert span is not None  # json.loads found the member, so the scan does too
                items = iter_json_array(text, span[0], span[1])
                return _array(items, recv_ns, v, kind, sym, levels, stream)
            return [_one(kind, data, text, recv_ns, v, sym, levels, stream)]
        kind_or_none = _kind_of_payload(msg, v)
        if kind_or_none is None:
            return [_control(msg, text, recv_ns, v)]
        return [_one(kind_or_none, msg, text, recv_ns, v, None, 0, None)]
    if type(msg) is list:
        return _array(iter_json_array(text), recv_ns, v, None, None, 0, None)
    raise ParseError(
        f"{v.channel}: frame is a JSON {type(msg).__name__}, expected an object or array",
        channel=v.channel,
        raw=text,
    )
