"""Binance spot and USD-M futures frames -> Events (pure: no I/O, no clock, no sockets).

Three entry points, called by :class:`polyrl.sources.parse.Parser`:

- :func:`parse_ws`: one WebSocket frame, combined (``{"stream": name, "data": payload}``) or
  raw (the bare payload), from the spot or the futures connection;
- :func:`parse_rest_klines`: one ``GET /api/v3/klines`` response, one row per bar;
- :func:`parse_rest_open_interest`: one ``GET /fapi/v1/openInterest`` response.

Conventions for every row (columns documented in :mod:`polyrl.recording.schema`):

- ``key`` is the upper-case symbol and ``asset`` is :func:`polyrl.events.asset_of_symbol` of it;
- ``exch_ns`` is the payload's event time ``E`` in ns (``None`` where the payload has none:
  spot ``bookTicker`` and spot partial books); Binance times are ms (13 digits) or, for spot
  with ``timeUnit=MICROSECOND``, µs (16 digits), told apart by magnitude;
- prices and quantities (decimal strings on the wire) become floats; book sides are sorted
  best first (bids descending, asks ascending) whatever order they arrive in, and a quantity
  of 0 in a diff is kept (it means "remove the level");
- ``side`` is the taker's side: -1 when ``m`` (the buyer was the maker, so the taker sold);
- ``raw`` is the exact frame text. Frames that carry many rows in one JSON array
  (``!markPrice@arr``, REST klines) give each row the exact text of *its own* array element
  instead, so a push of N rows is not stored N times; that text re-parses on its own.

A frame that cannot be read raises :class:`~polyrl.errors.ParseError` whose message names the
channel, the stream (or event type) and the first missing or mistyped field; no rows are
returned from it. Only the elements of an array push are independent: one bad element becomes
a ``parse_error`` status event beside the good elements' rows.

Speed: one ``json.loads`` per frame, dispatch by dict lookup on the stream name (resolved once
per distinct name and memoised), and field validation that costs nothing unless a field is
wrong (the precise diagnosis runs only after a failure).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from polyrl.errors import ParseError
from polyrl.events import (
    CH_BINANCE_FUTURES_OI,
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_KLINES,
    CH_BINANCE_SPOT_WS,
    NS_PER_MS,
    NS_PER_S,
    NS_PER_US,
    Event,
    asset_of_symbol,
    status_event,
    venue_time_to_ns,
)
from polyrl.sources.common import parse_error_event
from polyrl.sources.jsontext import iter_json_array, member_span

__all__ = ["parse_rest_klines", "parse_rest_open_interest", "parse_ws"]

# Exceptions a handler raises on a missing (KeyError) or mistyped field; turned into ParseError.
_FIELD_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)

_loads = json.loads


@dataclass(frozen=True, slots=True)
class _Venue:
    """Where one venue's rows go: its channel and its stream ids."""

    name: str
    futures: bool
    channel: str
    trade: str
    book_ticker: str
    depth: str
    kline: str


_SPOT = _Venue(
    "spot",
    False,
    CH_BINANCE_SPOT_WS,
    "binance.spot.trade",
    "binance.spot.book_ticker",
    "binance.spot.depth",
    "binance.spot.kline",
)
_FUTURES = _Venue(
    "futures",
    True,
    CH_BINANCE_FUTURES_WS,
    "binance.futures.trade",
    "binance.futures.book_ticker",
    "binance.futures.depth",
    "binance.futures.kline",
)
_VENUES = {"spot": _SPOT, "futures": _FUTURES}
_MARK = "binance.futures.mark"
_LIQUIDATION = "binance.futures.liquidation"
_OPEN_INTEREST = "binance.futures.open_interest"


# ---------------------------------------------------------------------------------------------
# Field helpers. Each raises TypeError/ValueError on a wrong type; the diagnosis names the field.

_SYMBOLS: dict[str, tuple[str, str | None]] = {}
_MEMO_MAX = 4096  # bound on memo tables: a few hundred symbols and streams exist in practice


def _symbol(s: Any) -> tuple[str, str | None]:
    """``(KEY, asset)`` of a symbol as sent (``btcusdt`` or ``BTCUSDT``), memoised."""
    hit = _SYMBOLS.get(s)
    if hit is not None:
        return hit
    if type(s) is not str or not s:
        raise TypeError(f"symbol must be a non-empty string, got {s!r}")
    hit = (s.upper(), asset_of_symbol(s))
    if len(_SYMBOLS) >= _MEMO_MAX:
        _SYMBOLS.clear()
    _SYMBOLS[s] = hit
    return hit


def _ns(v: Any) -> int:
    """A Binance integer time (ms or µs) -> ns."""
    if type(v) is not int:
        raise TypeError(f"time must be an integer, got {v!r}")
    return venue_time_to_ns(v)


def _int(v: Any) -> int:
    if type(v) is not int:
        raise TypeError(f"expected an integer, got {v!r}")
    return v


def _bool(v: Any) -> bool:
    if v is not True and v is not False:
        raise TypeError(f"expected true/false, got {v!r}")
    return v


def _str(v: Any) -> str:
    if type(v) is not str:
        raise TypeError(f"expected a string, got {v!r}")
    return v


def _opt_float(v: Any) -> float | None:
    """A nullable decimal field: absent (None) or sent empty -> None."""
    return None if v is None or v == "" else float(v)


def _opt_int(v: Any) -> int | None:
    return None if v is None else _int(v)


def _opt_ns(v: Any) -> int | None:
    return None if v is None else _ns(v)


def _bids(levels: Any) -> tuple[list[float], list[float]]:
    """``[[price, qty], ...]`` -> (prices, qtys), highest price first."""
    pairs = [(float(p), float(q)) for p, q in levels]
    pairs.sort(reverse=True)  # timsort: linear when already in order, as it usually is
    return [p for p, _ in pairs], [q for _, q in pairs]


def _asks(levels: Any) -> tuple[list[float], list[float]]:
    """``[[price, qty], ...]`` -> (prices, qtys), lowest price first."""
    pairs = [(float(p), float(q)) for p, q in levels]
    pairs.sort()
    return [p for p, _ in pairs], [q for _, q in pairs]


# ---------------------------------------------------------------------------------------------
# Handlers: one per payload kind. ``d`` is the payload object, ``sym``/``levels`` come from the
# combined-stream name (None/0 for raw payloads).

Handler = Callable[[dict[str, Any], str, int, _Venue, "str | None", int], Event]


def _agg_trade(d: dict[str, Any], raw: str, recv_ns: int, v: _Venue, sym: Any, n: int) -> Event:
    key, asset = _symbol(d["s"])
    m = _bool(d["m"])
    fields: dict[str, Any] = {
        "trade_ns": _ns(d["T"]),
        "trade_id": _int(d["a"]),
        "price": float(d["p"]),
        "qty": float(d["q"]),
        "first_id": _int(d["f"]),
        "last_id": _int(d["l"]),
        "buyer_maker": m,
        "side": -1 if m else 1,
    }
    if v.futures:
        fields["qty_no_rpi"] = _opt_float(d.get("nq"))
    return Event(
        stream=v.trade,
        recv_ns=recv_ns,
        exch_ns=_ns(d["E"]),
        key=key,
        asset=asset,
        fields=fields,
        raw=raw,
    )


def _trade(d: dict[str, Any], raw: str, recv_ns: int, v: _Venue, sym: Any, n: int) -> Event:
    # @trade: one fill, id `t`; the old buyer/seller order ids `b`/`a` (gone 2024-06) and the
    # futures `X` (MARKET / INSURANCE_FUND) have no column and stay in raw only.
    key, asset = _symbol(d["s"])
    m = _bool(d["m"])
    t = _int(d["t"])
    fields: dict[str, Any] = {
        "trade_ns": _ns(d["T"]),
        "trade_id": t,
        "price": float(d["p"]),
        "qty": float(d["q"]),
        "first_id": t,
        "last_id": t,
        "buyer_maker": m,
        "side": -1 if m else 1,
    }
    if v.futures:
        fields["qty_no_rpi"] = _opt_float(d.get("nq"))
    return Event(
        stream=v.trade,
        recv_ns=recv_ns,
        exch_ns=_ns(d["E"]),
        key=key,
        asset=asset,
        fields=fields,
        raw=raw,
    )


def _book_ticker(d: dict[str, Any], raw: str, recv_ns: int, v: _Venue, sym: Any, n: int) -> Event:
    key, asset = _symbol(d["s"])
    if v.futures:  # futures carries E and T; spot carries neither
        exch_ns: int | None = _ns(d["E"])
        trans_ns = _ns(d["T"])
    else:
        exch_ns = _opt_ns(d.get("E"))
        trans_ns = _opt_ns(d.get("T"))
    return Event(
        stream=v.book_ticker,
        recv_ns=recv_ns,
        exch_ns=exch_ns,
        key=key,
        asset=asset,
        fields={
            "update_id": _int(d["u"]),
            "bid_px": float(d["b"]),
            "bid_qty": float(d["B"]),
            "ask_px": float(d["a"]),
            "ask_qty": float(d["A"]),
            "trans_ns": trans_ns,
        },
        raw=raw,
    )


def _depth(d: dict[str, Any], raw: str, recv_ns: int, v: _Venue, sym: Any, n: int) -> Event:
    if "lastUpdateId" in d:
        # Spot partial book {lastUpdateId, bids, asks}: no e, E or s on the wire, so the symbol
        # and the level count can only come from the combined-stream name.
        if sym is None:
            raise ParseError(
                "partial book payload without a combined-stream name: no symbol to key it by"
            )
        if n == 0:
            raise ParseError("partial book payload on a stream name with no level count")
        key, asset = _symbol(sym)
        bid_px, bid_qty = _bids(d["bids"])
        ask_px, ask_qty = _asks(d["asks"])
        return Event(
            stream=v.depth,
            recv_ns=recv_ns,
            exch_ns=None,
            key=key,
            asset=asset,
            fields={
                "update_kind": "partial",
                "levels": n,
                "first_update_id": None,
                "last_update_id": _int(d["lastUpdateId"]),
                "prev_update_id": None,
                "trans_ns": None,
                "bid_px": bid_px,
                "bid_qty": bid_qty,
                "ask_px": ask_px,
                "ask_qty": ask_qty,
            },
            raw=raw,
        )
    # depthUpdate: a diff, or (futures @depth<N>) a top-N book in the same shape.
    key, asset = _symbol(d["s"])
    if v.futures:  # pu chains futures diffs (gap detection) and T is always sent: require them
        prev_id: int | None = _int(d["pu"])
        trans_ns: int | None = _ns(d["T"])
    else:
        prev_id = _opt_int(d.get("pu"))
        trans_ns = _opt_ns(d.get("T"))
    bid_px, bid_qty = _bids(d["b"])
    ask_px, ask_qty = _asks(d["a"])
    return Event(
        stream=v.depth,
        recv_ns=recv_ns,
        exch_ns=_ns(d["E"]),
        key=key,
        asset=asset,
        fields={
            "update_kind": "partial" if n else "diff",
            "levels": n,
            "first_update_id": _int(d["U"]),
            "last_update_id": _int(d["u"]),
            "prev_update_id": prev_id,
            "trans_ns": trans_ns,
            "bid_px": bid_px,
            "bid_qty": bid_qty,
            "ask_px": ask_px,
            "ask_qty": ask_qty,
        },
        raw=raw,
    )


def _kline(d: dict[str, Any], raw: str, recv_ns: int, v: _Venue, sym: Any, n: int) -> Event:
    key, asset = _symbol(d["s"])
    k = d["k"]
    return Event(
        stream=v.kline,
        recv_ns=recv_ns,
        exch_ns=_ns(d["E"]),
        key=key,
        asset=asset,
        fields={
            "interval": _str(k["i"]),
            "open_ns": _ns(k["t"]),
            "close_ns": _ns(k["T"]),
            "open": float(k["o"]),
            "high": float(k["h"]),
            "low": float(k["l"]),
            "close": float(k["c"]),
            "volume": float(k["v"]),
            "quote_volume": float(k["q"]),
            "trades": _int(k["n"]),
            "taker_buy_base": float(k["V"]),
            "taker_buy_quote": float(k["Q"]),
            "closed": _bool(k["x"]),
        },
        raw=raw,
    )


def _mark(d: dict[str, Any], raw: str, recv_ns: int, v: _Venue, sym: Any, n: int) -> Event:
    key, asset = _symbol(d["s"])
    return Event(
        stream=_MARK,
        recv_ns=recv_ns,
        exch_ns=_ns(d["E"]),
        key=key,
        asset=asset,
        fields={
            "mark_px": float(d["p"]),
            "index_px": float(d["i"]),
            "settle_px": _opt_float(d.get("P")),
            "mark_avg_px": _opt_float(d.get("ap")),
            "funding_rate": _opt_float(d.get("r")),
            "next_funding_ns": _ns(d["T"]),
        },
        raw=raw,
    )


def _force_order(d: dict[str, Any], raw: str, recv_ns: int, v: _Venue, sym: Any, n: int) -> Event:
    o = d["o"]
    key, asset = _symbol(o["s"])
    return Event(
        stream=_LIQUIDATION,
        recv_ns=recv_ns,
        exch_ns=_ns(d["E"]),
        key=key,
        asset=asset,
        fields={
            "side": _str(o["S"]),
            "order_type": _str(o["o"]),
            "time_in_force": _str(o["f"]),
            "qty": float(o["q"]),
            "price": float(o["p"]),
            "avg_price": float(o["ap"]),
            "status": _str(o["X"]),
            "last_filled_qty": float(o["l"]),
            "filled_qty": float(o["z"]),
            "trade_ns": _ns(o["T"]),
        },
        raw=raw,
    )


def _server_shutdown(
    d: dict[str, Any], raw: str, recv_ns: int, v: _Venue, sym: Any, n: int
) -> Event:
    e_ns = _ns(d["E"])
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
        _Kind("aggTrade", _agg_trade, "aggTrade"),
        _Kind("trade", _trade, "trade"),
        _Kind("bookTicker", _book_ticker, "bookTicker"),
        _Kind("depth", _depth, "depthUpdate"),
        _Kind("kline", _kline, "kline"),
        _Kind("markPrice", _mark, "markPriceUpdate", futures_only=True),
        _Kind("forceOrder", _force_order, "forceOrder", futures_only=True),
        _Kind("serverShutdown", _server_shutdown, "serverShutdown"),
    )
}
_BY_E: dict[str, _Kind] = {k.e: k for k in _KINDS.values()}


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
    if len(_ROUTES) >= _MEMO_MAX:
        _ROUTES.clear()
    _ROUTES[stream] = hit
    return hit


# ---------------------------------------------------------------------------------------------
# Diagnosis of a failed payload: the first missing or mistyped field, by kind.

_I, _F, _B, _S, _L, _O = "an integer", "a decimal", "true/false", "a string", "levels", "an object"

_Spec = tuple[tuple[str, str, bool], ...]  # (path, expected, optional)


def _req(*fields: tuple[str, str]) -> _Spec:
    return tuple((p, t, False) for p, t in fields)


def _opt(*fields: tuple[str, str]) -> _Spec:
    return tuple((p, t, True) for p, t in fields)


_TRADE_COMMON = _req(("E", _I), ("s", _S), ("p", _F), ("q", _F), ("T", _I), ("m", _B))
_KLINE_K = tuple(
    (f"k.{p}", t, False)
    for p, t in (
        ("i", _S), ("t", _I), ("T", _I), ("o", _F), ("h", _F), ("l", _F), ("c", _F),
        ("v", _F), ("q", _F), ("n", _I), ("V", _F), ("Q", _F), ("x", _B),
    )
)  # fmt: skip
_FORCE_O = tuple(
    (f"o.{p}", t, False)
    for p, t in (
        ("s", _S), ("S", _S), ("o", _S), ("f", _S), ("q", _F), ("p", _F), ("ap", _F),
        ("X", _S), ("l", _F), ("z", _F), ("T", _I),
    )
)  # fmt: skip
_SPECS: dict[tuple[str, bool], _Spec] = {
    ("aggTrade", False): _TRADE_COMMON + _req(("a", _I), ("f", _I), ("l", _I)),
    ("aggTrade", True): _TRADE_COMMON + _req(("a", _I), ("f", _I), ("l", _I)) + _opt(("nq", _F)),
    ("trade", False): _TRADE_COMMON + _req(("t", _I)),
    ("trade", True): _TRADE_COMMON + _req(("t", _I)) + _opt(("nq", _F)),
    ("bookTicker", False): _req(("s", _S), ("u", _I), ("b", _F), ("B", _F), ("a", _F), ("A", _F))
    + _opt(("E", _I), ("T", _I)),
    ("bookTicker", True): _req(
        ("E", _I), ("T", _I), ("s", _S), ("u", _I), ("b", _F), ("B", _F), ("a", _F), ("A", _F)
    ),
    ("partial", False): _req(("lastUpdateId", _I), ("bids", _L), ("asks", _L)),
    ("depth", False): _req(("E", _I), ("s", _S), ("U", _I), ("u", _I), ("b", _L), ("a", _L))
    + _opt(("pu", _I), ("T", _I)),
    ("depth", True): _req(
        ("E", _I), ("T", _I), ("s", _S), ("U", _I), ("u", _I), ("pu", _I), ("b", _L), ("a", _L)
    ),
    ("kline", False): _req(("E", _I), ("s", _S), ("k", _O)) + _KLINE_K,
    ("markPrice", True): _req(("E", _I), ("s", _S), ("p", _F), ("i", _F), ("T", _I))
    + _opt(("P", _F), ("ap", _F), ("r", _F)),
    ("forceOrder", True): _req(("E", _I), ("o", _O)) + _FORCE_O,
    ("serverShutdown", False): _req(("E", _I)),
}
_SPECS[("partial", True)] = _SPECS[("partial", False)]
_SPECS[("kline", True)] = _SPECS[("kline", False)]
_SPECS[("serverShutdown", True)] = _SPECS[("serverShutdown", False)]
_SPECS[("openInterest", True)] = _req(("symbol", _S), ("time", _I), ("openInterest", _F))
_MISSING = object()


def _conforms(value: Any, expected: str, optional: bool) -> bool:
    if optional and (value is None or (expected == _F and value == "")):
        return True
    if expected == _I:
        return type(value) is int
    if expected == _B:
        return value is True or value is False
    if expected == _S:
        return type(value) is str and value != ""
    if expected == _O:
        return type(value) is dict
    if expected == _F:
        return _is_decimal(value)
    if expected == _L:
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


def _short(value: Any, limit: int = 40) -> str:
    """A value for a message: JSON text (strings quoted), cut to ``limit`` characters."""
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _diagnose(spec_key: tuple[str, bool], d: Any, exc: BaseException | None) -> str:
    """What is wrong with payload ``d`` of a kind: the first missing or mistyped field."""
    if type(d) is not dict:
        return f"payload is {type(d).__name__} {_short(d)}, expected an object"
    for path, expected, optional in _SPECS.get(spec_key, ()):
        value = _lookup(d, path)
        if value is _MISSING:
            if optional:
                continue
            return f"missing field {path!r}"
        if not _conforms(value, expected, optional):
            return f"field {path!r} is {_short(value)}, expected {expected}"
    if isinstance(exc, ParseError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if exc is not None else "unreadable payload"


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
    v: _Venue,
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
                f"{_where(v.channel, stream, d)}: payload has e={_short(e)}, expected {kind.e!r}",
                channel=v.channel,
                raw=raw,
            )
        return kind.handler(d, raw, recv_ns, v, sym, levels)
    except ParseError as exc:
        if exc.channel:  # already complete (the e check above)
            raise
        why = _diagnose((_spec_name(kind, d), v.futures), d, exc)
        raise ParseError(
            f"{_where(v.channel, stream, d)}: {why}", channel=v.channel, raw=raw
        ) from None
    except _FIELD_ERRORS as exc:
        why = _diagnose((_spec_name(kind, d), v.futures), d, exc)
        raise ParseError(
            f"{_where(v.channel, stream, d)}: {why}", channel=v.channel, raw=raw
        ) from None


def _spec_name(kind: _Kind, d: Any) -> str:
    if kind.name == "depth" and type(d) is dict and "lastUpdateId" in d:
        return "partial"
    return kind.name


def _kind_of_payload(d: dict[str, Any], v: _Venue) -> _Kind | None:
    """The kind of a raw (non-combined) payload object; None for a control reply."""
    e = d.get("e")
    if e is not None:
        kind = _BY_E.get(e) if type(e) is str else None
        if kind is None:
            raise ParseError(f"{v.channel}: unknown event type e={_short(e)}")
        return kind
    if "result" in d or "code" in d or "error" in d:
        return None
    if "lastUpdateId" in d:
        return _KINDS["depth"]  # raises: a raw partial book has no symbol
    if "u" in d and "b" in d and "a" in d and "s" in d:
        return _KINDS["bookTicker"]  # spot bookTicker: the one payload with no `e`
    raise ParseError(f"{v.channel}: unrecognised payload (no 'e', not a control reply)")


def _control(d: dict[str, Any], text: str, recv_ns: int, v: _Venue) -> Event:
    """A reply to SUBSCRIBE & co. (``{"result":..,"id":..}``) or an error reply."""
    err = d.get("error")
    if type(err) is dict:  # {"error": {"code":..,"msg":..}, "id":..}
        d = {**err, "id": d.get("id")}
    if "code" in d or "msg" in d:
        msg = f"error reply code={d.get('code')!r}: {d.get('msg')}"
        if d.get("id") is not None:
            msg += f" (request id={d['id']!r})"
    elif "result" in d:
        msg = f"reply to request id={d.get('id')!r}: result={_short(d['result'], 300)}"
    else:
        raise ParseError(f"{v.channel}: unrecognised control reply {_short(d)}")
    return status_event("control", recv_ns, channel=v.channel, message=msg, raw=text)


def _array(
    items: list[tuple[Any, str]],
    recv_ns: int,
    v: _Venue,
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
    v = _VENUES[venue]
    try:
        return _parse_frame(text, recv_ns, v)
    except ParseError as e:
        if e.channel:
            raise
        msg = str(e) if str(e).startswith(v.channel) else f"{v.channel}: {e}"
        raise ParseError(msg, channel=v.channel, raw=text) from None


def _parse_frame(text: str, recv_ns: int, v: _Venue) -> list[Event]:
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


# ---------------------------------------------------------------------------------------------
# REST

# Bar length in seconds -> Binance interval name (months are matched by day count below).
_INTERVALS = {
    1: "1s", 60: "1m", 180: "3m", 300: "5m", 900: "15m", 1800: "30m", 3600: "1h",
    7200: "2h", 14400: "4h", 21600: "6h", 28800: "8h", 43200: "12h", 86400: "1d",
    259200: "3d", 604800: "1w",
}  # fmt: skip
_KLINE_ROW = (
    (0, "open time", _I), (1, "open", _F), (2, "high", _F), (3, "low", _F), (4, "close", _F),
    (5, "volume", _F), (6, "close time", _I), (7, "quote volume", _F), (8, "trades", _I),
    (9, "taker buy base", _F), (10, "taker buy quote", _F),
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
        key, asset = _symbol(symbol)
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
            open_ns, close_ns = _ns(row[0]), _ns(row[6])
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
                "trades": _int(row[8]),
                "taker_buy_base": float(row[9]),
                "taker_buy_quote": float(row[10]),
                "closed": close_ns <= recv_ns,
            }
        except _FIELD_ERRORS as exc:
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
        return f"is {_short(row)}, expected an array"
    if len(row) < 11:
        return f"has {len(row)} elements, expected 12"
    for idx, name, expected in _KLINE_ROW:
        if not _conforms(row[idx], expected, False):
            return f"element {idx} ({name}) is {_short(row[idx])}, expected {expected}"
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
        key, asset = _symbol(d["symbol"])
        exch_ns = _ns(d["time"])
        fields: Mapping[str, Any] = {"open_interest": float(d["openInterest"])}
    except _FIELD_ERRORS as exc:
        why = _diagnose(("openInterest", True), d, exc)
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
