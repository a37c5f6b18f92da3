"""Binance USD-M futures-only payloads -> ``binance.futures.{mark,liquidation}`` rows (pure).

The payloads (Binance FACTS §2.2), one row each; on the spot connection either is an error:

- ``markPriceUpdate`` (``<sym>@markPrice@1s``, or every symbol at once in the array push
  ``!markPrice@arr@1s``): mark and index price, the estimated settle price ``P``, funding
  rate ``r`` and next funding time ``T``;
- ``forceOrder`` (``<sym>@forceOrder``, ``!forceOrder@arr``): the largest liquidation order
  of the last second per symbol (a sample, not a tape), its fields under ``o``.

``exch_ns`` is the event time ``E``.
"""

from __future__ import annotations

from typing import Any

from polyrl.events import Event
from polyrl.sources.binance.fields import (
    DEC,
    INT,
    OBJ,
    STR,
    Spec,
    Venue,
    opt_float,
    optional,
    req_str,
    required,
    symbol_key,
    venue_ns,
)

_MARK = "binance.futures.mark"
_LIQUIDATION = "binance.futures.liquidation"


def mark_row(d: dict[str, Any], raw: str, recv_ns: int, v: Venue, sym: Any, n: int) -> Event:
    key, asset = symbol_key(d["s"])
    return Event(
        stream=_MARK,
        recv_ns=recv_ns,
        exch_ns=venue_ns(d["E"]),
        key=key,
        asset=asset,
        fields={
            "mark_px": float(d["p"]),
            "index_px": float(d["i"]),
            "settle_px": opt_float(d.get("P")),
            "mark_avg_px": opt_float(d.get("ap")),
            "funding_rate": opt_float(d.get("r")),
            "next_funding_ns": venue_ns(d["T"]),
        },
        raw=raw,
    )


def force_order_row(d: dict[str, Any], raw: str, recv_ns: int, v: Venue, sym: Any, n: int) -> Event:
    o = d["o"]
    key, asset = symbol_key(o["s"])
    return Event(
        stream=_LIQUIDATION,
        recv_ns=recv_ns,
        exch_ns=venue_ns(d["E"]),
        key=key,
        asset=asset,
        fields={
            "side": req_str(o["S"]),
            "order_type": req_str(o["o"]),
            "time_in_force": req_str(o["f"]),
            "qty": float(o["q"]),
            "price": float(o["p"]),
            "avg_price": float(o["ap"]),
            "status": req_str(o["X"]),
            "last_filled_qty": float(o["l"]),
            "filled_qty": float(o["z"]),
            "trade_ns": venue_ns(o["T"]),
        },
        raw=raw,
    )


_FORCE_O = tuple(
    (f"o.{p}", t, False)
    for p, t in (
        ("s", STR), ("S", STR), ("o", STR), ("f", STR), ("q", DEC), ("p", DEC), ("ap", DEC),
        ("X", STR), ("l", DEC), ("z", DEC), ("T", INT),
    )
)  # fmt: skip

SPECS: dict[tuple[str, bool], Spec] = {
    ("markPrice", True): required(("E", INT), ("s", STR), ("p", DEC), ("i", DEC), ("T", INT))
    + optional(("P", DEC), ("ap", DEC), ("r", DEC)),
    ("forceOrder", True): required(("E", INT), ("o", OBJ)) + _FORCE_O,
}
"""(kind, futures) -> the fields each payload kind here must carry, for the diagnosis."""
