"""Polymarket CLOB, Gamma and reference-price frames -> Events (pure: no I/O, no clock).

One function per channel (see :mod:`polyrl.sources.parse`, which dispatches to them):

``parse_clob_ws``      CLOB market-channel WebSocket frame (one event object or a JSON array)
``parse_gamma``        Gamma ``/markets`` / ``/events`` response -> ``polymarket.market``
                       (+ ``polymarket.resolution`` once closed and decided)
``parse_clob_market``  CLOB ``GET /markets/{condition_id}`` -> ``polymarket.resolution``
``parse_clob_book``    CLOB ``GET /book?token_id=`` -> ``polymarket.book`` (origin ``rest``)
``parse_rtds``         RTDS (``ws-live-data``) and PolyBolt (``ws-live-v2``) -> ``reference.price``

Every function decodes its text once: one ``json.loads`` for an object frame, one
element-by-element pass (:func:`~polyrl.sources.jsontext.iter_json_array`) for an array
frame (Gamma additionally decodes the JSON-encoded strings ``outcomes``/``clobTokenIds``/
``outcomePrices`` it carries). Each raises :class:`~polyrl.errors.ParseError` naming the
event type and field when the frame cannot be read as a whole. A JSON-array WebSocket
frame is parsed element by element: a bad element becomes one ``recorder.status``
``parse_error`` event (raw = that element's exact text) and the good elements still parse.

Conventions that hold for every row emitted here:

* times are integer ns since the epoch; CLOB timestamps arrive as decimal strings of ms,
  RTDS/PolyBolt ones as JSON integers of ms (both via :func:`venue_time_to_ns`);
* prices and sizes are float64 (USDC probability and shares; USD for reference prices);
* book sides are sorted best first (bids descending, asks ascending) whatever the wire
  order: live ``book`` frames list bids ascending and asks descending;
* ``raw`` is the exact text the row came from: the whole frame, or for an element of a
  JSON-array frame the exact substring of that element.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from polyrl.errors import ParseError
from polyrl.events import (
    CH_POLYMARKET_CLOB_BOOK,
    CH_POLYMARKET_CLOB_MARKET,
    CH_POLYMARKET_GAMMA,
    CH_POLYMARKET_WS,
    CH_RTDS_WS,
    NS_PER_S,
    Event,
    asset_of_symbol,
    iso_to_ns,
    status_event,
    venue_time_to_ns,
)
from polyrl.sources.jsontext import iter_json_array
from polyrl.sources.parse import TokenMap, parse_error_event
from polyrl.sources.polymarket.fees import crypto_fee_schedule

__all__ = [
    "UpDownSlug",
    "parse_clob_book",
    "parse_clob_market",
    "parse_clob_ws",
    "parse_gamma",
    "parse_rtds",
    "parse_updown_slug",
]

_HEARTBEATS = frozenset({"PING", "PONG"})
_SIDES = frozenset({"BUY", "SELL"})

# ---------------------------------------------------------------------------------------------
# Up/Down market slugs

_SLUG_RE = re.compile(r"(btc|eth|sol|xrp)-updown-(5m|15m)-(\d{9,11})")
_INTERVAL_S = {"5m": 300, "15m": 900}


@dataclass(frozen=True, slots=True)
class UpDownSlug:
    """What an Up/Down slug ``{asset}-updown-{5m|15m}-{window_start_s}`` says.

    ``start_ns``/``end_ns`` bound the window (``end_ns = start_ns + interval``), in ns.
    """

    asset: str
    interval_s: int
    start_ns: int

    @property
    def end_ns(self) -> int:
        """Window end, ns (start + interval)."""
        return self.start_ns + self.interval_s * NS_PER_S


def parse_updown_slug(slug: object) -> UpDownSlug | None:
    """An Up/Down crypto slug of one of our assets, or None for any other market."""
    if not isinstance(slug, str):
        return None
    m = _SLUG_RE.fullmatch(slug)
    if m is None:
        return None
    return UpDownSlug(m.group(1), _INTERVAL_S[m.group(2)], int(m.group(3)) * NS_PER_S)


def _outcome_word(word: str) -> str:
    """``up``/``Up`` -> ``Up``, ``down`` -> ``Down``; any other outcome word kept as given."""
    low = word.lower()
    if low == "up":
        return "Up"
    if low == "down":
        return "Down"
    return word


# ---------------------------------------------------------------------------------------------
# Field access that names what is wrong. Messages read "<context>: <problem> <field>".


def _loads(text: str, ctx: str, channel: str) -> Any:
    if not text or text.isspace():
        raise ParseError(f"{ctx}: empty frame", channel=channel, raw=text)
    try:
        return json.loads(text)
    except ValueError as e:  # JSONDecodeError, and UnicodeDecodeError on odd input
        raise ParseError(f"{ctx}: not valid JSON ({e})", channel=channel, raw=text) from None


def _obj(value: Any, ctx: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParseError(f"{ctx}: expected a JSON object, got {type(value).__name__}")
    return value


def _get(o: dict[str, Any], name: str, ctx: str) -> Any:
    try:
        return o[name]
    except KeyError:
        raise ParseError(f"{ctx}: missing field {name!r}") from None


def _str(o: dict[str, Any], name: str, ctx: str) -> str:
    v = _get(o, name, ctx)
    if not isinstance(v, str):
        raise ParseError(f"{ctx}: field {name!r} must be a string, got {type(v).__name__}")
    return v


def _opt_str(o: dict[str, Any], name: str, ctx: str) -> str | None:
    """A string field that may be absent; ``""`` and null read as None."""
    v = o.get(name)
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise ParseError(f"{ctx}: field {name!r} must be a string, got {type(v).__name__}")
    return v


def _float(v: Any, name: str, ctx: str) -> float:
    # bool is an int subclass: a true/false where a number belongs is a wrong type, not 1/0.
    if isinstance(v, bool):
        raise ParseError(f"{ctx}: field {name!r} must be a number, got a boolean")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ParseError(f"{ctx}: field {name!r} is not a number: {str(v)[:40]!r}") from None
    if not math.isfinite(f):
        raise ParseError(f"{ctx}: field {name!r} is not finite: {v!r}")
    return f


def _num(o: dict[str, Any], name: str, ctx: str) -> float:
    return _float(_get(o, name, ctx), name, ctx)


def _opt_num(o: dict[str, Any], name: str, ctx: str) -> float | None:
    """A numeric field that may be absent; ``""`` and null read as None (no value)."""
    v = o.get(name)
    if v is None or v == "":
        return None
    return _float(v, name, ctx)


def _bool(o: dict[str, Any], name: str, ctx: str) -> bool:
    v = _get(o, name, ctx)
    if not isinstance(v, bool):
        raise ParseError(f"{ctx}: field {name!r} must be true or false, got {v!r}")
    return v


def _ts(o: dict[str, Any], name: str, ctx: str) -> int:
    """A venue time (ms as a decimal string or a JSON integer) -> ns."""
    v = _get(o, name, ctx)
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise ParseError(f"{ctx}: field {name!r} must be a time in ms, got {type(v).__name__}")
    try:
        return venue_time_to_ns(v)
    except ValueError:
        raise ParseError(f"{ctx}: field {name!r} is not a time in ms: {str(v)[:40]!r}") from None


def _iso(o: dict[str, Any], name: str, ctx: str) -> int | None:
    """An ISO-8601 time field -> ns; absent, null or ``""`` -> None."""
    v = o.get(name)
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise ParseError(f"{ctx}: field {name!r} must be an ISO time, got {type(v).__name__}")
    try:
        return iso_to_ns(v)
    except ValueError:
        raise ParseError(f"{ctx}: field {name!r} is not an ISO time: {v[:40]!r}") from None


def _side(o: dict[str, Any], name: str, ctx: str) -> str:
    v = _get(o, name, ctx)
    if v not in _SIDES:
        raise ParseError(f"{ctx}: field {name!r} must be BUY or SELL, got {str(v)[:20]!r}")
    return v  # type: ignore[no-any-return]


def _levels(
    o: dict[str, Any], name: str, ctx: str, *, bids: bool
) -> tuple[list[float], list[float]]:
    """A ``[{price, size}, ...]`` side -> (prices, sizes), best first (bids desc, asks asc)."""
    levels = _get(o, name, ctx)
    if not isinstance(levels, list):
        raise ParseError(f"{ctx}: field {name!r} must be a list of levels")
    try:
        pairs = [(float(lv["price"]), float(lv["size"])) for lv in levels]
    except (KeyError, TypeError, ValueError):
        for i, lv in enumerate(levels):  # slow path only to name the bad level
            _num(_obj(lv, f"{ctx} {name}[{i}]"), "price", f"{ctx} {name}[{i}]")
            _num(lv, "size", f"{ctx} {name}[{i}]")
        raise  # pragma: no cover - the loop above raises for whatever failed
    # Live frames list bids ascending and asks descending (best last); never trust the order.
    pairs.sort(reverse=bids)
    return [p for p, _ in pairs], [s for _, s in pairs]


def _json_list(o: dict[str, Any], name: str, ctx: str) -> list[Any]:
    """A list field that Gamma sends JSON-encoded in a string (``"[\\"Up\\", \\"Down\\"]"``)."""
    v = _get(o, name, ctx)
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            raise ParseError(f"{ctx}: field {name!r} is not a JSON-encoded list") from None
    if not isinstance(v, list):
        raise ParseError(f"{ctx}: field {name!r} must be a list, got {type(v).__name__}")
    return v


def _asset(tokens: TokenMap, token_id: str) -> str | None:
    t = tokens.get(token_id)
    return t[0] if t is not None else None


def _up_down_index(outcomes: list[Any], tokens: list[Any], ctx: str) -> tuple[str, str]:
    """(up_token, down_token) by the position of ``Up``/``Down`` in ``outcomes``."""
    if len(outcomes) != 2 or len(tokens) != 2:
        raise ParseError(f"{ctx}: expected 2 outcomes and 2 token ids, got {outcomes!r}")
    words = [_outcome_word(w) if isinstance(w, str) else w for w in outcomes]
    try:
        up, down = tokens[words.index("Up")], tokens[words.index("Down")]
    except ValueError:
        raise ParseError(f"{ctx}: field 'outcomes' is not Up/Down: {outcomes!r}") from None
    if not isinstance(up, str) or not isinstance(down, str) or not up or not down:
        raise ParseError(f"{ctx}: token ids must be non-empty strings, got {tokens!r}")
    return up, down


# ---------------------------------------------------------------------------------------------
# CLOB market channel WebSocket

_WsHandler = Callable[[dict[str, Any], str, int, TokenMap], list[Event]]


def parse_clob_ws(text: str, recv_ns: int, *, tokens: TokenMap) -> list[Event]:
    """One CLOB market-channel frame -> events.

    ``tokens`` maps token id -> (asset, ``Up``/``Down``) and fills ``asset`` (None for a token
    not in it). A frame is one event object or a JSON array of them (of mixed types); text
    ``PONG``/``PING`` yields nothing. Raises ParseError when the frame as a whole is bad;
    a bad element of an array yields a ``parse_error`` status event in its place.
    """
    if text in _HEARTBEATS or text.strip() in _HEARTBEATS:
        return []
    if text[:1] != "[" and text.lstrip()[:1] != "[":
        data = _loads(text, "polymarket ws", CH_POLYMARKET_WS)
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


def _book_event(
    o: dict[str, Any], raw: str, recv_ns: int, tokens: TokenMap, *, origin: str, ctx: str
) -> Event:
    token = _str(o, "asset_id", ctx)
    bid_px, bid_size = _levels(o, "bids", ctx, bids=True)
    ask_px, ask_size = _levels(o, "asks", ctx, bids=False)
    return Event(
        stream="polymarket.book",
        recv_ns=recv_ns,
        exch_ns=_ts(o, "timestamp", ctx),
        key=token,
        asset=_asset(tokens, token),
        fields={
            "market": _str(o, "market", ctx),
            "origin": origin,
            "bid_px": bid_px,
            "bid_size": bid_size,
            "ask_px": ask_px,
            "ask_size": ask_size,
            "hash": _opt_str(o, "hash", ctx),
            "tick_size": _opt_num(o, "tick_size", ctx),
            # The initial snapshot sends "" when the token has not traded yet.
            "last_trade_price": _opt_num(o, "last_trade_price", ctx),
            "min_order_size": _opt_num(o, "min_order_size", ctx),
        },
        raw=raw,
    )


def _ws_book(o: dict[str, Any], raw: str, recv_ns: int, tokens: TokenMap) -> list[Event]:
    return [_book_event(o, raw, recv_ns, tokens, origin="ws", ctx="polymarket ws book")]


def _ws_price_change(o: dict[str, Any], raw: str, recv_ns: int, tokens: TokenMap) -> list[Event]:
    ctx = "polymarket ws price_change"
    market = _str(o, "market", ctx)
    exch_ns = _ts(o, "timestamp", ctx)
    entries = o.get("price_changes")
    if entries is not None:
        # Current form (2025-09-15 on): each entry names its own token, hash and BBO.
        if not isinstance(entries, list):
            raise ParseError(f"{ctx}: field 'price_changes' must be a list")
        out = []
        for i, e in enumerate(entries):
            ectx = f"{ctx} price_changes[{i}]"
            e = _obj(e, ectx)
            token = _str(e, "asset_id", ectx)
            out.append(
                Event(
                    stream="polymarket.price_change",
                    recv_ns=recv_ns,
                    exch_ns=exch_ns,
                    key=token,
                    asset=_asset(tokens, token),
                    fields={
                        "market": market,
                        "entry": i,
                        "side": _side(e, "side", ectx),
                        "price": _num(e, "price", ectx),
                        "size": _num(e, "size", ectx),
                        "hash": _opt_str(e, "hash", ectx),
                        "best_bid": _opt_num(e, "best_bid", ectx),
                        "best_ask": _opt_num(e, "best_ask", ectx),
                    },
                    raw=raw,
                )
            )
        return out
    # Older forms name the token once at the top and carry one hash for the frame.
    token = _str(o, "asset_id", ctx)
    asset = _asset(tokens, token)
    frame_hash = _opt_str(o, "hash", ctx)
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
        c = _obj(c, cctx)
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
                    "side": _side(c, "side", cctx),
                    "price": _num(c, "price", cctx),
                    "size": _num(c, "size", cctx),
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
    token = _str(o, "asset_id", ctx)
    return [
        Event(
            stream="polymarket.trade",
            recv_ns=recv_ns,
            exch_ns=_ts(o, "timestamp", ctx),
            key=token,
            asset=_asset(tokens, token),
            fields={
                "market": _str(o, "market", ctx),
                "price": _num(o, "price", ctx),
                "size": _num(o, "size", ctx),
                "side": _side(o, "side", ctx),
                "fee_rate_bps": _opt_num(o, "fee_rate_bps", ctx),
                "transaction_hash": _opt_str(o, "transaction_hash", ctx),
            },
            raw=raw,
        )
    ]


def _ws_tick_size(o: dict[str, Any], raw: str, recv_ns: int, tokens: TokenMap) -> list[Event]:
    ctx = "polymarket ws tick_size_change"
    token = _str(o, "asset_id", ctx)
    return [
        Event(
            stream="polymarket.tick_size",
            recv_ns=recv_ns,
            exch_ns=_ts(o, "timestamp", ctx),
            key=token,
            asset=_asset(tokens, token),
            fields={
                "market": _str(o, "market", ctx),
                "old_tick_size": _num(o, "old_tick_size", ctx),
                "new_tick_size": _num(o, "new_tick_size", ctx),
            },
            raw=raw,
        )
    ]


def _ws_best_bid_ask(o: dict[str, Any], raw: str, recv_ns: int, tokens: TokenMap) -> list[Event]:
    ctx = "polymarket ws best_bid_ask"
    token = _str(o, "asset_id", ctx)
    return [
        Event(
            stream="polymarket.best_bid_ask",
            recv_ns=recv_ns,
            exch_ns=_ts(o, "timestamp", ctx),
            key=token,
            asset=_asset(tokens, token),
            fields={
                "market": _str(o, "market", ctx),
                "best_bid": _opt_num(o, "best_bid", ctx),
                "best_ask": _opt_num(o, "best_ask", ctx),
                "spread": _opt_num(o, "spread", ctx),
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
    up, down = _up_down_index(_json_list(o, "outcomes", ctx), _json_list(o, ids_name, ctx), ctx)
    tick = _opt_num(o, "order_price_min_tick_size", ctx)
    min_size = _opt_num(o, "order_min_size", ctx)
    fees = _fees(o.get("fees_enabled"), o.get("fee_schedule"), ctx, parsed.start_ns)
    active = o.get("active", True)
    if not isinstance(active, bool):
        raise ParseError(f"{ctx}: field 'active' must be true or false, got {active!r}")
    market_id = _get(o, "id", ctx)
    return [
        Event(
            stream="polymarket.market",
            recv_ns=recv_ns,
            exch_ns=_ts(o, "timestamp", ctx),
            key=cid,
            asset=parsed.asset,
            fields={
                "slug": slug,
                "market_id": str(market_id),
                "question": _str(o, "question", ctx),
                "up_token": up,
                "down_token": down,
                "window_start_ns": parsed.start_ns,
                "window_end_ns": parsed.end_ns,
                "tick_size": _NEW_MARKET_TICK if tick is None else tick,
                "min_size": _NEW_MARKET_MIN_SIZE if min_size is None else min_size,
                **fees,
                "resolution_source": _opt_str(o, "resolution_source", ctx),
                "twap_seconds": None,
                "active": active,
                "closed": False,
            },
            raw=raw,
        )
    ]


def _ws_market_resolved(o: dict[str, Any], raw: str, recv_ns: int, tokens: TokenMap) -> list[Event]:
    ctx = "polymarket ws market_resolved"
    cid = _str(o, "market", ctx)
    winner = _opt_str(o, "winning_asset_id", ctx)
    outcome = _outcome_word(_str(o, "winning_outcome", ctx))
    slug = _opt_str(o, "slug", ctx)
    parsed = parse_updown_slug(slug)
    asset = _asset(tokens, winner) if winner is not None else None
    if asset is None and parsed is not None:
        asset = parsed.asset
    up_price, down_price = _final_prices(outcome)
    return [
        Event(
            stream="polymarket.resolution",
            recv_ns=recv_ns,
            exch_ns=_ts(o, "timestamp", ctx),
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


def _final_prices(outcome: str) -> tuple[float | None, float | None]:
    if outcome == "Up":
        return 1.0, 0.0
    if outcome == "Down":
        return 0.0, 1.0
    if outcome == "split":
        return 0.5, 0.5
    return None, None


_WS_HANDLERS: dict[str, _WsHandler] = {
    "book": _ws_book,
    "price_change": _ws_price_change,
    "last_trade_price": _ws_trade,
    "tick_size_change": _ws_tick_size,
    "best_bid_ask": _ws_best_bid_ask,
    "new_market": _ws_new_market,
    "market_resolved": _ws_market_resolved,
}


# ---------------------------------------------------------------------------------------------
# Fees (Gamma feeSchedule / WS fee_schedule)


def _fees(enabled: Any, schedule: Any, ctx: str, start_ns: int) -> dict[str, Any]:
    """The fee columns of a market row (``start_ns``: the window's start).

    ``fee_rate`` is the schedule's rate when fees are enabled and a schedule is given, 0 when
    fees are not enabled. When ``feesEnabled`` is absent, a present schedule counts as
    enabled. Enabled without a schedule: the crypto schedule published for the window's
    start (:mod:`polyrl.sources.polymarket.fees`), flagged ``fee_schedule_assumed``.
    """
    if enabled is not None and not isinstance(enabled, bool):
        raise ParseError(f"{ctx}: field 'feesEnabled' must be true or false, got {enabled!r}")
    if schedule is None:
        if enabled:
            return {"fees_enabled": True, **crypto_fee_schedule(start_ns),
                    "fee_schedule_assumed": True}  # fmt: skip
        return {
            "fees_enabled": False,
            "fee_rate": 0.0,
            "fee_exponent": 1.0,
            "fee_taker_only": True,
            "fee_rebate_rate": None,
            "fee_schedule_assumed": False,
        }
    sctx = f"{ctx} feeSchedule"
    sched = _obj(schedule, sctx)
    on = True if enabled is None else enabled
    taker_only = sched.get("takerOnly", sched.get("taker_only", True))
    if not isinstance(taker_only, bool):
        raise ParseError(f"{sctx}: field 'takerOnly' must be true or false, got {taker_only!r}")
    rebate = sched.get("rebateRate", sched.get("rebate_rate"))
    return {
        "fees_enabled": on,
        "fee_rate": _num(sched, "rate", sctx) if on else 0.0,
        "fee_exponent": _num(sched, "exponent", sctx),
        "fee_taker_only": taker_only,
        "fee_rebate_rate": None if rebate is None else _float(rebate, "rebateRate", sctx),
        "fee_schedule_assumed": False,
    }


# ---------------------------------------------------------------------------------------------
# Gamma REST


def parse_gamma(text: str, recv_ns: int) -> list[Event]:
    """A Gamma response -> one ``polymarket.market`` row per Up/Down market in it.

    Accepts a market object (``/markets/slug/<slug>``), a list of markets
    (``/markets?slug=``), an event object with ``markets`` (``/events/slug/<slug>``) or a list
    of events (``/events?slug=``). A closed market whose ``outcomePrices`` are decisive
    (``["1","0"]``, ``["0","1"]``, or ``["0.5","0.5"]`` = split) adds a
    ``polymarket.resolution`` row (source ``gamma``). Markets that are not 5m/15m Up/Down
    markets of our assets yield nothing; a response with no market object at all, or one
    that is not JSON, raises ParseError. ``raw`` is the whole response for every row.
    """
    data = _loads(text, "gamma", CH_POLYMARKET_GAMMA)
    markets = list(_gamma_markets(data))
    if not markets:
        raise ParseError(
            "gamma: response holds no market object (no 'conditionId' and no 'markets')",
            channel=CH_POLYMARKET_GAMMA,
            raw=text,
        )
    out: list[Event] = []
    for m in markets:
        out.extend(_gamma_market(m, text, recv_ns))
    return out


def _gamma_markets(data: Any) -> Iterator[dict[str, Any]]:
    items = data if isinstance(data, list) else [data]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ParseError(f"gamma: item {i} is a {type(item).__name__}, not an object")
        if "conditionId" in item:
            yield item
        elif "markets" in item:  # an event wrapping its markets
            ms = item["markets"]
            if not isinstance(ms, list):
                raise ParseError(f"gamma: event {item.get('slug')!r} field 'markets' not a list")
            for j, m in enumerate(ms):
                yield _obj(m, f"gamma event {item.get('slug')!r} markets[{j}]")
        else:
            raise ParseError(f"gamma: item {i} is neither a market nor an event")


def _gamma_market(m: dict[str, Any], raw: str, recv_ns: int) -> list[Event]:
    slug = m.get("slug")
    parsed = parse_updown_slug(slug)
    if parsed is None:
        return []  # not one of our markets
    ctx = f"gamma market {slug}"
    cid = _str(m, "conditionId", ctx)
    outcomes = _json_list(m, "outcomes", ctx)
    token_ids = _json_list(m, "clobTokenIds", ctx)
    up, down = _up_down_index(outcomes, token_ids, ctx)
    start_ns = _iso(m, "eventStartTime", ctx)
    if start_ns is None:
        start_ns = parsed.start_ns
    end_ns = _iso(m, "endDate", ctx)
    if end_ns is None:
        end_ns = start_ns + parsed.interval_s * NS_PER_S
    crypto_cfg = m.get("cryptoMarketConfig")
    twap = None
    if crypto_cfg is not None:
        cfg = _obj(crypto_cfg, f"{ctx} cryptoMarketConfig")
        twap_v = cfg.get("twapLookbackSeconds")
        # A config that says twapEnabled: false settles on the instantaneous price.
        if twap_v is not None and cfg.get("twapEnabled") is not False:
            twap = int(_float(twap_v, "twapLookbackSeconds", ctx))
    closed = _bool(m, "closed", ctx)
    market = Event(
        stream="polymarket.market",
        recv_ns=recv_ns,
        exch_ns=None,
        key=cid,
        asset=parsed.asset,
        fields={
            "slug": slug,
            "market_id": str(_get(m, "id", ctx)),
            "question": _str(m, "question", ctx),
            "up_token": up,
            "down_token": down,
            "window_start_ns": start_ns,
            "window_end_ns": end_ns,
            "tick_size": _num(m, "orderPriceMinTickSize", ctx),
            "min_size": _num(m, "orderMinSize", ctx),
            **_fees(m.get("feesEnabled"), m.get("feeSchedule"), ctx, start_ns),
            "resolution_source": _opt_str(m, "resolutionSource", ctx),
            "twap_seconds": twap,
            "active": _bool(m, "active", ctx),
            "closed": closed,
        },
        raw=raw,
    )
    if not closed or m.get("outcomePrices") is None:
        return [market]
    prices = [_float(p, "outcomePrices", ctx) for p in _json_list(m, "outcomePrices", ctx)]
    if len(prices) != 2:
        raise ParseError(f"{ctx}: field 'outcomePrices' must hold 2 prices, got {prices!r}")
    words = [_outcome_word(w) for w in outcomes]
    up_price, down_price = prices[words.index("Up")], prices[words.index("Down")]
    if (up_price, down_price) == (1.0, 0.0):
        outcome, winner = "Up", up
    elif (up_price, down_price) == (0.0, 1.0):
        outcome, winner = "Down", down
    elif (up_price, down_price) == (0.5, 0.5):
        outcome, winner = "split", None
    else:
        return [market]  # closed but not decided yet (prices still trading values)
    resolution = Event(
        stream="polymarket.resolution",
        recv_ns=recv_ns,
        exch_ns=_iso(m, "closedTime", ctx),
        key=cid,
        asset=parsed.asset,
        fields={
            "slug": slug,
            "window_start_ns": start_ns,
            "window_end_ns": end_ns,
            "outcome": outcome,
            "up_price": up_price,
            "down_price": down_price,
            "winning_token": winner,
            "source": "gamma",
        },
        raw=raw,
    )
    return [market, resolution]


# ---------------------------------------------------------------------------------------------
# CLOB REST


def parse_clob_market(text: str, recv_ns: int, *, tokens: TokenMap) -> list[Event]:
    """CLOB ``GET /markets/{condition_id}`` -> a ``polymarket.resolution`` row once resolved.

    Resolved means ``closed`` and one of ``tokens[]`` has ``winner: true``; the outcome is
    that token's ``outcome`` (Up/Down normalised, other words kept), up/down prices come from
    ``tokens[].price``. Not resolved yet -> ``[]``. The response carries no resolution time,
    so ``exch_ns`` is None.
    """
    ctx = "clob market"
    o = _obj(_loads(text, ctx, CH_POLYMARKET_CLOB_MARKET), ctx)
    cid = _str(o, "condition_id", ctx)
    ctx = f"clob market {cid[:12]}"
    toks = _get(o, "tokens", ctx)
    if not isinstance(toks, list):
        raise ParseError(f"{ctx}: field 'tokens' must be a list")
    closed = _bool(o, "closed", ctx)
    winners = []
    up_price = down_price = None
    for i, t in enumerate(toks):
        tctx = f"{ctx} tokens[{i}]"
        t = _obj(t, tctx)
        token = _str(t, "token_id", tctx)
        word = _outcome_word(_str(t, "outcome", tctx))
        if word not in ("Up", "Down"):
            mapped = tokens.get(token)
            word = mapped[1] if mapped is not None else word
        price = _opt_num(t, "price", tctx)
        if word == "Up":
            up_price = price
        elif word == "Down":
            down_price = price
        win = t.get("winner", False)
        if not isinstance(win, bool):
            raise ParseError(f"{tctx}: field 'winner' must be true or false, got {win!r}")
        if win:
            winners.append((token, _outcome_word(t["outcome"])))
    if not closed or not winners:
        return []
    if len(winners) > 1:
        raise ParseError(f"{ctx}: {len(winners)} tokens marked winner")
    win_token, outcome = winners[0]
    slug = _opt_str(o, "market_slug", ctx)
    parsed = parse_updown_slug(slug)
    asset = _asset(tokens, win_token) or (parsed.asset if parsed else None)
    return [
        Event(
            stream="polymarket.resolution",
            recv_ns=recv_ns,
            exch_ns=None,
            key=cid,
            asset=asset,
            fields={
                "slug": slug,
                "window_start_ns": parsed.start_ns if parsed else None,
                "window_end_ns": parsed.end_ns if parsed else None,
                "outcome": outcome,
                "up_price": up_price,
                "down_price": down_price,
                "winning_token": win_token,
                "source": "clob",
            },
            raw=text,
        )
    ]


def parse_clob_book(text: str, recv_ns: int, *, tokens: TokenMap) -> list[Event]:
    """CLOB ``GET /book?token_id=`` -> one ``polymarket.book`` row (origin ``rest``)."""
    ctx = "clob book"
    o = _obj(_loads(text, ctx, CH_POLYMARKET_CLOB_BOOK), ctx)
    return [_book_event(o, text, recv_ns, tokens, origin="rest", ctx=ctx)]


# ---------------------------------------------------------------------------------------------
# RTDS (ws-live-data) and PolyBolt (ws-live-v2)

# RTDS topics we read, with the TWAP window each implies when a frame omits ``window_s``.
_RTDS_TOPICS: dict[str, int | None] = {
    "crypto_prices_chainlink": None,
    "crypto_prices": None,
    "crypto_prices_twap_sixty": 60,
    "crypto_prices_twap_thirty": 30,
}
_POLYBOLT_CHANNELS = frozenset({"price.crypto", "price.crypto.twap"})


def parse_rtds(text: str, recv_ns: int, *, channel: str = CH_RTDS_WS) -> list[Event]:
    """A reference-price frame -> ``reference.price`` rows (key = symbol as sent).

    RTDS: ``{topic, type, timestamp, payload}``; ``type: "update"`` -> one row
    (``exch_ns`` = ``payload.timestamp``, ``server_ns`` = top-level ``timestamp``);
    ``type: "subscribe"`` with ``payload.data[]`` -> one backfill row per item.
    PolyBolt: ``{v, channel, seq, ts, snapshot?, dropped?, payload}`` for channels
    ``price.crypto`` and ``price.crypto.twap`` (topic = channel, ``server_ns`` = ``ts``); a
    snapshot's ``payload.data[]`` gives backfill rows; ``dropped > 0`` adds a ``gap`` status
    event before the row; acknowledgements (``{"op": ...}``) give a ``control`` status event
    (``pong`` gives nothing). Text ``PONG``/``PING`` -> ``[]``. Status events name
    ``channel``: the socket the frame came on (RTDS, or PolyBolt's own channel).
    """
    if text in _HEARTBEATS or text.strip() in _HEARTBEATS:
        return []
    o = _loads(text, "rtds", CH_RTDS_WS)
    if not isinstance(o, dict):
        raise ParseError(
            f"rtds: frame must be an object, got {type(o).__name__}", channel=CH_RTDS_WS, raw=text
        )
    if "topic" in o:
        return _rtds(o, text, recv_ns)
    if "op" in o:  # acknowledgements may name a channel too, so test for them first
        return _polybolt_op(o, text, recv_ns, channel)
    if "channel" in o:
        return _polybolt(o, text, recv_ns, channel)
    raise ParseError("rtds: frame has no 'topic' (RTDS), 'channel' or 'op' (PolyBolt)")


def _full_accuracy(o: dict[str, Any], ctx: str) -> str | None:
    v = o.get("full_accuracy_value")
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)  # an integer is exact either way
    raise ParseError(f"{ctx}: field 'full_accuracy_value' must be a string, got {v!r}")


def _window(v: Any, name: str, ctx: str) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ParseError(f"{ctx}: field {name!r} must be an integer, got {v!r}")
    return v


def _price_row(
    *,
    recv_ns: int,
    exch_ns: int,
    symbol: str,
    topic: str,
    value: float,
    full: str | None,
    window_s: int | None,
    server_ns: int | None,
    backfill: bool,
    raw: str,
) -> Event:
    return Event(
        stream="reference.price",
        recv_ns=recv_ns,
        exch_ns=exch_ns,
        key=symbol,
        asset=asset_of_symbol(symbol),
        fields={
            "topic": topic,
            "value": value,
            "full_accuracy": full,
            "window_s": window_s,
            "server_ns": server_ns,
            "backfill": backfill,
        },
        raw=raw,
    )


def _rtds(o: dict[str, Any], raw: str, recv_ns: int) -> list[Event]:
    topic = _str(o, "topic", "rtds")
    if topic not in _RTDS_TOPICS:
        raise ParseError(f"rtds: unknown topic {topic[:60]!r}")
    ctx = f"rtds {topic}"
    kind = _str(o, "type", ctx)
    payload = _obj(_get(o, "payload", ctx), f"{ctx} payload")
    pctx = f"{ctx} payload"
    server_ns = _ts(o, "timestamp", ctx) if o.get("timestamp") is not None else None
    window_s = _window(payload.get("window_s"), "window_s", pctx)
    if window_s is None:
        window_s = _RTDS_TOPICS[topic]
    symbol = _str(payload, "symbol", pctx)
    if kind == "update":
        return [
            _price_row(
                recv_ns=recv_ns,
                exch_ns=_ts(payload, "timestamp", pctx),
                symbol=symbol,
                topic=topic,
                value=_num(payload, "value", pctx),
                full=_full_accuracy(payload, pctx),
                window_s=window_s,
                server_ns=server_ns,
                backfill=False,
                raw=raw,
            )
        ]
    if kind == "subscribe":
        return _backfill(payload, pctx, recv_ns, symbol, topic, window_s, server_ns, raw)
    raise ParseError(f"{ctx}: unknown type {kind[:40]!r}")


def _backfill(
    payload: dict[str, Any],
    pctx: str,
    recv_ns: int,
    symbol: str,
    topic: str,
    window_s: int | None,
    server_ns: int | None,
    raw: str,
) -> list[Event]:
    data = _get(payload, "data", pctx)
    if not isinstance(data, list):
        raise ParseError(f"{pctx}: field 'data' must be a list")
    out = []
    for i, item in enumerate(data):
        ictx = f"{pctx} data[{i}]"
        item = _obj(item, ictx)
        out.append(
            _price_row(
                recv_ns=recv_ns,
                exch_ns=_ts(item, "timestamp", ictx),
                symbol=symbol,
                topic=topic,
                value=_num(item, "value", ictx),
                full=_full_accuracy(item, ictx),
                window_s=window_s,
                server_ns=server_ns,
                backfill=True,
                raw=raw,
            )
        )
    return out


def _polybolt(o: dict[str, Any], raw: str, recv_ns: int, sock: str) -> list[Event]:
    channel = _str(o, "channel", "polybolt")
    if channel not in _POLYBOLT_CHANNELS:
        raise ParseError(f"polybolt: unknown channel {channel[:60]!r}")
    ctx = f"polybolt {channel}"
    server_ns = _ts(o, "ts", ctx)
    pctx = f"{ctx} payload"
    payload = _obj(_get(o, "payload", ctx), pctx)
    symbol = _str(payload, "symbol", pctx)
    window_s = _window(payload.get("window_seconds"), "window_seconds", pctx)
    out: list[Event] = []
    snapshot = o.get("snapshot", False) is True
    if snapshot:
        rows = _backfill(payload, pctx, recv_ns, symbol, channel, window_s, server_ns, raw)
    else:
        rows = [
            _price_row(
                recv_ns=recv_ns,
                exch_ns=_ts(payload, "timestamp", pctx),
                symbol=symbol,
                topic=channel,
                value=_num(payload, "value", pctx),
                full=_full_accuracy(payload, pctx),
                window_s=window_s,
                server_ns=server_ns,
                backfill=False,
                raw=raw,
            )
        ]
    dropped = o.get("dropped")
    if dropped is not None:
        if isinstance(dropped, bool) or not isinstance(dropped, int) or dropped < 0:
            raise ParseError(f"{ctx}: field 'dropped' must be a count, got {dropped!r}")
        if dropped:
            # The server skipped frames for this slow consumer: the series has a hole that
            # ends at this frame's point; when it started is not said.
            out.append(
                status_event(
                    "gap",
                    recv_ns,
                    channel=sock,
                    stream="reference.price",
                    message=f"{channel} {symbol}: server dropped {dropped} frames "
                    f"before seq {o.get('seq')}",
                    gap_end_ns=rows[0].exch_ns if rows else server_ns,
                    raw=raw,
                )
            )
    out.extend(rows)
    return out


def _polybolt_op(o: dict[str, Any], raw: str, recv_ns: int, sock: str) -> list[Event]:
    op = o["op"]
    if op == "pong":
        return []
    if not isinstance(op, str):
        raise ParseError(f"polybolt: field 'op' must be a string, got {op!r}")
    detail = " ".join(
        f"{k}={o[k]}" for k in ("channel", "code", "message", "rid") if o.get(k) is not None
    )
    return [
        status_event(
            "control",
            recv_ns,
            channel=sock,
            stream="reference.price",
            message=f"polybolt {op}" + (f": {detail}" if detail else ""),
            raw=raw,
        )
    ]
