"""Gamma markets and their resolutions -> Events (pure: no I/O, no clock).

Reads the Gamma API (``https://gamma-api.polymarket.com``, Polymarket FACTS §1, §4, §5): a
market object (``/markets/slug/<slug>``), a list of markets (``/markets?slug=``), an event
object with ``markets`` (``/events/slug/<slug>``) or a list of events (``/events?slug=``).
Each 5m/15m Up/Down market of our assets gives one ``polymarket.market`` row (tokens by the
position of Up/Down in ``outcomes``, the window from ``eventStartTime``/``endDate`` or the
slug, tick and minimum size, the fee columns from ``feesEnabled``/``feeSchedule``, the TWAP
lookback from ``cryptoMarketConfig``), plus a ``polymarket.resolution`` row (source
``gamma``) once it is closed and its ``outcomePrices`` are decisive. One ``json.loads`` per
response, plus one per JSON-encoded list field Gamma sends as a string.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from polyrl.errors import ParseError
from polyrl.events import CH_POLYMARKET_GAMMA, NS_PER_S, Event
from polyrl.sources.polymarket.fields import (
    as_object,
    fee_columns,
    finite_float,
    json_list,
    load_json,
    opt_iso,
    opt_str,
    outcome_word,
    req_bool,
    req_num,
    req_str,
    require,
    up_down_tokens,
)
from polyrl.sources.polymarket.slug import parse_updown_slug

__all__ = ["parse_gamma"]


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
    data = load_json(text, "gamma", CH_POLYMARKET_GAMMA)
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
                yield as_object(m, f"gamma event {item.get('slug')!r} markets[{j}]")
        else:
            raise ParseError(f"gamma: item {i} is neither a market nor an event")


def _gamma_market(m: dict[str, Any], raw: str, recv_ns: int) -> list[Event]:
    slug = m.get("slug")
    parsed = parse_updown_slug(slug)
    if parsed is None:
        return []  # not one of our markets
    ctx = f"gamma market {slug}"
    cid = req_str(m, "conditionId", ctx)
    outcomes = json_list(m, "outcomes", ctx)
    token_ids = json_list(m, "clobTokenIds", ctx)
    up, down = up_down_tokens(outcomes, token_ids, ctx)
    start_ns = opt_iso(m, "eventStartTime", ctx)
    if start_ns is None:
        start_ns = parsed.start_ns
    end_ns = opt_iso(m, "endDate", ctx)
    if end_ns is None:
        end_ns = start_ns + parsed.interval_s * NS_PER_S
    crypto_cfg = m.get("cryptoMarketConfig")
    twap = None
    if crypto_cfg is not None:
        cfg = as_object(crypto_cfg, f"{ctx} cryptoMarketConfig")
        twap_v = cfg.get("twapLookbackSeconds")
        # A config that says twapEnabled: false settles on the instantaneous price.
        if twap_v is not None and cfg.get("twapEnabled") is not False:
            twap = int(finite_float(twap_v, "twapLookbackSeconds", ctx))
    closed = req_bool(m, "closed", ctx)
    market = Event(
        stream="polymarket.market",
        recv_ns=recv_ns,
        exch_ns=None,
        key=cid,
        asset=parsed.asset,
        fields={
            "slug": slug,
            "market_id": str(require(m, "id", ctx)),
            "question": req_str(m, "question", ctx),
            "up_token": up,
            "down_token": down,
            "window_start_ns": start_ns,
            "window_end_ns": end_ns,
            "tick_size": req_num(m, "orderPriceMinTickSize", ctx),
            "min_size": req_num(m, "orderMinSize", ctx),
            **fee_columns(m.get("feesEnabled"), m.get("feeSchedule"), ctx, start_ns),
            "resolution_source": opt_str(m, "resolutionSource", ctx),
            "twap_seconds": twap,
            "active": req_bool(m, "active", ctx),
            "closed": closed,
        },
        raw=raw,
    )
    if not closed or m.get("outcomePrices") is None:
        return [market]
    prices = [finite_float(p, "outcomePrices", ctx) for p in json_list(m, "outcomePrices", ctx)]
    if len(prices) != 2:
        raise ParseError(f"{ctx}: field 'outcomePrices' must hold 2 prices, got {prices!r}")
    words = [outcome_word(w) for w in outcomes]
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
        exch_ns=opt_iso(m, "closedTime", ctx),
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
