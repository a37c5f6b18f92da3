"""Recorder status frames parse into recorder.status events; bad ones become parse errors."""

from __future__ import annotations

from polyrl.events import CH_BINANCE_SPOT_WS, CH_RECORDER, Frame
from polyrl.sources.parse import Parser, status_frame


def test_status_frame_round_trip() -> None:
    f = status_frame(
        "gap",
        123,
        channel=CH_BINANCE_SPOT_WS,
        stream="binance.spot.trade",
        message="reconnected",
        gap_start_ns=100,
        gap_end_ns=120,
    )
    (ev,) = Parser().parse(f)
    assert ev.stream == "recorder.status"
    assert ev.key == CH_BINANCE_SPOT_WS
    assert ev.recv_ns == 123
    assert dict(ev.fields) == {
        "kind": "gap",
        "stream_id": "binance.spot.trade",
        "message": "reconnected",
        "gap_start_ns": 100,
        "gap_end_ns": 120,
    }
    assert ev.raw == f.text


def test_bad_status_frame_is_a_parse_error() -> None:
    for text in ("{", '{"message":"x"}', '{"kind":"gap","bogus":1}'):
        (ev,) = Parser().parse(Frame(channel=CH_RECORDER, recv_ns=5, text=text))
        assert ev.fields["kind"] == "parse_error"
        assert ev.raw == text
        assert ev.key == CH_RECORDER


def test_a_status_time_that_is_not_an_integer_is_a_parse_error() -> None:
    """-0.0 would be stored as 0 and 1e18 as an int: a changed value, so the frame is refused
    (found by the poison fuzz test)."""
    for value in ("-0.0", "1e18", '"5"', "true"):
        text = '{"kind":"gap","channel":"c","message":"m","gap_start_ns":' + value + "}"
        (ev,) = Parser().parse(Frame(channel=CH_RECORDER, recv_ns=5, text=text))
        assert ev.fields["kind"] == "parse_error"
        assert "gap_start_ns" in ev.fields["message"]
        assert ev.raw == text
