"""Poison frames: a value no column can store makes its frame one parse_error row that names
the stream and field and keeps the frame text; nothing is raised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyrl.events import (
    CH_BINANCE_SPOT_WS,
    CH_POLYMARKET_WS,
    CH_RECORDER,
    STATUS_STREAM,
    Event,
    Frame,
)
from polyrl.recording.schema import STORAGE_PLANS, STREAM_IDS
from polyrl.sources.parse import Parser, status_frame
from polyrl.sources.storable import check_for_arrow_type, first_unstorable

FRAMES = Path(__file__).resolve().parents[2] / "data" / "frames"
RECV = 1_717_200_000_000_000_000
TRADE = (FRAMES / "binance" / "spot_ws_aggtrade.jsonl").read_text().splitlines()[0]
BIG = 1180591620717411303424


def _one_error(frame: Frame, parser: Parser | None = None) -> Event:
    events = (parser or Parser(storage=STORAGE_PLANS)).parse(frame)
    assert len(events) == 1
    (ev,) = events
    assert ev.stream == STATUS_STREAM and ev.fields["kind"] == "parse_error"
    return ev


def _trade(**data: object) -> str:
    obj = json.loads(TRADE)
    obj["data"].update(data)
    return json.dumps(obj, separators=(",", ":"))


@pytest.mark.parametrize("with_plans", [True, False])
def test_event_time_beyond_int64_is_a_parse_error_naming_the_field(with_plans: bool) -> None:
    text = _trade(E=BIG)
    parser = Parser(storage=STORAGE_PLANS) if with_plans else Parser()
    ev = _one_error(Frame(channel=CH_BINANCE_SPOT_WS, recv_ns=RECV, text=text), parser)
    assert ev.raw == text
    assert ev.fields["stream_id"] == "binance.spot.trade"
    assert "binance.spot.trade: field 'exch_ns'" in ev.fields["message"]
    assert str(BIG) in ev.fields["message"] and "int64" in ev.fields["message"]
    assert ev.key == CH_BINANCE_SPOT_WS and ev.recv_ns == RECV


def test_a_lone_surrogate_escape_is_a_parse_error_keeping_the_ascii_text() -> None:
    text = _trade(s="BTC\ud800USDT")  # json.dumps writes the escape: the text is ASCII
    assert text.isascii() and "\\ud800" in text
    ev = _one_error(Frame(channel=CH_BINANCE_SPOT_WS, recv_ns=RECV, text=text))
    assert ev.raw == text
    assert "binance.spot.trade: field 'key'" in ev.fields["message"]
    assert "lone surrogate" in ev.fields["message"]
    ev.fields["message"].encode("utf-8")  # the message itself is storable


def test_text_utf8_cannot_encode_is_kept_as_a_json_string_literal() -> None:
    text = _trade(s="BTCUSDT").replace("BTCUSDT", "BTC\udc00USDT")  # a raw surrogate char
    ev = _one_error(Frame(channel=CH_BINANCE_SPOT_WS, recv_ns=RECV, text=text))
    assert json.loads(ev.raw) == text and ev.raw.isascii()
    assert "JSON string literal" in ev.fields["message"]


def test_a_millisecond_time_sent_as_a_string_beyond_int64() -> None:
    obj = json.loads((FRAMES / "polymarket" / "clob_ws" / "price_change_current.json").read_text())
    obj["timestamp"] = str(BIG)
    text = json.dumps(obj)
    ev = _one_error(Frame(channel=CH_POLYMARKET_WS, recv_ns=RECV, text=text))
    assert "polymarket.price_change: field 'exch_ns'" in ev.fields["message"]
    assert ev.raw == text


def test_a_status_frame_with_an_unstorable_gap_time() -> None:
    f = status_frame("gap", RECV, channel=CH_BINANCE_SPOT_WS, gap_start_ns=2**63)
    ev = _one_error(f)
    assert "recorder.status: field 'gap_start_ns'" in ev.fields["message"]
    assert ev.key == CH_RECORDER and ev.raw == f.text


def test_json_nested_too_deeply_is_a_parse_error_not_a_crash() -> None:
    text = '{"stream":"btcusdt@aggTrade","data":' + "[" * 100_000 + "]" * 100_000 + "}"
    ev = _one_error(Frame(channel=CH_BINANCE_SPOT_WS, recv_ns=RECV, text=text))
    assert ev.raw == text


def test_a_good_frame_is_untouched() -> None:
    (ev,) = Parser(storage=STORAGE_PLANS).parse(
        Frame(channel=CH_BINANCE_SPOT_WS, recv_ns=RECV, text=TRADE)
    )
    assert ev.stream == "binance.spot.trade"
    assert first_unstorable([ev], STORAGE_PLANS) is None


def test_every_stream_has_a_plan() -> None:
    assert set(STORAGE_PLANS) == set(STREAM_IDS)


@pytest.mark.parametrize(
    ("arrow_type", "ok", "bad"),
    [
        ("int64", [2**63 - 1, -(2**63), 0, 3.0], [2**63, -(2**63) - 1, 2**64, "1", 1.5, True]),
        ("int32", [2**31 - 1, -(2**31)], [2**31, -(2**31) - 1, float("nan")]),
        ("int8", [-1, 1, 127], [128, -129]),
        ("double", [float("inf"), float("nan"), -0.0, 2**53], [2**53 + 1, "1.5", None, False]),
        ("string", ["", "\x00", "\ufeff\u202e", "\U0001d518"], ["\ud800", "a\udfffb", 1, b"x"]),
        ("bool", [True, False], [1, 0, "true"]),
        ("list<item: double>", [[], [1.0, None], [2]], [[1, "2"], "[]", [2**70], {"a": 1}]),
    ],
)
def test_checks_follow_arrow(arrow_type: str, ok: list[object], bad: list[object]) -> None:
    import pyarrow as pa

    check = check_for_arrow_type(arrow_type)
    typ = {"list<item: double>": pa.list_(pa.float64())}.get(arrow_type) or pa.type_for_alias(
        arrow_type
    )
    for v in ok:
        assert check(v) is None, v
        pa.array([v], type=typ)  # Arrow agrees: it stores it
    for v in bad:
        assert check(v) is not None, v
