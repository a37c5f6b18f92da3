"""Binance trade and kline payloads -> ``binance.{spot,futures}.{trade,kline}`` rows (pure).

The payloads (Binance FACTS §1.3 spot, §2.2 USD-M futures), one row each:

- ``aggTrade`` (``<sym>@aggTrade``): an aggregate of fills at one price, ids ``a``/``f``/``l``;
- ``trade`` (``<sym>@trade``): one fill, id ``t`` (first and last id are ``t``); the old
  buyer/seller order ids ``b``/``a`` (gone 2024-06) and the futures ``X`` (MARKET /
  INSURANCE_FUND) have no column and stay in raw only;
- ``kline`` (``<sym>@kline_<interval>``): the bar so far, ``x`` true once it has closed.

``side`` is the taker's side: -1 when ``m`` (the buyer was the maker, so the taker sold).
Futures trades also carry ``nq`` (the quantity without RPI orders), nullable. ``exch_ns`` is
the event time ``E``.
"""

from __future__ import annotations

from typing import Any

from polyrl.events import Event
from polyrl.sources.binance.fields import (
    BOOL,
    DEC,
    INT,
    OBJ,
    STR,
    Spec,
    Venue,
    opt_float,
    optional,
    req_bool,
    req_int,
    req_str,
    required,
    symbol_key,
    venue_ns,
)


def agg_trade_row(d: dict[str, Any], raw: str, recv_ns: int, v: Venue, sym: Any, n: int) -> Event:
    key, asset = symbol_key(d["s"])
    m = req_bool(d["m"])
    fields: dict[str, Any] = {
        "trade_ns": venue_ns(d["T"]),
        "trade_id": req_int(d["a"]),
        "price": float(d["p"]),
        "qty": float(d["q"]),
        "first_id": req_int(d["f"]),
        "last_id": req_int(d["l"]),
        "buyer_maker": m,
        "side": -1 if m else 1,
    }
    if v.futures:
        fields["qty_no_rpi"] = opt_float(d.get("nq"))
    return Event(
        stream=v.trade,
        recv_ns=recv_ns,
        exch_ns=venue_ns(d["E"]),
        key=key,
        asset=asset,
        fields=fields,
        raw=raw,
    )


def trade_row(d: dict[str, Any], raw: str, recv_ns: int, v: Venue, sym: Any, n: int) -> Event:
    # @trade: one fill, id `t`; the old buyer/seller order ids `b`/`a` (gone 2024-06) and the
    # futures `X` (MARKET / INSURANCE_FUND) have no column and stay in raw only.
    key, asset = symbol_key(d["s"])
    m = req_bool(d["m"])
    t = req_int(d["t"])
    fields: dict[str, Any] = {
        "trade_ns": venue_ns(d["T"]),
        "trade_id": t,
        "price": float(d["p"]),
        "qty": float(d["q"]),
        "first_id": t,
        "last_id": t,
        "buyer_maker": m,
        "side": -1 if m else 1,
    }
    if v.futures:
        fields["qty_no_rpi"] = opt_float(d.get("nq"))
    return Event(
        stream=v.trade,
        recv_ns=recv_ns,
        exch_ns=venue_ns(d["E"]),
        key=key,
        asset=asset,
        fields=fields,
        raw=raw,
    )


def kline_row(d: dict[str, Any], raw: str, recv_ns: int, v: Venue, sym: Any, n: int) -> Event:
    key, asset = symbol_key(d["s"])
    k = d["k"]
    return Event(
        stream=v.kline,
        recv_ns=recv_ns,
        exch_ns=venue_ns(d["E"]),
        key=key,
        asset=asset,
        fields={
            "interval": req_str(k["i"]),
            "open_ns": venue_ns(k["t"]),
            "close_ns": venue_ns(k["T"]),
            "open": float(k["o"]),
            "high": float(k["h"]),
            "low": float(k["l"]),
            "close": float(k["c"]),
            "volume": float(k["v"]),
            "quote_volume": float(k["q"]),
            "trades": req_int(k["n"]),
            "taker_buy_base": float(k["V"]),
            "taker_buy_quote": float(k["Q"]),
            "closed": req_bool(k["x"]),
        },
        raw=raw,
    )


_TRADE_COMMON = required(("E", INT), ("s", STR), ("p", DEC), ("q", DEC), ("T", INT), ("m", BOOL))

_KLINE_K = tuple(
    (f"k.{p}", t, False)
    for p, t in (
        ("i", STR), ("t", INT), ("T", INT), ("o", DEC), ("h", DEC), ("l", DEC), ("c", DEC),
        ("v", DEC), ("q", DEC), ("n", INT), ("V", DEC), ("Q", DEC), ("x", BOOL),
    )
)  # fmt: skip

SPECS: dict[tuple[str, bool], Spec] = {
    ("aggTrade", False): _TRADE_COMMON + required(("a", INT), ("f", INT), ("l", INT)),
    ("aggTrade", True): _TRADE_COMMON
    + required(("a", INT), ("f", INT), ("l", INT))
    + optional(("nq", DEC)),
    ("trade", False): _TRADE_COMMON + required(("t", INT)),
    ("trade", True): _TRADE_COMMON + required(("t", INT)) + optional(("nq", DEC)),
    ("kline", False): required(("E", INT), ("s", STR), ("k", OBJ)) + _KLINE_K,
}
"""(kind, futures) -> the fields each payload kind here must carry, for the diagnosis."""
SPECS[("kline", True)] = SPECS[("kline", False)]
