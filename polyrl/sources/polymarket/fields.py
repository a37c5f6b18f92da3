"""What the Polymarket parsers share: field access that names what is wrong, and row pieces.

Every CLOB (WebSocket and REST), Gamma and RTDS/PolyBolt parser reads its JSON through these
checks, so a missing or mistyped field is a :class:`~polyrl.errors.ParseError` whose message
reads ``"<context>: <problem> <field>"``. The wire conventions they encode (Polymarket FACTS
§2-§5):

* CLOB times are decimal strings of ms, RTDS/PolyBolt ones JSON integers of ms (both via
  :func:`~polyrl.events.venue_time_to_ns`); Gamma times are ISO-8601;
* prices and sizes are decimal strings or numbers -> finite float64 (a boolean is refused);
* a book side ``[{price, size}, ...]`` is sorted best first (bids descending, asks
  ascending) whatever the wire order: live ``book`` frames list bids ascending and asks
  descending;
* Gamma sends ``outcomes``/``clobTokenIds``/``outcomePrices`` as JSON-encoded strings.

Also here, because two message families build the same rows: the ``polymarket.book`` row
(WebSocket ``book`` and REST ``GET /book``), the fee columns of a ``polymarket.market`` row
(Gamma ``feeSchedule`` and WebSocket ``new_market`` ``fee_schedule``), the Up/Down token
order and the final prices of a resolution. Pure.
"""

from __future__ import annotations

import json
import math
from typing import Any

from polyrl.errors import ParseError
from polyrl.events import Event, iso_to_ns, venue_time_to_ns
from polyrl.sources.common import TokenMap
from polyrl.sources.polymarket.fees import crypto_fee_schedule

HEARTBEATS = frozenset({"PING", "PONG"})
"""Text frames the CLOB and RTDS sockets send as keep-alives: they carry no rows."""

_SIDES = frozenset({"BUY", "SELL"})


def outcome_word(word: str) -> str:
    """``up``/``Up`` -> ``Up``, ``down`` -> ``Down``; any other outcome word kept as given."""
    low = word.lower()
    if low == "up":
        return "Up"
    if low == "down":
        return "Down"
    return word


# ---------------------------------------------------------------------------------------------
# Field access that names what is wrong. Messages read "<context>: <problem> <field>".


def load_json(text: str, ctx: str, channel: str) -> Any:
    """The decoded frame; an empty or non-JSON one is a ParseError carrying the channel."""
    if not text or text.isspace():
        raise ParseError(f"{ctx}: empty frame", channel=channel, raw=text)
    try:
        return json.loads(text)
    except ValueError as e:  # JSONDecodeError, and UnicodeDecodeError on odd input
        raise ParseError(f"{ctx}: not valid JSON ({e})", channel=channel, raw=text) from None


def as_object(value: Any, ctx: str) -> dict[str, Any]:
    """``value`` if it is a JSON object, else a ParseError."""
    if not isinstance(value, dict):
        raise ParseError(f"{ctx}: expected a JSON object, got {type(value).__name__}")
    return value


def require(o: dict[str, Any], name: str, ctx: str) -> Any:
    """Field ``name`` of ``o``; a missing one is a ParseError naming it."""
    try:
        return o[name]
    except KeyError:
        raise ParseError(f"{ctx}: missing field {name!r}") from None


def req_str(o: dict[str, Any], name: str, ctx: str) -> str:
    v = require(o, name, ctx)
    if not isinstance(v, str):
        raise ParseError(f"{ctx}: field {name!r} must be a string, got {type(v).__name__}")
    return v


def opt_str(o: dict[str, Any], name: str, ctx: str) -> str | None:
    """A string field that may be absent; ``""`` and null read as None."""
    v = o.get(name)
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise ParseError(f"{ctx}: field {name!r} must be a string, got {type(v).__name__}")
    return v


def finite_float(v: Any, name: str, ctx: str) -> float:
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


def req_num(o: dict[str, Any], name: str, ctx: str) -> float:
    return finite_float(require(o, name, ctx), name, ctx)


def opt_num(o: dict[str, Any], name: str, ctx: str) -> float | None:
    """A numeric field that may be absent; ``""`` and null read as None (no value)."""
    v = o.get(name)
    if v is None or v == "":
        return None
    return finite_float(v, name, ctx)


def req_bool(o: dict[str, Any], name: str, ctx: str) -> bool:
    v = require(o, name, ctx)
    if not isinstance(v, bool):
        raise ParseError(f"{ctx}: field {name!r} must be true or false, got {v!r}")
    return v


def req_time(o: dict[str, Any], name: str, ctx: str) -> int:
    """A venue time (ms as a decimal string or a JSON integer) -> ns."""
    v = require(o, name, ctx)
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise ParseError(f"{ctx}: field {name!r} must be a time in ms, got {type(v).__name__}")
    try:
        return venue_time_to_ns(v)
    except ValueError:
        raise ParseError(f"{ctx}: field {name!r} is not a time in ms: {str(v)[:40]!r}") from None


def opt_iso(o: dict[str, Any], name: str, ctx: str) -> int | None:
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


def req_side(o: dict[str, Any], name: str, ctx: str) -> str:
    v = require(o, name, ctx)
    if v not in _SIDES:
        raise ParseError(f"{ctx}: field {name!r} must be BUY or SELL, got {str(v)[:20]!r}")
    return v


def book_side(
    o: dict[str, Any], name: str, ctx: str, *, bids: bool
) -> tuple[list[float], list[float]]:
    """A ``[{price, size}, ...]`` side -> (prices, sizes), best first (bids desc, asks asc)."""
    levels = require(o, name, ctx)
    if not isinstance(levels, list):
        raise ParseError(f"{ctx}: field {name!r} must be a list of levels")
    try:
        pairs = [(float(lv["price"]), float(lv["size"])) for lv in levels]
    except (KeyError, TypeError, ValueError):
        for i, lv in enumerate(levels):  # slow path only to name the bad level
            req_num(as_object(lv, f"{ctx} {name}[{i}]"), "price", f"{ctx} {name}[{i}]")
            req_num(lv, "size", f"{ctx} {name}[{i}]")
        raise  # pragma: no cover - the loop above raises for whatever failed
    # Live frames list bids ascending and asks descending (best last); never trust the order.
    pairs.sort(reverse=bids)
    return [p for p, _ in pairs], [s for _, s in pairs]


def json_list(o: dict[str, Any], name: str, ctx: str) -> list[Any]:
    """A list field that Gamma sends JSON-encoded in a string (``"[\\"Up\\", \\"Down\\"]"``)."""
    v = require(o, name, ctx)
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            raise ParseError(f"{ctx}: field {name!r} is not a JSON-encoded list") from None
    if not isinstance(v, list):
        raise ParseError(f"{ctx}: field {name!r} must be a list, got {type(v).__name__}")
    return v


def token_asset(tokens: TokenMap, token_id: str) -> str | None:
    """The asset of a token from the token map, None for a token not in it."""
    t = tokens.get(token_id)
    return t[0] if t is not None else None


def up_down_tokens(outcomes: list[Any], tokens: list[Any], ctx: str) -> tuple[str, str]:
    """(up_token, down_token) by the position of ``Up``/``Down`` in ``outcomes``."""
    if len(outcomes) != 2 or len(tokens) != 2:
        raise ParseError(f"{ctx}: expected 2 outcomes and 2 token ids, got {outcomes!r}")
    words = [outcome_word(w) if isinstance(w, str) else w for w in outcomes]
    try:
        up, down = tokens[words.index("Up")], tokens[words.index("Down")]
    except ValueError:
        raise ParseError(f"{ctx}: field 'outcomes' is not Up/Down: {outcomes!r}") from None
    if not isinstance(up, str) or not isinstance(down, str) or not up or not down:
        raise ParseError(f"{ctx}: token ids must be non-empty strings, got {tokens!r}")
    return up, down


# ---------------------------------------------------------------------------------------------
# Rows and columns two message families share


def book_row(
    o: dict[str, Any], raw: str, recv_ns: int, tokens: TokenMap, *, origin: str, ctx: str
) -> Event:
    """The ``polymarket.book`` row of a book object (``origin``: ``ws`` or ``rest``)."""
    token = req_str(o, "asset_id", ctx)
    bid_px, bid_size = book_side(o, "bids", ctx, bids=True)
    ask_px, ask_size = book_side(o, "asks", ctx, bids=False)
    return Event(
        stream="polymarket.book",
        recv_ns=recv_ns,
        exch_ns=req_time(o, "timestamp", ctx),
        key=token,
        asset=token_asset(tokens, token),
        fields={
            "market": req_str(o, "market", ctx),
            "origin": origin,
            "bid_px": bid_px,
            "bid_size": bid_size,
            "ask_px": ask_px,
            "ask_size": ask_size,
            "hash": opt_str(o, "hash", ctx),
            "tick_size": opt_num(o, "tick_size", ctx),
            # The initial snapshot sends "" when the token has not traded yet.
            "last_trade_price": opt_num(o, "last_trade_price", ctx),
            "min_order_size": opt_num(o, "min_order_size", ctx),
        },
        raw=raw,
    )


def fee_columns(enabled: Any, schedule: Any, ctx: str, start_ns: int) -> dict[str, Any]:
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
    sched = as_object(schedule, sctx)
    on = True if enabled is None else enabled
    taker_only = sched.get("takerOnly", sched.get("taker_only", True))
    if not isinstance(taker_only, bool):
        raise ParseError(f"{sctx}: field 'takerOnly' must be true or false, got {taker_only!r}")
    rebate = sched.get("rebateRate", sched.get("rebate_rate"))
    return {
        "fees_enabled": on,
        "fee_rate": req_num(sched, "rate", sctx) if on else 0.0,
        "fee_exponent": req_num(sched, "exponent", sctx),
        "fee_taker_only": taker_only,
        "fee_rebate_rate": None if rebate is None else finite_float(rebate, "rebateRate", sctx),
        "fee_schedule_assumed": False,
    }


def final_prices(outcome: str) -> tuple[float | None, float | None]:
    """(up_price, down_price) a resolved market pays for ``outcome`` (None, None if unknown)."""
    if outcome == "Up":
        return 1.0, 0.0
    if outcome == "Down":
        return 0.0, 1.0
    if outcome == "split":
        return 0.5, 0.5
    return None, None
