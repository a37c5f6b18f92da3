"""Polymarket and reference-price parsers, and the token order book, on wire-format fixtures.

Fixtures live in ``tests/data/frames/polymarket/<dir>/``: ``<case>.json`` (or ``.txt``) is one
frame exactly as it arrives (one trailing newline added for the file), ``<case>.expected.json``
lists every event it must give, field by field. ``raw`` is given as ``"frame"`` (the whole
frame) or ``{"element": i}`` (the exact text of element i of an array frame); a status
``message`` may be given as ``{"contains": "..."}``. The values are hand-written in the venues'
documented formats (see the notes in each expected file), not copied from captures.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from polyrl.errors import ParseError
from polyrl.events import (
    CH_POLYMARKET_CLOB_BOOK,
    CH_POLYMARKET_CLOB_MARKET,
    CH_POLYMARKET_GAMMA,
    CH_POLYMARKET_WS,
    CH_RTDS_WS,
    STATUS_STREAM,
    Event,
    Frame,
)
from polyrl.sources.parse import Parser
from polyrl.sources.polymarket.book import TokenBook
from polyrl.sources.polymarket.clob_rest import parse_clob_book, parse_clob_market
from polyrl.sources.polymarket.clob_ws import parse_clob_ws
from polyrl.sources.polymarket.gamma import parse_gamma
from polyrl.sources.polymarket.rtds import parse_rtds
from polyrl.sources.polymarket.slug import parse_updown_slug
from tests.unit.sources.helpers import events_to_table

FRAMES = Path(__file__).parents[2] / "data" / "frames" / "polymarket"
RECV = 1_790_658_123_500_000_001

BTC_UP = "30029772769310980274085941184278534944592850402048767698635321376316296671707"
BTC_DOWN = "79107385722750466585910128436881307005747636337435540507596023338620930506759"
ETH_UP = "53148943192520636070482894668328022725558934389077557257089414359077546583475"
ETH_DOWN = "16926155446404284899260970979741372899694633355261962098065074942253452691445"
TOKENS: dict[str, tuple[str, str]] = {
    BTC_UP: ("btc", "Up"),
    BTC_DOWN: ("btc", "Down"),
    ETH_UP: ("eth", "Up"),
    ETH_DOWN: ("eth", "Down"),
}

CHANNEL_OF_DIR = {
    "clob_ws": CH_POLYMARKET_WS,
    "gamma": CH_POLYMARKET_GAMMA,
    "clob_market": CH_POLYMARKET_CLOB_MARKET,
    "clob_book": CH_POLYMARKET_CLOB_BOOK,
    "rtds": CH_RTDS_WS,
}
PARSE: dict[str, Callable[[str, int], list[Event]]] = {
    CH_POLYMARKET_WS: lambda t, r: parse_clob_ws(t, r, tokens=TOKENS),
    CH_POLYMARKET_GAMMA: parse_gamma,
    CH_POLYMARKET_CLOB_MARKET: lambda t, r: parse_clob_market(t, r, tokens=TOKENS),
    CH_POLYMARKET_CLOB_BOOK: lambda t, r: parse_clob_book(t, r, tokens=TOKENS),
    CH_RTDS_WS: parse_rtds,
}


def _cases() -> list[Any]:
    cases = []
    for d in sorted(CHANNEL_OF_DIR):
        for f in sorted((FRAMES / d).iterdir()):
            if f.name.endswith(".expected.json") or f.suffix not in (".json", ".txt"):
                continue
            cases.append(pytest.param(d, f, id=f"{d}/{f.stem}"))
    return cases


CASES = _cases()


def _frame_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return text[:-1]


def _expected(path: Path) -> list[dict[str, Any]]:
    exp = path.with_name(path.stem + ".expected.json")
    return json.loads(exp.read_text(encoding="utf-8"))["events"]  # type: ignore[no-any-return]


def _check_raw(ev: Event, spec: Any, text: str) -> None:
    if spec == "frame":
        assert ev.raw == text
        return
    i = spec["element"]
    # The element's own text: a substring of the frame, without surrounding whitespace,
    # that decodes to exactly element i.
    assert ev.raw in text
    assert ev.raw == ev.raw.strip() and ev.raw[:1] in '{[0123456789-"tfn'
    assert json.loads(ev.raw) == json.loads(text)[i]


def _assert_events(events: list[Event], expected: list[dict[str, Any]], text: str) -> None:
    assert len(events) == len(expected), [e.stream for e in events]
    for ev, x in zip(events, expected, strict=True):
        assert ev.stream == x["stream"]
        assert ev.recv_ns == RECV
        assert ev.seq == -1
        assert ev.exch_ns == x["exch_ns"]
        assert ev.key == x["key"]
        assert ev.asset == x["asset"]
        want = dict(x["fields"])
        got = dict(ev.fields)
        if isinstance(want.get("message"), dict):
            assert want.pop("message")["contains"] in got.pop("message")
        assert got == want
        # Exact Python types too: 5 and 5.0 compare equal but land in different columns.
        for name, value in want.items():
            assert type(got[name]) is type(value), name
        _check_raw(ev, x["raw"], text)


@pytest.mark.parametrize(("d", "path"), CASES)
def test_fixture_parses_to_expected_events(d: str, path: Path) -> None:
    text = _frame_text(path)
    events = PARSE[CHANNEL_OF_DIR[d]](text, RECV)
    _assert_events(events, _expected(path), text)


@pytest.mark.parametrize(("d", "path"), CASES)
def test_fixture_through_parser_dispatch(d: str, path: Path) -> None:
    """Parser (the one dispatcher the recorder uses) gives the same events."""
    text = _frame_text(path)
    parser = Parser()
    parser.tokens.update(TOKENS)
    events = parser.parse(Frame(channel=CHANNEL_OF_DIR[d], recv_ns=RECV, text=text))
    _assert_events(events, _expected(path), text)


@pytest.mark.parametrize(("d", "path"), CASES)
def test_fixture_events_fit_their_schema(d: str, path: Path) -> None:
    events = PARSE[CHANNEL_OF_DIR[d]](_frame_text(path), RECV)
    by_stream: dict[str, list[Event]] = defaultdict(list)
    for ev in events:
        by_stream[ev.stream].append(ev)
    for stream, evs in by_stream.items():
        assert events_to_table(evs, stream).num_rows == len(evs)


def test_every_kind_and_form_is_covered() -> None:
    """The fixture set exercises every stream and wire form the parsers promise."""
    streams: set[str] = set()
    pc_forms = set()
    rtds_topics = set()
    for d, path in (c.values for c in CASES):
        events = PARSE[CHANNEL_OF_DIR[d]](_frame_text(path), RECV)  # type: ignore[index]
        for ev in events:
            streams.add(ev.stream)
            if ev.stream == "polymarket.price_change":
                raw = json.loads(ev.raw)
                pc_forms.add(
                    "current"
                    if "price_changes" in raw
                    else "legacy"
                    if "changes" in raw
                    else "flat"
                )
            if ev.stream == "reference.price":
                rtds_topics.add((ev.fields["topic"], ev.fields["backfill"]))
    assert streams == {
        "polymarket.book",
        "polymarket.price_change",
        "polymarket.trade",
        "polymarket.tick_size",
        "polymarket.best_bid_ask",
        "polymarket.market",
        "polymarket.resolution",
        "reference.price",
        STATUS_STREAM,
    }
    assert pc_forms == {"current", "legacy", "flat"}
    assert rtds_topics >= {
        ("crypto_prices_chainlink", False),
        ("crypto_prices_chainlink", True),
        ("crypto_prices_twap_sixty", False),
        ("crypto_prices_twap_thirty", False),
        ("crypto_prices", False),
        ("crypto_prices", True),
        ("price.crypto", False),
        ("price.crypto", True),
        ("price.crypto.twap", False),
    }


# ---------------------------------------------------------------------------------------------
# Details the fixture comparison does not make obvious


def test_ms_string_timestamps_convert_exactly() -> None:
    """ms strings become ns by integer arithmetic (no float rounding at 13 digits)."""
    frame = (
        '{"event_type":"tick_size_change","asset_id":"1","market":"0xab",'
        '"old_tick_size":"0.01","new_tick_size":"0.001","timestamp":"1790658999999"}'
    )
    (ev,) = parse_clob_ws(frame, RECV, tokens={})
    assert ev.exch_ns == 1_790_658_999_999_000_000
    assert ev.asset is None


def test_book_sides_sorted_best_first_whatever_the_wire_order() -> None:
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        prices = ["0.41", "0.43", "0.42", "0.4"]
        levels = ",".join(f'{{"price":"{prices[i]}","size":"{i + 1}"}}' for i in order)
        frame = (
            f'{{"event_type":"book","asset_id":"{BTC_UP}","market":"0xab","timestamp":'
            f'"1790658000001","bids":[{levels}],"asks":[{levels}]}}'
        )
        (ev,) = parse_clob_ws(frame, RECV, tokens=TOKENS)
        assert ev.fields["bid_px"] == [0.43, 0.42, 0.41, 0.4]
        assert ev.fields["bid_size"] == [2.0, 3.0, 1.0, 4.0]
        assert ev.fields["ask_px"] == [0.4, 0.41, 0.42, 0.43]
        assert ev.fields["ask_size"] == [4.0, 1.0, 3.0, 2.0]


def test_parser_learns_tokens_from_gamma_then_fills_asset_of_books() -> None:
    parser = Parser()
    gamma = _frame_text(FRAMES / "gamma" / "event_by_slug.json")
    (market,) = parser.parse(Frame(channel=CH_POLYMARKET_GAMMA, recv_ns=RECV, text=gamma))
    up, down = market.fields["up_token"], market.fields["down_token"]
    assert parser.tokens == {up: ("sol", "Up"), down: ("sol", "Down")}
    frame = (
        f'{{"event_type":"last_trade_price","asset_id":"{down}","market":"{market.key}",'
        '"price":"0.5","size":"1","side":"BUY","timestamp":"1790658901000"}'
    )
    (trade,) = parser.parse(Frame(channel=CH_POLYMARKET_WS, recv_ns=RECV, text=frame))
    assert trade.asset == "sol"


def test_gamma_maps_tokens_by_outcome_position_not_order() -> None:
    text = _frame_text(FRAMES / "gamma" / "markets_query_reversed_outcomes.json")
    raw = json.loads(text)[0]
    assert json.loads(raw["outcomes"]) == ["Down", "Up"]  # the fixture really is reversed
    (ev,) = parse_gamma(text, RECV)
    assert (ev.fields["up_token"], ev.fields["down_token"]) == (ETH_UP, ETH_DOWN)


@pytest.mark.parametrize(
    ("slug", "want"),
    [
        ("btc-updown-15m-1790658000", ("btc", 900, 1_790_658_000_000_000_000)),
        ("xrp-updown-5m-1790658300", ("xrp", 300, 1_790_658_300_000_000_000)),
        ("doge-updown-15m-1790658000", None),
        ("btc-updown-1h-1790658000", None),
        ("btc-updown-15m-", None),
        ("btc-updown-15m-1790658000-extra", None),
        ("rain-in-paris-on-october-3-2026", None),
        (None, None),
    ],
)
def test_parse_updown_slug(slug: Any, want: Any) -> None:
    got = parse_updown_slug(slug)
    if want is None:
        assert got is None
    else:
        assert got is not None
        assert (got.asset, got.interval_s, got.start_ns) == want
        assert got.end_ns == want[2] + want[1] * 1_000_000_000


def test_heartbeats_give_nothing() -> None:
    for text in ("PONG", "PING", "PONG\n"):
        assert parse_clob_ws(text, RECV, tokens=TOKENS) == []
        assert parse_rtds(text, RECV) == []


# ---------------------------------------------------------------------------------------------
# Malformed frames: exactly one parse_error status event through Parser, raw kept

_BOOK = (
    '{"event_type":"book","asset_id":"1","market":"0xab","timestamp":"1790658000001",'
    '"bids":[{"price":"0.5","size":"1"}],"asks":[{"price":"0.6","size":"2"}]}'
)
_GAMMA_UPDOWN = (
    '{"id":"1","question":"q","conditionId":"0xab","slug":"btc-updown-15m-1790658000",'
    '"endDate":"2026-09-29T05:15:00Z","outcomes":"[\\"Up\\", \\"Down\\"]",'
    '"active":true,"closed":false,"orderPriceMinTickSize":0.01,"orderMinSize":5,'
    '"clobTokenIds":"[\\"1\\", \\"2\\"]"}'
)
_CLOB_MARKET = (
    '{"condition_id":"0xab","closed":true,"market_slug":"btc-updown-15m-1790658000",'
    '"tokens":[{"token_id":"1","outcome":"Up","price":1,"winner":true},'
    '{"token_id":"2","outcome":"Down","price":0,"winner":false}]}'
)
_RTDS = (
    '{"topic":"crypto_prices_chainlink","type":"update","timestamp":1790658000100,'
    '"payload":{"symbol":"btc/usd","timestamp":1790658000000,"value":112000.5}}'
)
_POLYBOLT = (
    '{"v":1,"channel":"price.crypto","seq":3,"ts":1790658000000,"payload":{"symbol":"btcusd",'
    '"value":112000.5,"full_accuracy_value":"112000.5","timestamp":1790658000000,"source":"pyth"}}'
)

MALFORMED = [
    # CLOB WebSocket
    (CH_POLYMARKET_WS, "", "empty frame"),
    (CH_POLYMARKET_WS, "   ", "empty frame"),
    (CH_POLYMARKET_WS, _BOOK[:70], "not valid JSON"),
    (CH_POLYMARKET_WS, "hello", "not valid JSON"),
    (CH_POLYMARKET_WS, "[" + _BOOK + ",", "truncated"),
    (CH_POLYMARKET_WS, "42", "must be an object or an array"),
    (CH_POLYMARKET_WS, _BOOK.replace('"bids"', '"bidz"'), "book: missing field 'bids'"),
    (CH_POLYMARKET_WS, _BOOK.replace('"asset_id":"1",', ""), "missing field 'asset_id'"),
    (CH_POLYMARKET_WS, _BOOK.replace('[{"price":"0.5","size":"1"}]', '"none"'), "'bids' must be"),
    (CH_POLYMARKET_WS, _BOOK.replace('"size":"1"', '"size":"lots"'), "bids[0]: field 'size'"),
    (CH_POLYMARKET_WS, _BOOK.replace('"1790658000001"', '"soon"'), "'timestamp' is not a time"),
    (CH_POLYMARKET_WS, _BOOK.replace('"1790658000001"', "null"), "'timestamp' must be a time"),
    (CH_POLYMARKET_WS, _BOOK.replace('"book"', '"order_filled"'), "unknown event_type"),
    (CH_POLYMARKET_WS, _BOOK.replace('"event_type":"book",', ""), "no 'event_type'"),
    (
        CH_POLYMARKET_WS,
        '{"event_type":"last_trade_price","asset_id":"1","market":"0xab","price":{"v":1},'
        '"size":"1","side":"BUY","timestamp":"1790658000001"}',
        "'price' is not a number",
    ),
    (
        CH_POLYMARKET_WS,
        '{"event_type":"last_trade_price","asset_id":"1","market":"0xab","price":"0.5",'
        '"size":"1","side":"HOLD","timestamp":"1790658000001"}',
        "'side' must be BUY or SELL",
    ),
    (
        CH_POLYMARKET_WS,
        '{"event_type":"price_change","market":"0xab","timestamp":"1790658000001",'
        '"price_changes":[{"asset_id":"1","price":"0.5","side":"BUY","best_bid":"0.5"}]}',
        "price_changes[0]: missing field 'size'",
    ),
    # Gamma
    (CH_POLYMARKET_GAMMA, "", "empty frame"),
    (CH_POLYMARKET_GAMMA, _GAMMA_UPDOWN[:-30], "not valid JSON"),
    (CH_POLYMARKET_GAMMA, "<html>rate limited</html>", "not valid JSON"),
    (CH_POLYMARKET_GAMMA, "[]", "no market"),
    (CH_POLYMARKET_GAMMA, '{"error":"not found"}', "neither a market nor an event"),
    (CH_POLYMARKET_GAMMA, _GAMMA_UPDOWN.replace('"clobTokenIds"', '"tokens"'), "clobTokenIds"),
    (CH_POLYMARKET_GAMMA, _GAMMA_UPDOWN.replace('"closed":false', '"closed":"no"'), "'closed'"),
    (CH_POLYMARKET_GAMMA, _GAMMA_UPDOWN.replace("Up", "Yes"), "not Up/Down"),
    (CH_POLYMARKET_GAMMA, _GAMMA_UPDOWN.replace("2026-09-29T05", "yesterday"), "'endDate'"),
    # CLOB REST
    (CH_POLYMARKET_CLOB_MARKET, "", "empty frame"),
    (CH_POLYMARKET_CLOB_MARKET, _CLOB_MARKET[:50], "not valid JSON"),
    (CH_POLYMARKET_CLOB_MARKET, _CLOB_MARKET.replace('"tokens"', '"toks"'), "'tokens'"),
    (CH_POLYMARKET_CLOB_MARKET, _CLOB_MARKET.replace("true,", '"yes",', 1), "'closed'"),
    (CH_POLYMARKET_CLOB_MARKET, "[1, 2]", "expected a JSON object"),
    (CH_POLYMARKET_CLOB_BOOK, "", "empty frame"),
    (CH_POLYMARKET_CLOB_BOOK, _BOOK[:-5], "not valid JSON"),
    (CH_POLYMARKET_CLOB_BOOK, _BOOK.replace('"market":"0xab",', ""), "missing field 'market'"),
    # RTDS and PolyBolt
    (CH_RTDS_WS, "", "empty frame"),
    (CH_RTDS_WS, _RTDS[:60], "not valid JSON"),
    (CH_RTDS_WS, "pong!", "not valid JSON"),
    (CH_RTDS_WS, _RTDS.replace("crypto_prices_chainlink", "comments"), "unknown topic"),
    (CH_RTDS_WS, _RTDS.replace('"update"', '"snapshot"'), "unknown type"),
    (CH_RTDS_WS, _RTDS.replace('"value"', '"price"'), "missing field 'value'"),
    (CH_RTDS_WS, _RTDS.replace("112000.5", '"high"'), "'value' is not a number"),
    (CH_RTDS_WS, '{"hello":"world"}', "no 'topic'"),
    (CH_POLYMARKET_WS, _RTDS, "no 'event_type'"),
    (CH_RTDS_WS, _POLYBOLT.replace("price.crypto", "price.equity"), "unknown channel"),
    (CH_RTDS_WS, _POLYBOLT.replace('"ts":1790658000000,', ""), "missing field 'ts'"),
    (CH_RTDS_WS, _POLYBOLT.replace('"seq":3', '"seq":3,"dropped":"many"'), "'dropped'"),
]


@pytest.mark.parametrize(("channel", "text", "needle"), MALFORMED)
def test_malformed_frame_gives_one_parse_error(channel: str, text: str, needle: str) -> None:
    with pytest.raises(ParseError) as info:
        PARSE[channel](text, RECV)
    assert needle in str(info.value)
    events = Parser().parse(Frame(channel=channel, recv_ns=RECV, text=text))
    assert len(events) == 1
    (ev,) = events
    assert ev.stream == STATUS_STREAM
    assert ev.key == channel
    assert ev.raw == text
    assert ev.recv_ns == RECV
    assert ev.fields["kind"] == "parse_error"
    assert needle in ev.fields["message"]
    assert events_to_table(events, STATUS_STREAM).num_rows == 1


# ---------------------------------------------------------------------------------------------
# TokenBook: rebuild books from the first book + price changes; must equal the final book


def _sequence() -> list[tuple[str, list[Event]]]:
    path = FRAMES / "book_sequence" / "btc_updown_trade_burst.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(line, parse_clob_ws(line, RECV, tokens=TOKENS)) for line in lines]


def _levels(ev: Event, side: str) -> list[tuple[float, float]]:
    px, sz = ("bid_px", "bid_size") if side == "bid" else ("ask_px", "ask_size")
    return list(zip(ev.fields[px], ev.fields[sz], strict=True))


def _mirror(levels: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(round(1.0 - p, 9), s) for p, s in levels]


def _rounded(levels: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(round(p, 9), s) for p, s in levels]


def test_sequence_fixture_is_mirrored_pairs() -> None:
    """Every price_change frame is BUY p on one token = SELL 1-p on the other, same size."""
    n = 0
    for _, events in _sequence():
        changes = [e for e in events if e.stream == "polymarket.price_change"]
        if not changes:
            continue
        n += 1
        a, b = changes
        assert {a.key, b.key} == {BTC_UP, BTC_DOWN}
        assert {a.fields["side"], b.fields["side"]} == {"BUY", "SELL"}
        assert round(a.fields["price"] + b.fields["price"], 9) == 1.0
        assert a.fields["size"] == b.fields["size"]
    assert n == 7


def test_token_books_rebuild_to_the_final_books_exactly() -> None:
    seq = _sequence()
    books = {BTC_UP: TokenBook(BTC_UP), BTC_DOWN: TokenBook(BTC_DOWN)}
    first = seq[0][1]
    assert [e.stream for e in first] == ["polymarket.book", "polymarket.book"]
    for ev in first:
        books[ev.key].apply_book(ev)
    final: dict[str, Event] = {}
    applied = 0
    for _, events in seq[1:]:
        for ev in events:
            if ev.stream == "polymarket.book":
                final[ev.key] = ev  # compared below, before (not after) applying them
            elif ev.stream == "polymarket.price_change":
                assert books[ev.key].apply_price_change(ev)
                applied += 1
            else:
                assert not books[ev.key].apply(ev)  # a trade print moves no level
        # One resting order shows on both tokens: the books stay mirror images.
        up, down = books[BTC_UP], books[BTC_DOWN]
        assert _rounded(up.bids()) == _mirror(down.asks())
        assert _rounded(up.asks()) == _mirror(down.bids())
    assert applied == 14
    assert set(final) == {BTC_UP, BTC_DOWN}
    for token, ev in final.items():
        assert books[token].bids() == _levels(ev, "bid")
        assert books[token].asks() == _levels(ev, "ask")
        assert books[token].best_bid() == ev.fields["bid_px"][0]
        assert books[token].best_ask() == ev.fields["ask_px"][0]
    # The burst really changed the books: the first and final books differ.
    assert _levels(first[0], "bid") != _levels(final[BTC_UP], "bid")
    # What the FeatureEngine hands the broker: the top levels as arrays, padded.
    for token, ev in final.items():
        bp, bs, ap, as_ = books[token].top(6)
        n_b, n_a = min(6, len(ev.fields["bid_px"])), min(6, len(ev.fields["ask_px"]))
        assert bp[:n_b].tolist() == ev.fields["bid_px"][:n_b]
        assert bs[:n_b].tolist() == ev.fields["bid_size"][:n_b]
        assert ap[:n_a].tolist() == ev.fields["ask_px"][:n_a]
        assert as_[:n_a].tolist() == ev.fields["ask_size"][:n_a]
        assert all(math.isnan(x) for x in bp[n_b:]) and not bs[n_b:].any()


def test_burst_bbo_runs_ahead_of_levels_until_the_burst_ends() -> None:
    """Entries of a same-timestamp burst report the post-burst BBO first; after the last
    entry of each timestamp the rebuilt book agrees with what the venue reported."""
    seq = _sequence()
    books = {BTC_UP: TokenBook(BTC_UP), BTC_DOWN: TokenBook(BTC_DOWN)}
    for ev in seq[0][1]:
        books[ev.key].apply_book(ev)
    changes = [e for _, evs in seq[1:] for e in evs if e.stream == "polymarket.price_change"]
    per_entry_mismatch = []
    group_mismatch = []
    for i, ev in enumerate(changes):
        book = books[ev.key]
        book.apply_price_change(ev)
        reported = (ev.fields["best_bid"], ev.fields["best_ask"])
        if (book.best_bid(), book.best_ask()) != reported:
            per_entry_mismatch.append((ev.exch_ns, ev.key))
        last_of_group = i + 1 == len(changes) or changes[i + 1].exch_ns != ev.exch_ns
        if last_of_group:
            # Check both tokens' latest reports once the whole timestamp group is in.
            for e in changes[max(0, i - 1) : i + 1]:
                b = books[e.key]
                if (b.best_bid(), b.best_ask()) != (e.fields["best_bid"], e.fields["best_ask"]):
                    group_mismatch.append(e.exch_ns)
    burst_ns = 1_790_658_015_000_000_000
    assert per_entry_mismatch == [(burst_ns, BTC_UP), (burst_ns, BTC_DOWN)]
    assert group_mismatch == []


def test_token_book_ignores_changes_until_synced_and_after_reset() -> None:
    seq = _sequence()
    up_change = next(e for _, evs in seq[1:] for e in evs if e.stream == "polymarket.price_change")
    book = TokenBook(up_change.key)
    assert not book.synced
    assert not book.apply_price_change(up_change)
    assert book.bids() == [] and book.best_bid() is None and book.best_ask() is None
    first_up = next(e for e in seq[0][1] if e.key == up_change.key)
    book.apply_book(first_up)
    assert book.synced and book.exch_ns == first_up.exch_ns
    assert book.bids() == _levels(first_up, "bid")
    assert book.apply_price_change(up_change)
    assert book.best_bid() == up_change.fields["price"]
    book.reset()
    assert not book.synced and book.asks() == []
    assert not book.apply_price_change(up_change)


def test_token_book_rejects_other_tokens_and_streams() -> None:
    seq = _sequence()
    down_book = next(e for e in seq[0][1] if e.key == BTC_DOWN)
    book = TokenBook(BTC_UP)
    with pytest.raises(ValueError, match="event is for"):
        book.apply_book(down_book)
    up_book = next(e for e in seq[0][1] if e.key == BTC_UP)
    with pytest.raises(ValueError, match="price_change"):
        book.apply_price_change(up_book)


def test_token_book_zero_size_level_in_a_book_is_not_a_level() -> None:
    frame = (
        f'{{"event_type":"book","asset_id":"{BTC_UP}","market":"0xab","timestamp":"1790658000001",'
        '"bids":[{"price":"0.5","size":"0"},{"price":"0.4","size":"3"}],"asks":[]}'
    )
    (ev,) = parse_clob_ws(frame, RECV, tokens=TOKENS)
    book = TokenBook(BTC_UP)
    book.apply_book(ev)
    assert book.bids() == [(0.4, 3.0)]
    assert book.best_ask() is None


@pytest.mark.parametrize(("enabled", "want"), [(True, 60), (False, None)])
def test_gamma_twap_seconds_follow_twap_enabled(enabled: bool, want: int | None) -> None:
    """A market whose cryptoMarketConfig says twapEnabled: false settles on the
    instantaneous price: its twap_seconds is null even with a lookback given."""
    m = json.loads(_frame_text(FRAMES / "gamma" / "market_by_slug_open.json"))
    m["cryptoMarketConfig"]["twapEnabled"] = enabled
    (ev,) = [e for e in parse_gamma(json.dumps(m), RECV) if e.stream == "polymarket.market"]
    assert ev.fields["twap_seconds"] == want
