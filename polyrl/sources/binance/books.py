"""Binance book payloads -> ``binance.{spot,futures}.{book_ticker,depth}`` rows (pure).

The payloads (Binance FACTS §1.3 spot, §2.2 USD-M futures), one row each:

- ``bookTicker`` (``<sym>@bookTicker``): best bid and ask, update id ``u``; futures carries
  ``E`` and ``T``, spot neither (spot's is the one payload with no ``e``);
- ``depthUpdate`` (``<sym>@depth``, ``@depth@100ms``): a diff, ``U``..``u``, with ``pu``
  chaining futures diffs for gap detection; a quantity of 0 is kept (it removes the level);
- futures ``<sym>@depth<N>``: a top-N book in the ``depthUpdate`` shape (``update_kind``
  ``partial``);
- spot ``<sym>@depth<N>`` partial book ``{lastUpdateId, bids, asks}``: no ``e``, ``E`` or
  ``s`` on the wire, so its symbol and level count come only from the combined-stream name.

Sides are sorted best first whatever the wire order; ``exch_ns`` is ``E`` (None where the
payload has none: spot ``bookTicker`` and spot partial books).
"""

from __future__ import annotations

from typing import Any

from polyrl.errors import ParseError
from polyrl.events import Event
from polyrl.sources.binance.fields import (
    DEC,
    INT,
    LEVELS,
    STR,
    Spec,
    Venue,
    ask_side,
    bid_side,
    opt_int,
    opt_ns,
    optional,
    req_int,
    required,
    symbol_key,
    venue_ns,
)


def book_ticker_row(d: dict[str, Any], raw: str, recv_ns: int, v: Venue, sym: Any, n: int) -> Event:
    key, asset = symbol_key(d["s"])
    if v.futures:  # futures carries E and T; spot carries neither
        exch_ns: int | None = venue_ns(d["E"])
        trans_ns: int | None = venue_ns(d["T"])
    else:
        exch_ns = opt_ns(d.get("E"))
        trans_ns = opt_ns(d.get("T"))
    return Event(
        stream=v.book_ticker,
        recv_ns=recv_ns,
        exch_ns=exch_ns,
        key=key,
        asset=asset,
        fields={
            "update_id": req_int(d["u"]),
            "bid_px": float(d["b"]),
            "bid_qty": float(d["B"]),
            "ask_px": float(d["a"]),
            "ask_qty": float(d["A"]),
            "trans_ns": trans_ns,
        },
        raw=raw,
    )


def depth_row(d: dict[str, Any], raw: str, recv_ns: int, v: Venue, sym: Any, n: int) -> Event:
    if "lastUpdateId" in d:
        # Spot partial book {lastUpdateId, bids, asks}: no e, E or s on the wire, so the symbol
        # and the level count can only come from the combined-stream name.
        if sym is None:
            raise ParseError(
                "partial book payload without a combined-stream name: no symbol to key it by"
            )
        if n == 0:
            raise ParseError("partial book payload on a stream name with no level count")
        key, asset = symbol_key(sym)
        bid_px, bid_qty = bid_side(d["bids"])
        ask_px, ask_qty = ask_side(d["asks"])
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
                "last_update_id": req_int(d["lastUpdateId"]),
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
    key, asset = symbol_key(d["s"])
    if v.futures:  # pu chains futures diffs (gap detection) and T is always sent: require them
        prev_id: int | None = req_int(d["pu"])
        trans_ns: int | None = venue_ns(d["T"])
    else:
        prev_id = opt_int(d.get("pu"))
        trans_ns = opt_ns(d.get("T"))
    bid_px, bid_qty = bid_side(d["b"])
    ask_px, ask_qty = ask_side(d["a"])
    return Event(
        stream=v.depth,
        recv_ns=recv_ns,
        exch_ns=venue_ns(d["E"]),
        key=key,
        asset=asset,
        fields={
            "update_kind": "partial" if n else "diff",
            "levels": n,
            "first_update_id": req_int(d["U"]),
            "last_update_id": req_int(d["u"]),
            "prev_update_id": prev_id,
            "trans_ns": trans_ns,
            "bid_px": bid_px,
            "bid_qty": bid_qty,
            "ask_px": ask_px,
            "ask_qty": ask_qty,
        },
        raw=raw,
    )


SPECS: dict[tuple[str, bool], Spec] = {
    ("bookTicker", False): required(
        ("s", STR), ("u", INT), ("b", DEC), ("B", DEC), ("a", DEC), ("A", DEC)
    )
    + optional(("E", INT), ("T", INT)),
    ("bookTicker", True): required(
        ("E", INT),
        ("T", INT),
        ("s", STR),
        ("u", INT),
        ("b", DEC),
        ("B", DEC),
        ("a", DEC),
        ("A", DEC),
    ),
    ("partial", False): required(("lastUpdateId", INT), ("bids", LEVELS), ("asks", LEVELS)),
    ("depth", False): required(
        ("E", INT), ("s", STR), ("U", INT), ("u", INT), ("b", LEVELS), ("a", LEVELS)
    )
    + optional(("pu", INT), ("T", INT)),
    ("depth", True): required(
        ("E", INT),
        ("T", INT),
        ("s", STR),
        ("U", INT),
        ("u", INT),
        ("pu", INT),
        ("b", LEVELS),
        ("a", LEVELS),
    ),
}
"""(kind, futures) -> the fields each payload kind here must carry, for the diagnosis; a spot
partial book is kind ``partial``."""
SPECS[("partial", True)] = SPECS[("partial", False)]
