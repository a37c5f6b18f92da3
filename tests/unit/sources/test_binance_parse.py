"""Binance parsers: every fixture frame parses, fits its schema and gives exactly the rows expected.

Fixtures live in tests/data/frames/binance/: ``*.jsonl`` hold one wire frame per line, ``*.json``
one REST response per file. The file name's prefix says which channel the frames arrive on.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from polyrl.errors import ParseError
from polyrl.events import (
    CH_BINANCE_FUTURES_OI,
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_KLINES,
    CH_BINANCE_SPOT_WS,
    STATUS_STREAM,
    Event,
    Frame,
    asset_of_symbol,
)
from polyrl.sources.binance.parse import parse_ws
from polyrl.sources.binance.rest import parse_rest_klines, parse_rest_open_interest
from polyrl.sources.parse import Parser
from tests.unit.sources.helpers import events_to_table

DATA = Path(__file__).resolve().parents[2] / "data" / "frames" / "binance"
RECV_NS = 1_763_942_410_000_000_000
"""Receive time used for every fixture: after the 2nd REST ms bar closes, before the 3rd."""

_CHANNEL_BY_PREFIX = {
    "spot_ws_": CH_BINANCE_SPOT_WS,
    "futures_ws_": CH_BINANCE_FUTURES_WS,
    "rest_klines_": CH_BINANCE_SPOT_KLINES,
    "rest_open_interest": CH_BINANCE_FUTURES_OI,
}
_REQUESTS: dict[str, dict[str, str]] = {
    "rest_klines_ms.json": {"symbol": "BTCUSDT"},
    "rest_klines_us.json": {"symbol": "ethusdt"},  # lower case on purpose: key is upper-cased
}
_VENUE = {CH_BINANCE_SPOT_WS: "spot", CH_BINANCE_FUTURES_WS: "futures"}


def _channel(name: str) -> str:
    for prefix, channel in _CHANNEL_BY_PREFIX.items():
        if name.startswith(prefix):
            return channel
    raise AssertionError(f"fixture {name} has no known channel prefix")


def _fixture_frames() -> Iterator[tuple[str, int, Frame]]:
    for path in sorted(DATA.iterdir()):
        if path.suffix == ".jsonl":
            lines = path.read_text(encoding="utf-8").splitlines()
            for i, line in enumerate(lines):
                yield path.name, i, Frame(channel=_channel(path.name), recv_ns=RECV_NS, text=line)
        elif path.suffix == ".json":
            text = path.read_text(encoding="utf-8")
            frame = Frame(
                channel=_channel(path.name),
                recv_ns=RECV_NS,
                text=text,
                request=_REQUESTS.get(path.name, {}),
            )
            yield path.name, 0, frame


FRAMES = {(name, i): frame for name, i, frame in _fixture_frames()}


def _parse(frame: Frame) -> list[Event]:
    """The venue function itself (raises), as opposed to the never-raising Parser."""
    if frame.channel in _VENUE:
        return parse_ws(frame.text, frame.recv_ns, venue=_VENUE[frame.channel])  # type: ignore[arg-type]
    if frame.channel == CH_BINANCE_SPOT_KLINES:
        return parse_rest_klines(frame.text, frame.recv_ns, symbol=frame.request["symbol"])
    return parse_rest_open_interest(frame.text, frame.recv_ns)


def test_fixture_set_covers_every_channel() -> None:
    channels = {f.channel for f in FRAMES.values()}
    assert channels == set(_CHANNEL_BY_PREFIX.values())
    assert len(FRAMES) >= 40


# ---------------------------------------------------------------------------------------------
# Every frame: parses cleanly, rows fit the schema and the row invariants.


@pytest.mark.parametrize("name,line", sorted(FRAMES), ids=[f"{n}:{i}" for n, i in sorted(FRAMES)])
def test_fixture_frame_parses_and_fits_schema(name: str, line: int) -> None:
    frame = FRAMES[(name, line)]
    # The fixtures share one receive time, a year or more from some of their venue times: a
    # tolerance of decades leaves the time check out, so every other quality check must pass.
    events = Parser(exch_tolerance_s=1e9).parse(frame)
    assert events, "no events"
    assert events == _parse(frame), "Parser and the venue function disagree (or flagged a row)"
    by_stream: dict[str, list[Event]] = defaultdict(list)
    for ev in events:
        by_stream[ev.stream].append(ev)
        assert ev.recv_ns == RECV_NS and ev.seq == -1
        if ev.stream == STATUS_STREAM:
            assert ev.fields["kind"] == "control", ev.fields["message"]
            assert ev.key == frame.channel and ev.raw == frame.text
            continue
        venue = (
            "spot" if frame.channel in (CH_BINANCE_SPOT_WS, CH_BINANCE_SPOT_KLINES) else "futures"
        )
        assert ev.stream.startswith(f"binance.{venue}.")
        assert ev.key == ev.key.upper() and ev.key.endswith("USDT")
        assert ev.asset == asset_of_symbol(ev.key)
        if ev.raw != frame.text:
            # Only array frames give a row its own element's text; it must be a piece of the
            # frame that parses to one element on its own.
            assert ev.raw in frame.text and ev.raw[0] in "[{" and ev.raw == ev.raw.strip()
            assert ev.stream in ("binance.futures.mark", "binance.spot.kline")
        _check_invariants(ev)
    for stream, evs in by_stream.items():
        table = events_to_table(evs, stream)
        assert table.num_rows == len(evs)


def _check_invariants(ev: Event) -> None:
    f = ev.fields
    if ev.stream.endswith(".trade"):
        assert f["side"] == (-1 if f["buyer_maker"] else 1)
        assert f["first_id"] <= f["last_id"]
        assert f["price"] > 0 and f["qty"] > 0
    if ev.stream.endswith(".depth"):
        assert f["bid_px"] == sorted(f["bid_px"], reverse=True)
        assert f["ask_px"] == sorted(f["ask_px"])
        assert len(f["bid_px"]) == len(f["bid_qty"]) and len(f["ask_px"]) == len(f["ask_qty"])
        if f["bid_px"] and f["ask_px"] and f["update_kind"] == "partial":
            assert f["bid_px"][0] < f["ask_px"][0], "crossed partial book"
        if f["update_kind"] == "partial":
            assert f["levels"] > 0 and len(f["bid_px"]) <= f["levels"]
        else:
            assert f["levels"] == 0
    if ev.stream.endswith(".book_ticker"):
        assert f["bid_px"] < f["ask_px"]
    if ev.stream.endswith(".kline"):
        assert f["low"] <= min(f["open"], f["close"]) <= max(f["open"], f["close"]) <= f["high"]
        assert f["open_ns"] < f["close_ns"]


# ---------------------------------------------------------------------------------------------
# Exact rows: every field of at least one frame per kind.

S = 1_000_000_000


def _row(stream: str, exch_ns: int | None, key: str, asset: str | None, **fields: Any) -> dict:
    return {"stream": stream, "exch_ns": exch_ns, "key": key, "asset": asset, "fields": fields}


def _trade(venue: str, exch_ns: int, key: str, **kw: Any) -> dict:
    return _row(f"binance.{venue}.trade", exch_ns, key, asset_of_symbol(key), **kw)


EXPECTED: dict[tuple[str, int], list[dict]] = {
    ("spot_ws_aggtrade.jsonl", 0): [
        _trade(
            "spot", 1763942400123_000000, "BTCUSDT",
            trade_ns=1763942400121_000000, trade_id=3712845601, price=86912.45, qty=0.0125,
            first_id=5401238811, last_id=5401238813, buyer_maker=False, side=1,
        )
    ],
    # timeUnit=MICROSECOND: 16-digit E and T
    ("spot_ws_aggtrade.jsonl", 1): [
        _trade(
            "spot", 1763942400123456_000, "ETHUSDT",
            trade_ns=1763942400122987_000, trade_id=2198765432, price=2801.17, qty=1.2,
            first_id=3109876543, last_id=3109876543, buyer_maker=True, side=-1,
        )
    ],
    # raw (non-combined) payload
    ("spot_ws_aggtrade.jsonl", 2): [
        _trade(
            "spot", 1763942400200_000000, "SOLUSDT",
            trade_ns=1763942400199_000000, trade_id=1045678901, price=131.42, qty=15.3,
            first_id=1598765432, last_id=1598765440, buyer_maker=True, side=-1,
        )
    ],
    ("spot_ws_trade.jsonl", 0): [
        _trade(
            "spot", 1763942400125_000000, "BTCUSDT",
            trade_ns=1763942400124_000000, trade_id=5401238814, price=86912.46, qty=0.0005,
            first_id=5401238814, last_id=5401238814, buyer_maker=True, side=-1,
        )
    ],
    # pre-2024-06 @trade with the buyer/seller order ids b/a: they must not be taken as ids
    ("spot_ws_trade.jsonl", 1): [
        _trade(
            "spot", 1700000123456_000000, "ETHUSDT",
            trade_ns=1700000123455_000000, trade_id=1251234567, price=2043.18, qty=0.25,
            first_id=1251234567, last_id=1251234567, buyer_maker=False, side=1,
        )
    ],
    ("spot_ws_trade.jsonl", 2): [
        _trade(
            "spot", 1763942400125876_000, "SOLUSDT",
            trade_ns=1763942400125001_000, trade_id=1598765441, price=131.43, qty=2.0,
            first_id=1598765441, last_id=1598765441, buyer_maker=False, side=1,
        )
    ],
    ("spot_ws_book_ticker.jsonl", 0): [
        _row(
            "binance.spot.book_ticker", None, "BTCUSDT", "btc",
            update_id=76543219876, bid_px=86912.45, bid_qty=2.3145, ask_px=86912.46,
            ask_qty=0.873, trans_ns=None,
        )
    ],
    ("spot_ws_book_ticker.jsonl", 1): [
        _row(
            "binance.spot.book_ticker", None, "ETHUSDT", "eth",
            update_id=43219876543, bid_px=2801.16, bid_qty=14.201, ask_px=2801.17,
            ask_qty=3.05, trans_ns=None,
        )
    ],
    # depth5@100ms: levels arrive shuffled, come out best first; symbol from the stream name
    ("spot_ws_depth_partial.jsonl", 0): [
        _row(
            "binance.spot.depth", None, "BTCUSDT", "btc",
            update_kind="partial", levels=5, first_update_id=None, last_update_id=76543219880,
            prev_update_id=None, trans_ns=None,
            bid_px=[86912.45, 86912.44, 86912.40, 86912.00, 86911.98],
            bid_qty=[2.3145, 0.005, 0.1, 1.0, 0.25],
            ask_px=[86912.46, 86912.47, 86912.50, 86912.80, 86913.00],
            ask_qty=[0.873, 0.01, 0.4, 0.12, 1.5],
        )
    ],
    # diff: qty 0 is kept (remove the level); asks arrive out of order
    ("spot_ws_depth_diff.jsonl", 0): [
        _row(
            "binance.spot.depth", 1763942400200_000000, "BTCUSDT", "btc",
            update_kind="diff", levels=0, first_update_id=76543219881,
            last_update_id=76543219890, prev_update_id=None, trans_ns=None,
            bid_px=[86912.45, 86912.40], bid_qty=[2.5, 0.0],
            ask_px=[86912.46, 86912.50, 86913.10], ask_qty=[0.8, 0.0, 0.2],
        )
    ],
    ("spot_ws_depth_diff.jsonl", 1): [
        _row(
            "binance.spot.depth", 1763942400300123_000, "ETHUSDT", "eth",
            update_kind="diff", levels=0, first_update_id=43219876544,
            last_update_id=43219876544, prev_update_id=None, trans_ns=None,
            bid_px=[], bid_qty=[], ask_px=[2801.2], ask_qty=[0.0],
        )
    ],
    ("spot_ws_kline.jsonl", 0): [
        _row(
            "binance.spot.kline", 1763942402000_000000, "BTCUSDT", "btc",
            interval="1m", open_ns=1763942400 * S, close_ns=1763942459999_000000,
            open=86912.45, high=86920.0, low=86910.01, close=86915.0, volume=3.512,
            quote_volume=305241.1123, trades=90, taker_buy_base=1.9, taker_buy_quote=165135.5,
            closed=False,
        )
    ],
    ("spot_ws_kline.jsonl", 1): [
        _row(
            "binance.spot.kline", 1763942460001234_000, "ETHUSDT", "eth",
            interval="1m", open_ns=1763942400 * S, close_ns=1763942459999999_000,
            open=2801.0, high=2804.1, low=2800.55, close=2803.5, volume=412.3,
            quote_volume=1155612.345, trades=201, taker_buy_base=250.1,
            taker_buy_quote=700990.12, closed=True,
        )
    ],
    ("futures_ws_aggtrade.jsonl", 0): [
        _trade(
            "futures", 1763942400150_000000, "BTCUSDT",
            trade_ns=1763942400148_000000, trade_id=2876543210, price=86870.1, qty=0.25,
            first_id=6789012345, last_id=6789012351, buyer_maker=True, side=-1,
            qty_no_rpi=0.243,
        )
    ],
    # before 2025-12-31 there is no `nq`
    ("futures_ws_aggtrade.jsonl", 1): [
        _trade(
            "futures", 1723161256400_000000, "ETHUSDT",
            trade_ns=1723161256398_000000, trade_id=2012345678, price=2601.55, qty=1.5,
            first_id=4712345678, last_id=4712345680, buyer_maker=False, side=1,
            qty_no_rpi=None,
        )
    ],
    ("futures_ws_trade.jsonl", 0): [
        _trade(
            "futures", 1723161256500_000000, "BTCUSDT",
            trade_ns=1723161256499_000000, trade_id=5266584001, price=61801.1, qty=0.015,
            first_id=5266584001, last_id=5266584001, buyer_maker=True, side=-1,
            qty_no_rpi=None,
        )
    ],
    ("futures_ws_book_ticker.jsonl", 0): [
        _row(
            "binance.futures.book_ticker", 1763942400161_000000, "BTCUSDT", "btc",
            update_id=8123456789012, bid_px=86870.0, bid_qty=5.102, ask_px=86870.1,
            ask_qty=0.87, trans_ns=1763942400160_000000,
        )
    ],
    # depth@0ms diff with pu
    ("futures_ws_depth.jsonl", 0): [
        _row(
            "binance.futures.depth", 1763942400170_000000, "BTCUSDT", "btc",
            update_kind="diff", levels=0, first_update_id=8123456789013,
            last_update_id=8123456789020, prev_update_id=8123456789012,
            trans_ns=1763942400168_000000,
            bid_px=[86870.0, 86869.9, 80000.0], bid_qty=[5.25, 0.0, 12.5],
            ask_px=[86870.1, 86875.0], ask_qty=[0.85, 0.0],
        )
    ],
    # futures depth5 arrives in depthUpdate shape: partial because the stream names a count
    ("futures_ws_depth.jsonl", 1): [
        _row(
            "binance.futures.depth", 1763942400180_000000, "ETHUSDT", "eth",
            update_kind="partial", levels=5, first_update_id=7012345678900,
            last_update_id=7012345679011, prev_update_id=7012345678899,
            trans_ns=1763942400177_000000,
            bid_px=[2801.00, 2800.99, 2800.98, 2800.95, 2800.90],
            bid_qty=[3.051, 0.4, 12.1, 1.2, 25.0],
            ask_px=[2801.01, 2801.02, 2801.03, 2801.05, 2801.10],
            ask_qty=[8.7, 0.01, 0.5, 2.0, 40.0],
        )
    ],
    ("futures_ws_kline.jsonl", 0): [
        _row(
            "binance.futures.kline", 1763942400250_000000, "SOLUSDT", "sol",
            interval="1m", open_ns=1763942400 * S, close_ns=1763942459999_000000,
            open=131.35, high=131.4, low=131.34, close=131.38, volume=1203.0,
            quote_volume=158052.31, trades=15, taker_buy_base=700.0, taker_buy_quote=91966.0,
            closed=False,
        )
    ],
    ("futures_ws_mark.jsonl", 0): [
        _row(
            "binance.futures.mark", 1763942401000_000000, "BTCUSDT", "btc",
            mark_px=86871.23456789, index_px=86905.67891234, settle_px=86880.11447552,
            mark_avg_px=86868.90123456, funding_rate=0.00005912,
            next_funding_ns=1763971200 * S,
        )
    ],
    # 2020 shape: no `ap`, no `P`
    ("futures_ws_mark.jsonl", 1): [
        _row(
            "binance.futures.mark", 1597536008000_000000, "ETHUSDT", "eth",
            mark_px=433.21, index_px=432.98765432, settle_px=None, mark_avg_px=None,
            funding_rate=0.0001, next_funding_ns=1597564800 * S,
        )
    ],
    ("futures_ws_mark.jsonl", 2): [
        _row(
            "binance.futures.mark", 1723161258000_000000, "XRPUSDT", "xrp",
            mark_px=0.56231, index_px=0.56240123, settle_px=0.56250011, mark_avg_px=None,
            funding_rate=-0.00002301, next_funding_ns=1723190400 * S,
        )
    ],
    ("futures_ws_liquidation.jsonl", 0): [
        _row(
            "binance.futures.liquidation", 1763942403210_000000, "BTCUSDT", "btc",
            side="SELL", order_type="LIMIT", time_in_force="IOC", qty=0.15, price=86500.0,
            avg_price=86702.3, status="FILLED", last_filled_qty=0.15, filled_qty=0.15,
            trade_ns=1763942403205_000000,
        )
    ],
    ("futures_ws_liquidation.jsonl", 1): [
        _row(
            "binance.futures.liquidation", 1763942403900_000000, "XRPUSDT", "xrp",
            side="BUY", order_type="LIMIT", time_in_force="IOC", qty=12000.0, price=2.15,
            avg_price=2.1188, status="FILLED", last_filled_qty=4000.0, filled_qty=12000.0,
            trade_ns=1763942403898_000000,
        )
    ],
    ("rest_open_interest.json", 0): [
        _row(
            "binance.futures.open_interest", 1763942405123_000000, "BTCUSDT", "btc",
            open_interest=81234.567,
        )
    ],
}  # fmt: skip


def _assert_rows(events: list[Event], expected: list[dict]) -> None:
    got = [
        {
            "stream": e.stream,
            "exch_ns": e.exch_ns,
            "key": e.key,
            "asset": e.asset,
            "fields": e.fields,
        }
        for e in events
    ]
    assert got == expected
    for e, x in zip(events, expected, strict=True):
        # every field exactly, including its Python type (True == 1 and 1.0 == 1 would pass ==)
        for name, value in x["fields"].items():
            assert type(e.fields[name]) is type(value), name


@pytest.mark.parametrize("case", sorted(EXPECTED), ids=[f"{n}:{i}" for n, i in sorted(EXPECTED)])
def test_exact_rows(case: tuple[str, int]) -> None:
    frame = FRAMES[case]
    events = Parser().parse(frame)
    _assert_rows(events, EXPECTED[case])
    assert all(e.raw == frame.text and e.recv_ns == RECV_NS for e in events)


def test_mark_price_array_one_row_per_element_with_its_own_text() -> None:
    frame = FRAMES[("futures_ws_mark_arr.jsonl", 0)]
    events = Parser().parse(frame)
    assert [(e.stream, e.key, e.asset) for e in events] == [
        ("binance.futures.mark", "BTCUSDT", "btc"),
        ("binance.futures.mark", "ETHUSDT", "eth"),
        ("binance.futures.mark", "DOGEUSDT", None),
    ]
    _assert_rows(events[:1], EXPECTED[("futures_ws_mark.jsonl", 0)])
    assert events[0].raw == (
        '{"e":"markPriceUpdate","E":1763942401000,"s":"BTCUSDT","p":"86871.23456789",'
        '"ap":"86868.90123456","P":"86880.11447552","i":"86905.67891234","r":"0.00005912",'
        '"T":1763971200000}'
    )
    data = json.loads(frame.text)["data"]
    assert [json.loads(e.raw) for e in events] == data
    # each element's text re-parses on its own as a raw payload, to the same row
    for e in events:
        assert parse_ws(e.raw, RECV_NS, venue="futures") == [e]


def test_mark_price_array_raw_form() -> None:
    frame = FRAMES[("futures_ws_mark_arr.jsonl", 1)]
    events = Parser().parse(frame)
    assert [e.key for e in events] == ["SOLUSDT", "XRPUSDT"]
    assert events[1].raw.startswith('{"e":"markPriceUpdate","E":1763942402000,"s":"XRPUSDT"')
    assert events[1].fields["funding_rate"] == -0.000005
    assert events[1].fields["mark_avg_px"] is None


def test_mark_price_array_bad_element_is_isolated() -> None:
    good = '{"e":"markPriceUpdate","E":1763942401000,"s":"BTCUSDT","p":"1.5","i":"1.4","r":"0.0001","T":1763971200000}'  # noqa: E501
    bad = '{"e":"markPriceUpdate","E":1763942401000,"s":"ETHUSDT","i":"2.4","r":"0.0001","T":1763971200000}'  # noqa: E501
    text = '{"stream":"!markPrice@arr@1s","data":[' + good + "," + bad + "]}"
    events = Parser().parse(Frame(channel=CH_BINANCE_FUTURES_WS, recv_ns=RECV_NS, text=text))
    assert [e.stream for e in events] == ["binance.futures.mark", STATUS_STREAM]
    assert events[0].raw == good
    err = events[1]
    assert err.fields["kind"] == "parse_error" and err.raw == bad
    assert err.key == CH_BINANCE_FUTURES_WS
    assert "element 1" in err.fields["message"] and "'p'" in err.fields["message"]


def test_rest_klines_ms() -> None:
    frame = FRAMES[("rest_klines_ms.json", 0)]
    events = Parser().parse(frame)
    bars = json.loads(frame.text)
    assert len(events) == 3
    _assert_rows(
        events[:1],
        [
            _row(
                "binance.spot.kline", 1763942339999_000000, "BTCUSDT", "btc",
                interval="1m", open_ns=1763942280 * S, close_ns=1763942339999_000000,
                open=86850.0, high=86900.0, low=86840.1, close=86890.0, volume=35.12,
                quote_volume=3051234.5678, trades=4012, taker_buy_base=20.1,
                taker_buy_quote=1746543.21, closed=True,
            )
        ],
    )  # fmt: skip
    assert events[0].raw == (
        '[1763942280000,"86850.00000000","86900.00000000","86840.10000000","86890.00000000",'
        '"35.12000000",1763942339999,"3051234.56780000",4012,"20.10000000",'
        '"1746543.21000000","0"]'
    )
    assert [json.loads(e.raw) for e in events] == bars
    # closed iff the bar's close time is at or before the receive time
    assert [e.fields["closed"] for e in events] == [True, True, False]
    assert [e.exch_ns for e in events] == [e.fields["close_ns"] for e in events]


def test_rest_klines_closed_at_exact_close_time() -> None:
    text = FRAMES[("rest_klines_ms.json", 0)].text
    at_close = parse_rest_klines(text, 1763942399999_000000, symbol="BTCUSDT")
    assert [e.fields["closed"] for e in at_close] == [True, True, False]
    before = parse_rest_klines(text, 1763942399999_000000 - 1, symbol="BTCUSDT")
    assert [e.fields["closed"] for e in before] == [True, False, False]


def test_rest_klines_us_and_whitespace() -> None:
    frame = FRAMES[("rest_klines_us.json", 0)]
    events = Parser().parse(frame)
    _assert_rows(
        events,
        [
            _row(
                "binance.spot.kline", 1763942399999999_000, "ETHUSDT", "eth",
                interval="1m", open_ns=1763942340 * S, close_ns=1763942399999999_000,
                open=2800.1, high=2801.5, low=2799.9, close=2801.0, volume=510.2,
                quote_volume=1428912.5, trades=1877, taker_buy_base=260.0,
                taker_buy_quote=728120.0, closed=True,
            ),
            _row(
                "binance.spot.kline", 1763942459999999_000, "ETHUSDT", "eth",
                interval="1m", open_ns=1763942400 * S, close_ns=1763942459999999_000,
                open=2801.0, high=2804.1, low=2800.55, close=2803.5, volume=412.3,
                quote_volume=1155612.345, trades=201, taker_buy_base=250.1,
                taker_buy_quote=700990.12, closed=False,
            ),
        ],
    )  # fmt: skip
    # each raw is exactly its element's text, inner whitespace and newlines included
    assert events[0].raw.startswith("[\n    1763942340000000,") and events[0].raw.endswith(
        '"0"\n  ]'
    )
    assert events[1].raw.startswith("[ 1763942400000000,") and events[1].raw.endswith('"0" ]')
    assert [json.loads(e.raw) for e in events] == json.loads(frame.text)


@pytest.mark.parametrize(
    "open_ms,close_ms,interval",
    [
        (1763942400000, 1763942400999, "1s"),
        (1763942400000, 1763942699999, "5m"),
        (1763942400000, 1763946000000 - 1, "1h"),
        (1763942400000, 1763942400000 + 86_400_000 - 1, "1d"),
        (1761955200000, 1764547200000 - 1, "1M"),  # November 2025: 30 days
    ],
)
def test_rest_klines_interval_is_read_off_the_bar(
    open_ms: int, close_ms: int, interval: str
) -> None:
    text = json.dumps([[open_ms, "1", "2", "0.5", "1.5", "10", close_ms, "15", 3, "4", "6", "0"]])
    (ev,) = parse_rest_klines(text, RECV_NS, symbol="XRPUSDT")
    assert ev.fields["interval"] == interval
    assert (ev.key, ev.asset) == ("XRPUSDT", "xrp")


def test_rest_klines_empty_array() -> None:
    assert parse_rest_klines(" [ ] ", RECV_NS, symbol="BTCUSDT") == []


def test_control_frames() -> None:
    msgs = []
    for i in range(6):
        (ev,) = Parser().parse(FRAMES[("spot_ws_control.jsonl", i)])
        assert ev.stream == STATUS_STREAM and ev.key == CH_BINANCE_SPOT_WS
        assert ev.exch_ns is None and ev.asset is None
        assert ev.fields["kind"] == "control" and ev.fields["stream_id"] is None
        assert ev.raw == FRAMES[("spot_ws_control.jsonl", i)].text
        msgs.append(ev.fields["message"])
    assert "serverShutdown" in msgs[0] and "1763942400000000000" in msgs[0]
    assert "serverShutdown" in msgs[1] and "1763942400000123000" in msgs[1]  # µs E
    assert "id=1" in msgs[2] and "result=null" in msgs[2]
    assert "btcusdt@depth5@100ms" in msgs[3]
    assert "code=2" in msgs[4] and "property name must be a string" in msgs[4]
    assert "code=1" in msgs[5] and "'sub-42'" in msgs[5]
    (ack,) = Parser().parse(FRAMES[("futures_ws_control.jsonl", 0)])
    assert ack.key == CH_BINANCE_FUTURES_WS and "id=7" in ack.fields["message"]


def test_nested_error_reply_is_control() -> None:
    text = '{"error":{"code":2,"msg":"Invalid request: missing field `method`"},"id":9}'
    (ev,) = parse_ws(text, RECV_NS, venue="futures")
    assert ev.fields["kind"] == "control"
    assert "code=2" in ev.fields["message"] and "id=9" in ev.fields["message"]


def test_all_market_book_ticker_stream() -> None:
    text = (
        '{"stream":"!bookTicker","data":{"e":"bookTicker","u":400900217,"s":"ETHUSDT",'
        '"b":"2801.00","B":"31.21","a":"2801.01","A":"40.66","T":1763942400160,"E":1763942400161}}'
    )
    (ev,) = parse_ws(text, RECV_NS, venue="futures")
    assert (ev.stream, ev.key, ev.fields["update_id"]) == (
        "binance.futures.book_ticker",
        "ETHUSDT",
        400900217,
    )


def test_kline_utc8_stream_variant() -> None:
    line = FRAMES[("spot_ws_kline.jsonl", 0)].text.replace("@kline_1m", "@kline_1m@+08:00")
    (ev,) = parse_ws(line, RECV_NS, venue="spot")
    assert ev.stream == "binance.spot.kline" and ev.fields["interval"] == "1m"


def test_partial_depth_level_count_comes_from_stream_name() -> None:
    for line in range(3):
        frame = FRAMES[("spot_ws_depth_partial.jsonl", line)]
        (ev,) = parse_ws(frame.text, RECV_NS, venue="spot")
        n = int(json.loads(frame.text)["stream"].split("@")[1][len("depth") :])
        assert ev.fields["levels"] == n == len(ev.fields["bid_px"]) == len(ev.fields["ask_px"])
        data = json.loads(frame.text)["data"]
        assert sorted(float(p) for p, _ in data["bids"]) == sorted(ev.fields["bid_px"])
        # quantities travel with their prices through the sort
        pairs = {float(p): float(q) for p, q in data["bids"] + data["asks"]}
        for px, qty in zip(
            ev.fields["bid_px"] + ev.fields["ask_px"],
            ev.fields["bid_qty"] + ev.fields["ask_qty"],
            strict=True,
        ):
            assert pairs[px] == qty


# ---------------------------------------------------------------------------------------------
# Bad input: the venue function raises ParseError naming what is wrong; the Parser turns it into
# exactly one parse_error status event keeping the raw text and naming the channel.

_AGG = json.loads(FRAMES[("spot_ws_aggtrade.jsonl", 0)].text)
_KLINE = json.loads(FRAMES[("spot_ws_kline.jsonl", 0)].text)
_FDEPTH = json.loads(FRAMES[("futures_ws_depth.jsonl", 0)].text)
_LIQ = json.loads(FRAMES[("futures_ws_liquidation.jsonl", 0)].text)
_MARKF = json.loads(FRAMES[("futures_ws_mark.jsonl", 0)].text)


def _with(frame: Mapping[str, Any], path: str, value: Any = ...) -> str:
    """``frame`` as compact JSON with field ``path`` (dotted) set to ``value`` or removed."""
    out = json.loads(json.dumps(frame))
    *parents, last = path.split(".")
    d = out
    for p in parents:
        d = d[p]
    if value is ...:
        del d[last]
    else:
        d[last] = value
    return json.dumps(out, separators=(",", ":"))


_SPOT_AGG_TEXT = FRAMES[("spot_ws_aggtrade.jsonl", 0)].text
BAD_WS: list[tuple[str, str, str]] = [
    # (channel, text, what the message must say)
    (CH_BINANCE_SPOT_WS, _SPOT_AGG_TEXT[:57], "not valid JSON"),
    (CH_BINANCE_SPOT_WS, _SPOT_AGG_TEXT[:-1], "not valid JSON"),
    (CH_BINANCE_SPOT_WS, "<html>502 Bad Gateway</html>", "not valid JSON"),
    (CH_BINANCE_SPOT_WS, "", "empty frame"),
    (CH_BINANCE_FUTURES_WS, "  \n", "empty frame"),
    (CH_BINANCE_SPOT_WS, "42", "JSON int"),
    (CH_BINANCE_SPOT_WS, "null", "JSON NoneType"),
    (CH_BINANCE_FUTURES_WS, '"aggTrade"', "JSON str"),
    (CH_BINANCE_SPOT_WS, _with(_AGG, "data.p"), "btcusdt@aggTrade: missing field 'p'"),
    (CH_BINANCE_SPOT_WS, _with(_AGG, "data.s"), "missing field 's'"),
    (CH_BINANCE_SPOT_WS, _with(_AGG, "data.m", "false"), "field 'm' is 'false'"),
    (CH_BINANCE_SPOT_WS, _with(_AGG, "data.a", "3712845601"), "field 'a'"),
    (CH_BINANCE_SPOT_WS, _with(_AGG, "data.a", 3712845601.0), "field 'a'"),
    (CH_BINANCE_SPOT_WS, _with(_AGG, "data.p", "8691x.45"), "field 'p'"),
    (CH_BINANCE_SPOT_WS, _with(_AGG, "data.q", None), "field 'q' is null"),
    (CH_BINANCE_SPOT_WS, _with(_AGG, "data.E", "1763942400123"), "field 'E'"),
    (CH_BINANCE_SPOT_WS, _with(_AGG, "data", "oops"), "payload is str"),
    (CH_BINANCE_SPOT_WS, _with(_AGG, "data.e", "trade"), "expected 'aggTrade'"),
    (CH_BINANCE_SPOT_WS, _with(_AGG, "data"), "has no 'data'"),
    (CH_BINANCE_SPOT_WS, _with(_AGG, "stream", "btcusdt@ticker"), "unknown stream"),
    (CH_BINANCE_SPOT_WS, _with(_AGG, "stream", 7), "stream name must be a string"),
    (CH_BINANCE_SPOT_WS, _with(_AGG, "stream", "@aggTrade"), "no symbol"),
    (CH_BINANCE_SPOT_WS, json.dumps(_AGG["data"] | {"e": "24hrTicker"}), "unknown event type"),
    (CH_BINANCE_SPOT_WS, '{"foo":1}', "unrecognised payload"),
    (CH_BINANCE_SPOT_WS, '{"lastUpdateId":1,"bids":[],"asks":[]}', "no symbol"),
    (CH_BINANCE_SPOT_WS, _with(_KLINE, "data.k.x"), "missing field 'k.x'"),
    (CH_BINANCE_SPOT_WS, _with(_KLINE, "data.k.n", "90"), "field 'k.n'"),
    (CH_BINANCE_SPOT_WS, _with(_KLINE, "data.k"), "missing field 'k'"),
    (CH_BINANCE_FUTURES_WS, _with(_FDEPTH, "data.pu"), "btcusdt@depth@0ms: missing field 'pu'"),
    (CH_BINANCE_FUTURES_WS, _with(_FDEPTH, "data.b", [["1.0"]]), "field 'b'"),
    (CH_BINANCE_FUTURES_WS, _with(_FDEPTH, "data.a", [["1.0", "2", "3"]]), "field 'a'"),
    (CH_BINANCE_FUTURES_WS, _with(_FDEPTH, "data.a", "[]"), "field 'a'"),
    (CH_BINANCE_FUTURES_WS, _with(_LIQ, "data.o.S"), "missing field 'o.S'"),
    (CH_BINANCE_FUTURES_WS, _with(_MARKF, "data.p", ""), "field 'p' is ''"),
    (CH_BINANCE_SPOT_WS, FRAMES[("futures_ws_mark.jsonl", 0)].text, "only exists on futures"),
    (CH_BINANCE_SPOT_WS, '{"stream":"btcusdt@depth@100ms","data":{"lastUpdateId":1,"bids":[],"asks":[]}}', "no level count"),  # noqa: E501
    (CH_BINANCE_SPOT_WS, '{"stream":"btcusdt@depth5","data":{"lastUpdateId":1,"bids":[["1"]],"asks":[]}}', "field 'bids'"),  # noqa: E501
    (CH_BINANCE_SPOT_WS, '{"stream":"!markPrice@arr@1s","data":[1,2', "not valid JSON"),
]  # fmt: skip

BAD_REST: list[tuple[str, dict[str, str], str, str]] = [
    (CH_BINANCE_SPOT_KLINES, {"symbol": "BTCUSDT"}, "", "expected a JSON array"),
    (CH_BINANCE_SPOT_KLINES, {"symbol": "BTCUSDT"}, "42", "expected a JSON array"),
    (CH_BINANCE_SPOT_KLINES, {"symbol": "BTCUSDT"}, "not json", "expected a JSON array"),
    (CH_BINANCE_SPOT_KLINES, {"symbol": "BTCUSDT"}, '[[1763942280000,"86850.0"', "truncated"),
    (CH_BINANCE_SPOT_KLINES, {"symbol": "BTCUSDT"}, '{"code":-1121,"msg":"Invalid symbol."}', "code=-1121: Invalid symbol."),  # noqa: E501
    (CH_BINANCE_SPOT_KLINES, {"symbol": "BTCUSDT"}, '[[1763942280000,"1","2","0.5","1.5"]]', "bar 0: has 5 elements"),  # noqa: E501
    (CH_BINANCE_SPOT_KLINES, {"symbol": "BTCUSDT"}, '[[1763942280000,"1","2","0.5","1.5","10",1763942339999,"15","3","4","6","0"]]', "element 8 (trades)"),  # noqa: E501
    (CH_BINANCE_SPOT_KLINES, {"symbol": "BTCUSDT"}, '[[1763942280000,"1","2","0.5","1.5","10",1763942339998,"15",3,"4","6","0"]]', "not a Binance kline interval"),  # noqa: E501
    (CH_BINANCE_SPOT_KLINES, {"symbol": "BTCUSDT"}, '[{"t":1}]', "bar 0: is"),
    (CH_BINANCE_SPOT_KLINES, {}, FRAMES[("rest_klines_ms.json", 0)].text, "no request 'symbol'"),
    (CH_BINANCE_FUTURES_OI, {}, "", "empty response"),
    (CH_BINANCE_FUTURES_OI, {}, '{"openInterest":"81234.567","symbol":"BTC', "not valid JSON"),
    (CH_BINANCE_FUTURES_OI, {}, "12", "expected an object"),
    (CH_BINANCE_FUTURES_OI, {}, '{"symbol":"BTCUSDT","time":1763942405123}', "missing field 'openInterest'"),  # noqa: E501
    (CH_BINANCE_FUTURES_OI, {}, '{"openInterest":"81234.567","symbol":"BTCUSDT","time":"1763942405123"}', "field 'time'"),  # noqa: E501
    (CH_BINANCE_FUTURES_OI, {}, '{"code":-1121,"msg":"Invalid symbol."}', "code=-1121"),
]  # fmt: skip


def _assert_one_parse_error(frame: Frame, needle: str) -> None:
    events = Parser().parse(frame)
    assert len(events) == 1, events
    (ev,) = events
    assert ev.stream == STATUS_STREAM
    assert ev.fields["kind"] == "parse_error"
    assert ev.raw == frame.text
    assert ev.key == frame.channel
    assert ev.recv_ns == frame.recv_ns
    assert needle in ev.fields["message"], ev.fields["message"]
    events_to_table(events, STATUS_STREAM)


@pytest.mark.parametrize("channel,text,needle", BAD_WS, ids=[x[2] for x in BAD_WS])
def test_bad_ws_frame(channel: str, text: str, needle: str) -> None:
    _assert_one_parse_error(Frame(channel=channel, recv_ns=RECV_NS, text=text), needle)
    # the venue function itself raises ParseError (never a bare KeyError/TypeError), naming
    # the channel
    with pytest.raises(ParseError) as info:
        parse_ws(text, RECV_NS, venue=_VENUE[channel])  # type: ignore[arg-type]
    assert str(info.value).startswith(channel)
    assert info.value.channel == channel


@pytest.mark.parametrize("channel,request_,text,needle", BAD_REST, ids=[x[3] for x in BAD_REST])
def test_bad_rest_response(channel: str, request_: dict[str, str], text: str, needle: str) -> None:
    frame = Frame(channel=channel, recv_ns=RECV_NS, text=text, request=request_)
    _assert_one_parse_error(frame, needle)
    if request_ or channel == CH_BINANCE_FUTURES_OI:
        with pytest.raises(ParseError) as info:
            _parse(frame)
        assert str(info.value).startswith(channel)


def test_parse_is_pure_and_repeatable() -> None:
    """Same input, same output: no hidden state leaks between calls (memo tables included)."""
    frames = list(FRAMES.values())
    first = [Parser().parse(f) for f in frames]
    second = [Parser().parse(f) for f in reversed(frames)][::-1]
    assert first == second


def test_mark_price_with_empty_funding_rate_is_null() -> None:
    """Delivery contracts send ``"r":""``; the row keeps a null funding rate, not an error."""
    text = (
        '{"stream":"btcusd_241227@markPrice@1s","data":{"e":"markPriceUpdate","E":1597536008000,'
        '"s":"BTCUSD_241227","p":"11857.56","i":"11851.86","P":"11850.00","r":"","T":0}}'
    )
    (ev,) = Parser().parse(Frame(channel=CH_BINANCE_FUTURES_WS, recv_ns=1, text=text))
    assert ev.stream == "binance.futures.mark"
    assert ev.fields["funding_rate"] is None
    assert ev.fields["mark_px"] == 11857.56
