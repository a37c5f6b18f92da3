"""CLOB market-channel WebSocket frames -> Events (pure: no I/O, no clock).

Reads ``wss://ws-subscriptions-clob.polymarket.com/ws/market`` (Polymarket FACTS §2): a frame
is one event object or a JSON array of them (of mixed types), dispatched on ``event_type``:

``book``              -> ``polymarket.book`` (origin ``ws``): the full book of one token
``price_change``      -> ``polymarket.price_change``, one row per change, in all three forms:
                         ``price_changes[]`` with per-entry token, hash and BBO (2025-09-15
                         on), ``changes[]`` under one token (2024-25), and the flat 2024 form
``last_trade_price``  -> ``polymarket.trade``
``tick_size_change``  -> ``polymarket.tick_size``
``best_bid_ask``      -> ``polymarket.best_bid_ask``
``new_market``        -> ``polymarket.market`` for a 15m Up/Down market of ours (a
                         ``control`` status row for any other market)
``market_resolved``   -> ``polymarket.resolution`` (source ``ws``)

Text ``PING``/``PONG`` yields nothing. An object frame is decoded with one ``json.loads``;
an array frame element by element (:func:`~polyrl.sources.jsontext.iter_json_array`), so
each row keeps the exact text of its own element as ``raw`` and a bad element becomes one
``recorder.status`` ``parse_error`` event while the good elements still parse. ``asset``
comes from the token map (None for a token not in it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from polyrl.errors import ParseError
from polyrl.events import CH_POLYMARKET_WS, Event, status_event
from polyrl.sources.common import TokenMap, parse_error_event
from polyrl.sources.jsontext import iter_json_array
from polyrl.sources.polymarket.fields import (
    HEARTBEATS,
    as_object,
    book_row,
    fee_columns,
    final_prices,
    json_list,
    load_json,
    opt_num,
    opt_str,
    outcome_word,
    req_num,
    req_side,
    req_str,
    req_time,
    require,
    token_asset,
    up_down_tokens,
)
from polyrl.sources.polymarket.slug import parse_updown_slug

__all__ = ["parse_clob_ws"]

_WsHandler = Callable[[dict[str, Any], str, int, TokenMap], list[Event]]


def parse_clob_ws(text: str, recv_ns: int, *, tokens: TokenMap) -> list[Event]:
    """One CLOB market-channel frame -> events.

    ``tokens`` maps token id -> (asset, ``Up``/``Down``) and fills ``asset`` (None for a token
    not in it). A frame is one event object or a JSON array of them (of mixed types); text
    ``PONG``/``PING`` yields nothing. Raises ParseError when the frame as a whole is bad;
    a bad element of an array yields a ``parse_error`` status event in its place.
    """
    if text in HEARTBEATS or text.strip() in HEARTBEATS:
        return []
    if text[:1] != "[" and text.lstrip()[:1] != "[":
        data = load_json(text, "polymarket ws", CH_POLYMARKET_WS)
        if not isinstance(data, dict):
            raise ParseError(
                f"polymarket ws: frame must be an object or an array, got {type(data).__name__}",
                channel=CH_POLYMARKET_WS,
                raw=text,
            )
        return _ws_event(data, text, recv_ns, tokens)
    # An array frame: decode element by element (one pass over the text, as json.loads
    # would) so that each row keeps the exact text of its own element as raw.
    try:
        items = iter_json_array(text)
    except ParseError as e:
        raise ParseError(f"polymarket ws: {e}", channel=CH_POLYMARKET_WS, raw=text) from None
    out: list[Event] = []
    for obj, raw in items:
        try:
            out.extend(_ws_event(obj, raw, recv_ns, tokens))
        except ParseError as e:
            out.append(parse_error_event(CH_POLYMARKET_WS, recv_ns, str(e), raw))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            # Not expected (fields are checked), but one odd element must not sink the rest.
            msg = f"polymarket ws: {type(e).__name__}: {e}"
            out.append(parse_error_event(CH_POLYMARKET_WS, recv_ns, msg, raw))
    return out


def _ws_event(obj: Any, raw: str, recv_ns: int, tokens: TokenMap) -> list[Event]:
    if not isinstance(obj, dict):
        raise ParseError(f"polymarket ws: event must be an object, got {type(obj).__name__}")
    et = obj.get("event_type")
    handler = _WS_HANDLERS.get(et) if isinstance(et, str) else None
    if handler is None:
        if et is None:
            raise ParseError("polymarket ws: event has no 'event_type'")
        raise ParseError(f"polymarket ws: unknown event_type {str(et)[:40]!r}")
    return handler(obj, raw, recv_ns, tokens)


def _ws_book(o: dict[str, Any], raw: str, recv_ns: int, tokens: TokenMap) -> list[Event]:
    return [book_row(o, raw, recv_ns, tokens, origin="ws", ctx="polymarket ws book")]


def _ws_price_change(o: dict[str, Any], raw: str, recv_ns: int, tokens: TokenMap) -> list[Event]:
    ctx = "polymarket ws price_change"
    market = req_str(o, "market", ctx)
    exch_ns = req_time(o, "timestamp", ctx)
    entries = o.get("price_changes")
    if entries is not None:
        # Current form (2025-09-15 on): each entry names its own token, hash and BBO.
        if not isinstance(entries, list):
            raise ParseError(f"{ctx}: field 'price_changes' must be a list")
        out = []
        for i, e in enumerate(entries):
            ectx = f"{ctx} price_changes[{i}]"
            e = as_object(e, ectx)
            token = req_str(e, "asset_id", ectx)
            out.append(
                Event(
                    stream="polymarket.price_change",
                    recv_ns=recv_ns,
                    exch_ns=exch_ns,
                    key=token,
                    asset=token_asset(tokens, token),
                    fields={
                        "market": market,
                        "entry": i,
                        "side": req_side(e, "side", ectx),
                        "price": req_num(e, "price", ectx),
                        "size": req_num(e, "size", ectx),
                        "hash": opt_str(e, "hash", ectx),
                        "best_bid": opt_num(e, "best_bid", ectx),
                        "best_ask": opt_num(e, "best_ask", ectx),
                    },
                    raw=raw,
                )
            )
        return out
    # Older forms name the token once at the top and carry one hash for the frame.
    token = req_str(o, "asset_id", ctx)
    asset = token_asset(tokens, token)
    frame_hash = opt_str(o, "hash", ctx)
    changes = o.get("changes")
    if changes is None:
        # Oldest (2024) flat form: a single change at the top level.
        changes, flat = [o], True
    elif not isinstance(changes, list):
        raise ParseError(f"{ctx}: field 'changes' must be a list")
    else:
        flat = False  # legacy 2024-25 form: changes[] of {price, side, size}
    out = []
    for i, c in enumerate(changes):
        cctx = ctx if flat else f"{ctx} changes[{i}]"
        c = as_object(c, cctx)
        out.append(
            Event(
                stream="polymarket.price_change",
                recv_ns=recv_ns,
                exch_ns=exch_ns,
                key=token,
                asset=asset,
                fields={
                    "market": market,
                    "entry": i,
                    "side": req_side(c, "side", cctx),
                    "price": req_num(c, "price", cctx),
                    "size": req_num(c, "size", cctx),
                    "hash": frame_hash,
                    "best_bid": None,
                    "best_ask": None,
                },
                raw=raw,
            )
        )
    return out


def _ws_trade(o: dict[str, Any], raw: str, recv_ns: int, tokens: TokenMap) -> list[Event]:
    ctx = "polymarket ws last_trade_price"
    token = req_str(o, "asset_id", ctx)
    return [
        Event(
            stream="polymarket.trade",
            recv_ns=recv_ns,
            exch_ns=req_time(o, "timestamp", ctx),
            key=token,
            asset=token_asset(tokens, token),
            fields={
                "market": req_str(o, "market", ctx),
                "price": req_num(o, "price", ctx),
                "size": req_num(o, "size", ctx),
                "side": req_side(o, "side", ctx),
                "fee_rate_bps": opt_num(o, "fee_rate_bps", ctx),
                "transaction_hash": opt_str(o, "transaction_hash", ctx),
            },
            raw=raw,
        )
    ]


def _ws_tick_size(o: dict[str, Any], raw: str, recv_ns: int, tokens: TokenMap) -> list[Event]:
    ctx = "polymarket ws tick_size_change"
    token = req_str(o, "asset_id", ctx)
    return [
        Event(
            stream="polymarket.tick_size",
            recv_ns=recv_ns,
            exch_ns=req_time(o, "timestamp", ctx),
            key=token,
            asset=token_asset(tokens, token),
            fields={
                "market": req_str(o, "market", ctx),
                "old_tick_size": req_num(o, "old_tick_size", ctx),
                "new_tick_size": req_num(o, "new_tick_size", ctx),
            },
            raw=raw,
        )
    ]


def _ws_best_bid_ask(o: dict[str, Any], raw: str, recv_ns: int, tokens: TokenMap) -> list[Event]:
    ctx = "polymarket ws best_bid_ask"
    token = req_str(o, "asset_id", ctx)
    return [
        Event(
            stream="polymarket.best_bid_ask",
            recv_ns=recv_ns,
            exch_ns=req_time(o, "timestamp", ctx),
            key=token,
            asset=token_asset(tokens, token),
            fields={
                "market": req_str(o, "market", ctx),
                "best_bid": opt_num(o, "best_bid", ctx),
                "best_ask": opt_num(o, "best_ask", ctx),
                "spread": opt_num(o, "spread", ctx),
            },
            raw=raw,
        )
    ]


# A new_market frame carries neither a minimum order size nor (in the documented form) a tick
# size. Every Up/Down market so far opened at tick 0.01 with a 5-share minimum (FACTS §1, §5);
# the Gamma row read for the same market later carries the real values.
_NEW_MARKET_TICK = 0.01

_NEW_MARKET_MIN_SIZE = 5.0


def _ws_new_market(o: dict[str, Any], raw: str, recv_ns: int, tokens: TokenMap) -> list[Event]:
    ctx = "polymarket ws new_market"
    slug = o.get("slug")
    parsed = parse_updown_slug(slug)
    if parsed is None or parsed.interval_s != 900:
        # Markets we do not trade are broadcast too; keep the frame, emit no market row.
        return [
            status_event(
                "control",
                recv_ns,
                channel=CH_POLYMARKET_WS,
                stream="polymarket.market",
                message=f"new_market {str(slug)[:80]!r} is not a 15m Up/Down market of ours",
                raw=raw,
            )
        ]
    ctx = f"{ctx} {slug}"
    cid = o.get("market") or o.get("condition_id")
    if not isinstance(cid, str) or not cid:
        raise ParseError(f"{ctx}: missing field 'market' (condition id)")
    ids_name = "assets_ids" if "assets_ids" in o else "clob_token_ids"
    up, down = up_down_tokens(json_list(o, "outcomes", ctx), json_list(o, ids_name, ctx), ctx)
    tick = opt_num(o, "order_price_min_tick_size", ctx)
    min_size = opt_num(o, "order_min_size", ctx)
    fees = fee_columns(o.get("fees_enabled"), o.get("fee_schedule"), ctx, parsed.start_ns)
    active = o.get("active", True)
    if not isinstance(active, bool):
        raise ParseError(f"{ctx}: field 'active' must be true or false, got {active!r}")
    market_id = require(o, "id", ctx)
    return [
        Event(
            stream="polymarket.market",
            recv_ns=recv_ns,
            exch_ns=req_time(o, "timestamp", ctx),
            key=cid,
            asset=parsed.asset,
            fields={
                "slug": slug,
                "market_id": str(market_id),
                "question": req_str(o, "question", ctx),
                "up_token": up,
                "down_token": down,
                "window_start_ns": parsed.start_ns,
                "window_end_ns": parsed.end_ns,
                "tick_size": _NEW_MARKET_TICK if tick is None else tick,
                "min_size": _NEW_MARKET_MIN_SIZE if min_size is None else min_size,
                **fees,
                "resolution_source": opt_str(o, "resolution_source", ctx),
                "twap_seconds": None,
                "active": active,
                "closed": False,
            },
            raw=raw,
        )
    ]


def _ws_market_resolved(o: dict[str, Any], raw: str, recv_ns: int, tokens: TokenMap) -> list[Event]:
    ctx = "polymarket ws market_resolved"
    cid = req_str(o, "market", ctx)
    winner = opt_str(o, "winning_asset_id", ctx)
    outcome = outcome_word(req_str(o, "winning_outcome", ctx))
    slug = opt_str(o, "slug", ctx)
    parsed = parse_updown_slug(slug)
    asset = token_asset(tokens, winner) if winner is not None else None
    if asset is None and parsed is not None:
        asset = parsed.asset
    up_price, down_price = final_prices(outcome)
    return [
        Event(
            stream="polymarket.resolution",
            recv_ns=recv_ns,
            exch_ns=req_time(o, "timestamp", ctx),
            key=cid,
            asset=asset,
            fields={
                "slug": slug,
                "window_start_ns": parsed.start_ns if parsed else None,
                "window_end_ns": parsed.end_ns if parsed else None,
                "outcome": outcome,
                "up_price": up_price,
                "down_price": down_price,
                "winning_token": winner,
                "source": "ws",
            },
            raw=raw,
        )
    ]


_WS_HANDLERS: dict[str, _WsHandler] = {
    "book": _ws_book,
    "price_change": _ws_price_change,
    "last_trade_price": _ws_trade,
    "tick_size_change": _ws_tick_size,
    "best_bid_ask": _ws_best_bid_ask,
    "new_market": _ws_new_market,
    "market_resolved": _ws_market_resolved,
}
