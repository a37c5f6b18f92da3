"""Quality flags: real captured frames carry none; each injected defect sets exactly its bit.

Fixtures are real frames (tests/data/frames/quality/README.md). A defect is injected by
editing one frame's JSON the way a corrupt feed or archive would carry it, then the whole
sequence goes through the one Parser every recorder, simulator and re-parse uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyrl.events import (
    CH_BINANCE_FUTURES_OI,
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_KLINES,
    CH_BINANCE_SPOT_WS,
    CH_POLYMARKET_CLOB_BOOK,
    CH_POLYMARKET_GAMMA,
    CH_POLYMARKET_WS,
    CH_RECORDER,
    CH_RTDS_WS,
    CHANNELS,
    NS_PER_MS,
    NS_PER_S,
    STATUS_STREAM,
    Event,
    Frame,
)
from polyrl.recording.schema import STREAM_IDS
from polyrl.sources.parse import Parser, status_frame
from polyrl.sources.quality.checker import QualityChecker
from polyrl.sources.quality.flags import (
    BAD_TIME,
    BAD_VALUE,
    CROSSED,
    DEPTH_IDS,
    DUPLICATE,
    FLAGS,
    PRICE_RANGE,
    SEQ_GAP,
    SYMBOL,
    names,
)
from polyrl.testing.factories import make_event

DATA = Path(__file__).resolve().parents[2] / "data" / "frames"
Q = DATA / "quality"
LATENCY_NS = 80 * NS_PER_MS
YEAR_NS = 365 * 86_400 * NS_PER_S


def _captured(name: str, channel: str) -> list[Frame]:
    """``<recv_ns> <frame>`` lines of a capture."""
    out = []
    for line in (Q / name).read_text().splitlines():
        t, _, text = line.partition(" ")
        out.append(Frame(channel=channel, recv_ns=int(t), text=text))
    return out


def _pm_recv(text: str) -> int:
    """A receive time 80 ms after the frame's own timestamp (ms, string or number)."""
    d = json.loads(text)
    ts = d.get("timestamp") or d["payload"]["timestamp"]
    return int(ts) * NS_PER_MS + LATENCY_NS


def _pm(name: str, channel: str = CH_POLYMARKET_WS) -> list[Frame]:
    return [
        Frame(channel=channel, recv_ns=_pm_recv(t), text=t)
        for t in (Q / name).read_text().splitlines()
    ]


SPOT = _captured("binance_spot_btcusdt_2024-08-08.txt", CH_BINANCE_SPOT_WS)
USDM = _captured("binance_usdm_btcusdt_2024-08-08.txt", CH_BINANCE_FUTURES_WS)
SPOT_DEPTH5 = _captured("binance_spot_depth5_2024-08-08.txt", CH_BINANCE_SPOT_WS)[0]
BURST = _pm("polymarket_clob_ws_burst_2026-09-29.jsonl")
PM_FRAMES = _pm("polymarket_clob_ws_frames.jsonl")
RTDS = _pm("polymarket_rtds_frames.jsonl", CH_RTDS_WS)
REST_BOOK_TEXT = (Q / "polymarket_clob_rest_book_2024.json").read_text()
GAMMA_TEXT = (Q / "polymarket_gamma_market_btc-updown-5m_2026-08.json").read_text()


def _of(frames: list[Frame], marker: str) -> list[Frame]:
    return [f for f in frames if marker in f.text[:60]]


def _rows(frames: list[Frame], parser: Parser | None = None) -> list[Event]:
    """Every non-status event of ``frames`` parsed in order by one Parser (no parse errors)."""
    parser = parser or Parser()
    out = []
    for f in frames:
        for ev in parser.parse(f):
            if ev.stream == STATUS_STREAM:
                assert ev.fields["kind"] != "parse_error", ev.fields["message"]
                continue
            out.append(ev)
    return out


def _edit(frame: Frame, fn: Callable[[dict[str, Any]], None], **kw: Any) -> Frame:
    """``frame`` with its JSON edited in place by ``fn`` (members keep their order)."""
    d = json.loads(frame.text)
    fn(d)
    text = json.dumps(d, separators=(",", ":"))
    return Frame(
        channel=kw.get("channel", frame.channel),
        recv_ns=kw.get("recv_ns", frame.recv_ns),
        text=text,
        request=kw.get("request", frame.request),
    )


def _status(kind: str, channel: str, t: int) -> Frame:
    return status_frame(kind, t, channel=channel, message="test")


def _one(frame: Frame, parser: Parser | None = None) -> int:
    (ev,) = _rows([frame], parser)
    return ev.quality


# ---------------------------------------------------------------------------------------------
# Clean real frames


@pytest.mark.parametrize(
    "frames",
    [SPOT, USDM, [SPOT_DEPTH5], BURST, PM_FRAMES, RTDS],
    ids=["spot", "usdm", "spot_depth5", "pm_burst", "pm_frames", "rtds"],
)
def test_real_frames_carry_no_flag(frames: list[Frame]) -> None:
    rows = _rows(frames)
    assert len(rows) >= len(frames) // 2
    flagged = [(ev.stream, names(ev.quality)) for ev in rows if ev.quality]
    assert flagged == []


def test_real_rest_frames_carry_no_flag() -> None:
    book = Frame(
        channel=CH_POLYMARKET_CLOB_BOOK,
        recv_ns=_pm_recv(REST_BOOK_TEXT),
        text=REST_BOOK_TEXT,
    )
    gamma = Frame(channel=CH_POLYMARKET_GAMMA, recv_ns=1_787_414_400 * NS_PER_S, text=GAMMA_TEXT)
    rows = _rows([book, gamma])
    assert {ev.stream for ev in rows} == {"polymarket.book", "polymarket.market"}
    assert [ev.quality for ev in rows] == [0, 0]


def test_the_real_captures_hold_what_the_checks_must_let_pass() -> None:
    """Size-0 levels in diffs and price_changes (removals), venue clocks ahead of ours."""
    diffs = [ev for ev in _rows(SPOT + USDM) if ev.stream.endswith(".depth")]
    assert any(0.0 in ev.fields["bid_qty"] + ev.fields["ask_qty"] for ev in diffs)
    changes = [ev for ev in _rows(BURST) if ev.stream == "polymarket.price_change"]
    assert any(ev.fields["size"] == 0 for ev in changes)
    spot = [ev for ev in _rows(SPOT) if ev.exch_ns is not None]
    assert any(ev.exch_ns > ev.recv_ns + NS_PER_S for ev in spot)  # the host clock lagged
    assert all(ev.quality == 0 for ev in diffs + changes + spot)


# ---------------------------------------------------------------------------------------------
# One defect, one bit


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def fn(d: dict[str, Any]) -> None:
        *head, last = path.split(".")
        for p in head:
            d = d[int(p)] if p.isdigit() else d[p]  # type: ignore[index]
        d[int(last) if last.isdigit() else last] = value  # type: ignore[index]

    return fn


TRADE = _of(SPOT, "@trade")[0]
FUT_TRADE = _of(USDM, "@trade")[0]
TICKER = _of(SPOT, "@bookTicker")[0]
DIFF = _of(SPOT, "@depth@100ms")[0]
PM_BOOK = BURST[0]
PM_CHANGE = next(f for f in BURST if '"price_changes"' in f.text)
PM_TRADE = next(f for f in PM_FRAMES if '"event_type":"last_trade_price"' in f.text)
PM_BBA = next(f for f in PM_FRAMES if '"event_type":"best_bid_ask"' in f.text)
PM_TICK = next(f for f in PM_FRAMES if '"event_type":"tick_size_change"' in f.text)


DEFECTS = [
    # non-positive or non-finite price or size
    (TRADE, _set("data.p", "0.00000000"), BAD_VALUE),
    (TRADE, _set("data.p", "-1"), BAD_VALUE),
    (TRADE, _set("data.q", "NaN"), BAD_VALUE),
    (FUT_TRADE, _set("data.q", "0"), BAD_VALUE),
    (TICKER, _set("data.B", "0.00000000"), BAD_VALUE),
    (DIFF, _set("data.a.0.0", "0.00000000"), BAD_VALUE),  # a level at price 0
    (DIFF, _set("data.b.0.1", "-0.5"), BAD_VALUE),
    (DIFF, _set("data.b.0.1", "Infinity"), BAD_VALUE),
    (SPOT_DEPTH5, _set("data.bids.4.1", "0.00000000"), BAD_VALUE),  # 0 removes nothing here
    (SPOT_DEPTH5, _set("data.bids.4.0", "0"), BAD_VALUE),
    (PM_BOOK, _set("bids.0.price", "0"), BAD_VALUE),  # a Polymarket level at price 0
    (PM_BOOK, _set("asks.0.size", "0"), BAD_VALUE),  # size 0 in a full book: no level
    (PM_CHANGE, _set("price_changes.0.size", "-5"), BAD_VALUE),
    (PM_CHANGE, _set("price_changes.0.price", "0"), BAD_VALUE),
    (PM_TRADE, _set("size", "0"), BAD_VALUE),
    # Polymarket price outside [0, 1]
    (PM_TRADE, _set("price", "1.5"), PRICE_RANGE),
    (PM_TRADE, _set("price", "-1"), PRICE_RANGE | BAD_VALUE),
    (PM_BOOK, _set("asks.0.price", "1.2"), PRICE_RANGE),
    (PM_CHANGE, _set("price_changes.0.best_ask", "1.01"), PRICE_RANGE),
    (PM_BBA, _set("best_ask", "7"), PRICE_RANGE),
    (PM_TICK, _set("new_tick_size", "2"), PRICE_RANGE),
    # exchange time 0 (1970), or years away from the receive time
    (TRADE, _set("data.E", 0), BAD_TIME),
    (TRADE, _set("data.E", 1_723_161_255_343 + 3 * 365 * 86_400_000), BAD_TIME),
    (TRADE, _set("data.E", 1_723_161_255_343 - 400_000), BAD_TIME),
    (PM_BOOK, _set("timestamp", "0"), BAD_TIME),
    (PM_TRADE, _set("timestamp", "1"), BAD_TIME),
    # payload symbol differs from the stream's
    (TRADE, _set("data.s", "ETHUSDT"), SYMBOL),
    (TICKER, _set("stream", "ethusdt@bookTicker"), SYMBOL),
    (FUT_TRADE, _set("data.s", "BTCUSDC"), SYMBOL),
    # U > u
    (DIFF, _set("data.U", 50_093_239_203), DEPTH_IDS),
    # crossed
    (TICKER, _set("data.a", "61000.00000000"), CROSSED),
    (SPOT_DEPTH5, _set("data.asks.0.0", "61837.63000000"), CROSSED),  # locked = crossed
    (DIFF, _set("data.b.0", ["99999.00000000", "0.10000000"]), CROSSED),
    (PM_BOOK, _set("bids.0.price", "0.99"), CROSSED),
    (PM_CHANGE, _set("price_changes.0.best_bid", "0.99"), CROSSED),
    (PM_BBA, _set("best_bid", "0.8"), CROSSED),
]  # fmt: skip


@pytest.mark.parametrize("frame,edit,expected", DEFECTS)
def test_each_defect_sets_exactly_its_bits(
    frame: Frame, edit: Callable[[dict[str, Any]], None], expected: int
) -> None:
    assert all(ev.quality == 0 for ev in _rows([frame]))  # clean before the edit
    rows = _rows([_edit(frame, edit)])
    got = rows[0].quality
    assert names(got) == names(expected)
    assert all(ev.quality == 0 for ev in rows[1:])  # other rows of the frame stay clean


def test_the_clean_frames_used_above_are_clean() -> None:
    for f in (TRADE, FUT_TRADE, TICKER, DIFF, SPOT_DEPTH5, PM_TRADE, PM_BBA, PM_TICK):
        assert _one(f) == 0
    assert all(ev.quality == 0 for ev in _rows([PM_BOOK, PM_CHANGE]))


def test_every_flag_is_a_documented_bit_with_an_injected_defect() -> None:
    assert [f.mask for f in FLAGS] == [1 << i for i in range(len(FLAGS))]
    assert len({f.name for f in FLAGS}) == len(FLAGS) and all(f.doc for f in FLAGS)
    covered = SEQ_GAP | DUPLICATE  # the sequential ones: their own tests below
    for _, _, expected in DEFECTS:
        covered |= expected
    assert names(covered) == [f.name for f in FLAGS]


def test_the_time_bound_is_the_configured_one() -> None:
    late = _edit(TRADE, _set("data.E", 1_723_161_255_343 - 5_000))  # venue 3.7 s behind us
    assert _one(late) == 0
    assert _one(late, Parser(exch_tolerance_s=1.0)) == BAD_TIME
    with pytest.raises(ValueError, match="exch_tolerance_s"):
        QualityChecker(exch_tolerance_s=0)


def test_rows_whose_venue_time_is_rightly_old_are_not_flagged() -> None:
    """REST klines carry bar close times, RTDS subscribe snapshots past ticks."""
    klines = (DATA / "binance" / "rest_klines_ms.json").read_text()
    late = 1_763_942_400 * NS_PER_S + YEAR_NS
    frame = Frame(
        channel=CH_BINANCE_SPOT_KLINES, recv_ns=late, text=klines, request={"symbol": "BTCUSDT"}
    )
    rows = _rows([frame])
    assert len(rows) > 1 and all(ev.quality == 0 for ev in rows)
    update, snapshot = RTDS
    ten_min = 600 * NS_PER_S
    backfill = _rows(
        [Frame(channel=CH_RTDS_WS, recv_ns=snapshot.recv_ns + ten_min, text=snapshot.text)]
    )
    assert backfill and all(ev.fields["backfill"] and ev.quality == 0 for ev in backfill)
    live = Frame(channel=CH_RTDS_WS, recv_ns=update.recv_ns + ten_min, text=update.text)
    assert _one(live) == BAD_TIME


def test_a_rest_response_for_another_symbol_than_requested_is_flagged() -> None:
    text = (DATA / "binance" / "rest_open_interest.json").read_text()
    t = json.loads(text)["time"] * NS_PER_MS
    ok = Frame(channel=CH_BINANCE_FUTURES_OI, recv_ns=t, text=text, request={"symbol": "BTCUSDT"})
    other = Frame(
        channel=CH_BINANCE_FUTURES_OI, recv_ns=t, text=text, request={"symbol": "ETHUSDT"}
    )
    assert _one(ok) == 0
    assert _one(other) == SYMBOL


def test_a_polymarket_row_naming_another_market_than_its_token_is_flagged() -> None:
    gamma = Frame(channel=CH_POLYMARKET_GAMMA, recv_ns=1_787_414_400 * NS_PER_S, text=GAMMA_TEXT)
    p = Parser()
    (market,) = _rows([gamma], p)
    up = market.fields["up_token"]

    def retoken(market_id: str) -> Callable[[dict[str, Any]], None]:
        def fn(d: dict[str, Any]) -> None:
            d["market"] = market_id
            for e in d["price_changes"]:
                e["asset_id"] = up

        return fn

    own = _rows([_edit(PM_CHANGE, retoken(market.key))], p)
    other = _rows([_edit(PM_CHANGE, retoken("0x" + "ab" * 32))], p)
    assert own and all(ev.quality == 0 for ev in own)
    assert other and all(ev.quality == SYMBOL for ev in other)


def test_checks_that_cannot_read_a_field_flag_it_and_never_raise() -> None:
    ev = Event(
        stream="binance.spot.trade",
        recv_ns=1,
        exch_ns=1,
        key="BTCUSDT",
        asset="btc",
        fields={"price": "61837.63", "qty": 1.0, "trade_id": 1},
        raw="",
    )
    frame = Frame(channel=CH_BINANCE_SPOT_WS, recv_ns=1, text="")
    (out,) = QualityChecker().check(frame, [ev])
    assert out.quality == BAD_VALUE and out.fields is ev.fields and out.raw == ev.raw


# ---------------------------------------------------------------------------------------------
# Sequential checks, and their reset on a new connection


def _quality_by_stream(frames: list[Frame], stream: str) -> list[int]:
    return [ev.quality for ev in _rows(frames) if ev.stream == stream]


def test_a_missing_spot_diff_flags_the_next_one_as_a_sequence_break() -> None:
    diffs = _of(SPOT, "@depth@100ms")
    assert len(diffs) == 12
    assert _quality_by_stream(diffs, "binance.spot.depth") == [0] * 12
    gap = diffs[:5] + diffs[6:]
    assert _quality_by_stream(gap, "binance.spot.depth") == [0] * 5 + [SEQ_GAP] + [0] * 5
    # The same diff twice: it does not follow its predecessor either.
    again = diffs[:5] + [diffs[4]] + diffs[5:]
    assert _quality_by_stream(again, "binance.spot.depth") == [0] * 5 + [SEQ_GAP] + [0] * 7


def test_a_missing_futures_diff_breaks_the_pu_chain() -> None:
    diffs = _of(USDM, "@depth@0ms")
    assert len(diffs) == 10
    assert _quality_by_stream(diffs, "binance.futures.depth") == [0] * 10
    gap = diffs[:3] + diffs[4:]
    assert _quality_by_stream(gap, "binance.futures.depth") == [0] * 3 + [SEQ_GAP] + [0] * 5


def test_a_u_above_capital_u_mid_sequence_sets_both_its_bits_once() -> None:
    diffs = _of(SPOT, "@depth@100ms")
    bad = _edit(diffs[3], lambda d: d["data"].update(U=d["data"]["u"] + 1))
    got = _quality_by_stream(diffs[:3] + [bad] + diffs[4:], "binance.spot.depth")
    assert got == [0, 0, 0, DEPTH_IDS | SEQ_GAP] + [0] * 8


@pytest.mark.parametrize(
    "kind,channel",
    [
        ("connect", CH_BINANCE_SPOT_WS),
        ("disconnect", CH_BINANCE_SPOT_WS),
        ("start", CH_RECORDER),
    ],
)
def test_sequence_state_starts_afresh_on_a_new_connection(kind: str, channel: str) -> None:
    diffs = _of(SPOT, "@depth@100ms")
    t = diffs[5].recv_ns - 1
    frames = diffs[:5] + [_status(kind, channel, t)] + diffs[6:]
    assert _quality_by_stream(frames, "binance.spot.depth") == [0] * 11
    # A status of another channel does not reset this one.
    other = diffs[:5] + [_status("connect", CH_POLYMARKET_WS, t)] + diffs[6:]
    assert SEQ_GAP in _quality_by_stream(other, "binance.spot.depth")


def test_a_trade_id_sent_twice_on_one_connection_is_flagged() -> None:
    trades = _of(SPOT, "@trade")
    assert len(trades) == 20
    assert _quality_by_stream(trades, "binance.spot.trade") == [0] * 20
    resent = trades[:10] + [trades[3]] + trades[10:]
    assert _quality_by_stream(resent, "binance.spot.trade") == [0] * 10 + [DUPLICATE] + [0] * 10
    fut = _of(USDM, "@trade")
    resent_fut = fut + [fut[0]]
    assert _quality_by_stream(resent_fut, "binance.futures.trade")[-1] == DUPLICATE


def test_trade_ids_start_afresh_on_a_new_connection() -> None:
    trades = _of(SPOT, "@trade")
    t = trades[10].recv_ns - 1
    frames = (
        trades[:10]
        + [_status("disconnect", CH_BINANCE_SPOT_WS, t), _status("connect", CH_BINANCE_SPOT_WS, t)]
        + [trades[3]]
        + trades[10:]
    )
    assert _quality_by_stream(frames, "binance.spot.trade") == [0] * 21


def test_ids_of_different_streams_are_never_compared() -> None:
    """An aggTrade id equal to a trade id is no duplicate: they are separate id spaces."""
    trade = _of(SPOT, "@trade")[0]
    d = json.loads(trade.text)["data"]
    agg = {
        "e": "aggTrade", "E": d["E"], "s": d["s"], "a": d["t"], "p": d["p"], "q": d["q"],
        "f": d["t"], "l": d["t"], "T": d["T"], "m": d["m"], "M": True,
    }  # fmt: skip
    text = json.dumps({"stream": "btcusdt@aggTrade", "data": agg}, separators=(",", ":"))
    frames = [trade, Frame(channel=CH_BINANCE_SPOT_WS, recv_ns=trade.recv_ns + 1, text=text)]
    assert _quality_by_stream(frames, "binance.spot.trade") == [0, 0]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_checker_never_raises_whatever_a_row_holds(data: st.DataObject) -> None:
    """A field of any value or type, any frame text, any channel: a bitmask, never an error."""
    stream = data.draw(st.sampled_from([s for s in STREAM_IDS if s != STATUS_STREAM]))
    ev = make_event(stream, 10**18, exch_ns=data.draw(st.none() | st.integers()))
    name = data.draw(st.sampled_from(sorted(ev.fields)))
    value = data.draw(
        st.none()
        | st.floats()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.text(max_size=5)
        | st.lists(st.floats(), max_size=3)
    )
    ev = replace(ev, fields={**ev.fields, name: value})
    text = data.draw(st.sampled_from(['{"stream":"', '{"stream":"!x', ""]) | st.text(max_size=30))
    frame = Frame(channel=data.draw(st.sampled_from(CHANNELS)), recv_ns=10**18, text=text)
    (out,) = QualityChecker().check(frame, [ev])
    assert 0 <= out.quality < 1 << 16
