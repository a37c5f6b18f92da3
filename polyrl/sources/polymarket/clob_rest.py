"""CLOB REST responses -> Events (pure: no I/O, no clock).

Reads ``https://clob.polymarket.com`` (Polymarket FACTS §3, §4):

``GET /markets/{condition_id}``  -> a ``polymarket.resolution`` row (source ``clob``) once the
                                   market is closed and one of its ``tokens[]`` is the winner
``GET /book?token_id=``          -> one ``polymarket.book`` row (origin ``rest``), the same
                                   row a WebSocket ``book`` frame gives

One ``json.loads`` per response; ``raw`` is the whole response.
"""

from __future__ import annotations

from polyrl.errors import ParseError
from polyrl.events import CH_POLYMARKET_CLOB_BOOK, CH_POLYMARKET_CLOB_MARKET, Event
from polyrl.sources.common import TokenMap
from polyrl.sources.polymarket.fields import (
    as_object,
    book_row,
    load_json,
    opt_num,
    opt_str,
    outcome_word,
    req_bool,
    req_str,
    require,
    token_asset,
)
from polyrl.sources.polymarket.slug import parse_updown_slug

__all__ = ["parse_clob_book", "parse_clob_market"]


def parse_clob_market(text: str, recv_ns: int, *, tokens: TokenMap) -> list[Event]:
    """CLOB ``GET /markets/{condition_id}`` -> a ``polymarket.resolution`` row once resolved.

    Resolved means ``closed`` and one of ``tokens[]`` has ``winner: true``; the outcome is
    that token's ``outcome`` (Up/Down normalised, other words kept), up/down prices come from
    ``tokens[].price``. Not resolved yet -> ``[]``. The response carries no resolution time,
    so ``exch_ns`` is None.
    """
    ctx = "clob market"
    o = as_object(load_json(text, ctx, CH_POLYMARKET_CLOB_MARKET), ctx)
    cid = req_str(o, "condition_id", ctx)
    ctx = f"clob market {cid[:12]}"
    toks = require(o, "tokens", ctx)
    if not isinstance(toks, list):
        raise ParseError(f"{ctx}: field 'tokens' must be a list")
    closed = req_bool(o, "closed", ctx)
    winners = []
    up_price = down_price = None
    for i, t in enumerate(toks):
        tctx = f"{ctx} tokens[{i}]"
        t = as_object(t, tctx)
        token = req_str(t, "token_id", tctx)
        word = outcome_word(req_str(t, "outcome", tctx))
        if word not in ("Up", "Down"):
            mapped = tokens.get(token)
            word = mapped[1] if mapped is not None else word
        price = opt_num(t, "price", tctx)
        if word == "Up":
            up_price = price
        elif word == "Down":
            down_price = price
        win = t.get("winner", False)
        if not isinstance(win, bool):
            raise ParseError(f"{tctx}: field 'winner' must be true or false, got {win!r}")
        if win:
            winners.append((token, outcome_word(t["outcome"])))
    if not closed or not winners:
        return []
    if len(winners) > 1:
        raise ParseError(f"{ctx}: {len(winners)} tokens marked winner")
    win_token, outcome = winners[0]
    slug = opt_str(o, "market_slug", ctx)
    parsed = parse_updown_slug(slug)
    asset = token_asset(tokens, win_token) or (parsed.asset if parsed else None)
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
    o = as_object(load_json(text, ctx, CH_POLYMARKET_CLOB_BOOK), ctx)
    return [book_row(o, text, recv_ns, tokens, origin="rest", ctx=ctx)]
