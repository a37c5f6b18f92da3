"""Fuzz: whatever a frame holds, parse -> write -> read -> write-ahead log -> recover never
raises and never loses a row.

Real-format frames of every channel (tests/data/frames) are mutated: a value replaced by a
number at or beyond a column's limits (int64 and int32 bounds, 2**64, inf, nan, 1e309, -0),
odd text (lone surrogates as JSON escapes or as raw characters, NUL, BOM, RTL marks, astral
characters), a huge or deeply nested array, a value of the wrong type, a member deleted, or
the text cut short. Each hypothesis example pushes a batch of such frames through the whole
path and checks:

- parsing never raises, and every event it returns can be stored (the writer never has to
  salvage a row); a frame turned into a whole-frame parse_error yields only that row;
- every event is read back from Parquet with its seq, stream, key, raw text and fields;
- the same frames logged to a write-ahead segment (as the recorder logs them) and recovered
  give exactly the same rows, with the same seqs.

The fast suite runs a few hundred frames; the slow one over 100,000.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyrl.events import (
    CH_BINANCE_FUTURES_OI,
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_KLINES,
    CH_BINANCE_SPOT_WS,
    CH_POLYBOLT_WS,
    CH_POLYMARKET_CLOB_BOOK,
    CH_POLYMARKET_CLOB_MARKET,
    CH_POLYMARKET_GAMMA,
    CH_POLYMARKET_WS,
    CH_RECORDER,
    CH_RTDS_WS,
    NS_PER_S,
    STATUS_STREAM,
    Event,
    Frame,
    iso_to_ns,
)
from polyrl.recording.reader import RecordingReader
from polyrl.recording.recovery import recover
from polyrl.recording.schema import STORAGE_PLANS
from polyrl.recording.wal import SegmentHeader, WalSegment, wal_dir
from polyrl.recording.writer import RecordingConfig, RecordingWriter
from polyrl.sources.parse import Parser, status_frame
from polyrl.sources.storable import first_unstorable

FRAMES = Path(__file__).resolve().parents[2] / "data" / "frames"
CFG = RecordingConfig(fsync=False, compression="none")
T0 = iso_to_ns("2024-06-01T10:00:00Z")

_BINANCE = {
    "spot_ws_": CH_BINANCE_SPOT_WS,
    "futures_ws_": CH_BINANCE_FUTURES_WS,
    "rest_klines_": CH_BINANCE_SPOT_KLINES,
    "rest_open_interest": CH_BINANCE_FUTURES_OI,
}
_POLYMARKET = {
    "clob_ws": CH_POLYMARKET_WS,
    "book_sequence": CH_POLYMARKET_WS,
    "clob_book": CH_POLYMARKET_CLOB_BOOK,
    "clob_market": CH_POLYMARKET_CLOB_MARKET,
    "gamma": CH_POLYMARKET_GAMMA,
    "rtds": CH_RTDS_WS,
}


def _texts(path: Path) -> list[str]:
    if path.suffix == ".jsonl":
        return [line for line in path.read_text().splitlines() if line.strip()]
    return [path.read_text()]


def _corpus() -> list[tuple[str, str, dict[str, str]]]:
    """(channel, text, request) of every real-format frame fixture, and recorder statuses."""
    out: list[tuple[str, str, dict[str, str]]] = []
    for path in sorted((FRAMES / "binance").glob("*.json*")):
        (channel,) = [c for p, c in _BINANCE.items() if path.name.startswith(p)]
        req = {"symbol": "BTCUSDT"} if channel == CH_BINANCE_SPOT_KLINES else {}
        out += [(channel, t, req) for t in _texts(path)]
    for d, channel in _POLYMARKET.items():
        for path in sorted((FRAMES / "polymarket" / d).iterdir()):
            if ".expected." not in path.name:
                out += [(channel, t, {}) for t in _texts(path)]
                if path.name.startswith("polybolt_"):  # PolyBolt has its own channel too
                    out += [(CH_POLYBOLT_WS, t, {}) for t in _texts(path)]
    for kind in ("gap", "connect", "parse_error"):
        f = status_frame(kind, T0, channel=CH_BINANCE_SPOT_WS, message="m", gap_start_ns=1)
        out.append((CH_RECORDER, f.text, {}))
    return out


CORPUS = _corpus()
CHANNELS = {c for c, _, _ in CORPUS}


def test_the_corpus_covers_every_channel() -> None:
    from polyrl.events import CHANNELS as ALL

    assert CHANNELS == set(ALL)
    assert len(CORPUS) > 100


# -- mutations --------------------------------------------------------------------------------


class _Lit:
    """A JSON token written as is (``1e309``, ``-0``, a deep array): json.dumps cannot."""

    def __init__(self, text: str) -> None:
        self.text = text


_BIG_INTS = [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 2**31, -(2**31) - 1, 10**30]
_NUMBERS: list[Any] = [
    *_BIG_INTS,
    1180591620717411303424,
    *[str(v) for v in _BIG_INTS],  # millisecond times and decimals are sent as strings
    "1180591620717411303424",
    math.inf,
    -math.inf,
    math.nan,
    _Lit("1e309"),
    _Lit("-1e309"),
    _Lit("-0"),
    -0.0,
    5e-324,
    "NaN",
    "Infinity",
    "1e309",
    "-0",
    "",
    0,
    -1,
]
_TEXTS: list[Any] = [
    "\ud800",
    "BTC\udfffUSDT",
    "\x00",
    "\ufeffBTCUSDT",
    "\u202eTDSUCTB",
    "\U0001d518\U0001f600",
    "é" * 3,
    "x" * 5000,
]
_SHAPES: list[Any] = [
    None,
    True,
    {},
    [],
    {"a": [1, {"b": None}]},
    [[1, 2]],
    [["1", "2", "3"]],
    [[None, None]],
    [1.5] * 1000,
    [["0.5", "1"]] * 500,
    _Lit("[" * 3000 + "]" * 3000),
    _Lit("[" * 100_000 + "]" * 100_000),
]


def _dumps(obj: Any, ensure_ascii: bool) -> str:
    lits: list[str] = []

    def swap(o: Any) -> Any:
        if isinstance(o, _Lit):
            lits.append(o.text)
            return f"\x01LIT{len(lits) - 1}\x01"
        if isinstance(o, dict):
            return {k: swap(v) for k, v in o.items()}
        if isinstance(o, list):
            return [swap(v) for v in o]
        return o

    text = json.dumps(swap(obj), ensure_ascii=ensure_ascii, separators=(",", ":"))
    for i, lit in enumerate(lits):
        text = text.replace(f'"\\u0001LIT{i}\\u0001"', lit).replace(f'"\x01LIT{i}\x01"', lit)
    return text


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside ``obj`` (the root itself included)."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:50]):
            yield from _paths(v, (*prefix, i))


def _replace(obj: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        out = dict(obj)
        if delete and not rest:
            out.pop(head, None)
        else:
            out[head] = _replace(obj[head], rest, value, delete)
        return out
    out_l = list(obj)
    if delete and not rest:
        del out_l[head]
    else:
        out_l[head] = _replace(obj[head], rest, value, delete)
    return out_l


def _parsed(text: str) -> tuple[Any, list[tuple[Any, ...]]] | None:
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj, list(_paths(obj))


_PARSED = [_parsed(t) for _, t, _ in CORPUS]
# Strategies built once: hypothesis labels a sampled_from by hashing its values.
_BASE = st.integers(0, len(CORPUS) - 1)
_HOW = st.sampled_from(["value", "value", "value", "delete", "truncate", "raw", "none"])
_VALUE = st.sampled_from(_NUMBERS + _TEXTS + _SHAPES)
_CHAR = st.sampled_from(["\ud800", "\udc00", "\x00", "\ufeff", "\U0001f600", '"', "\\"])


@st.composite
def mutated_frame(draw: st.DrawFn) -> tuple[str, str, dict[str, str]]:
    """A corpus frame with one mutation (see the module doc)."""
    k = draw(_BASE)
    channel, text, req = CORPUS[k]
    how = draw(_HOW)
    parsed = _PARSED[k]
    if how == "none":
        return channel, text, req
    if how == "truncate":
        return channel, text[: draw(st.integers(0, max(len(text) - 1, 0)))], req
    if how == "raw" or parsed is None:  # a character in the text itself (a lone surrogate)
        i = draw(st.integers(0, len(text)))
        return channel, text[:i] + draw(_CHAR) + text[i:], req
    obj, paths = parsed
    path = paths[draw(st.integers(0, len(paths) - 1))]
    obj = _replace(obj, path, draw(_VALUE), delete=how == "delete" and bool(path))
    return channel, _dumps(obj, ensure_ascii=draw(st.booleans())), req


# -- the property -----------------------------------------------------------------------------


def _fields_text(fields: Any) -> str:
    return repr(sorted(fields.items()))  # repr: nan equals nan, -0.0 differs from 0.0


def _stored(root: Path) -> dict[int, tuple[str, str, str, str]]:
    """seq -> (stream, key, raw, fields as JSON) of every row under ``root``."""
    out: dict[int, tuple[str, str, str, str]] = {}
    if not any(root.glob("*/date=*/hour=*/*.parquet")):
        # Frames that give no row at all (e.g. a CLOB market answer for a window not yet
        # resolved: nothing to record until the poller asks again) leave no partition.
        return out
    for ev in RecordingReader(root, raw=True).events():
        out[ev.seq] = (ev.stream, ev.key, ev.raw, _fields_text(ev.fields))
    return out


def check_batch(frames: list[Frame], work: Path) -> int:
    """parse -> write -> read, and WAL -> recover, for one batch; returns rows checked."""
    parser = Parser(storage=STORAGE_PLANS)
    expected: dict[int, tuple[str, str, str, str]] = {}
    direct, logged = work / "direct", work / "logged"
    segment = WalSegment(wal_dir(logged) / "segment-0000000000000000.wal", SegmentHeader(0, {}))
    seq = 0
    with RecordingWriter(direct, config=CFG, start_seq=0) as writer:
        for frame in frames:
            segment.append(frame, seq)
            events: list[Event] = parser.parse(frame)
            assert first_unstorable(events, STORAGE_PLANS) is None, frame.text[:200]
            whole = [
                e for e in events if e.stream == STATUS_STREAM and e.fields["kind"] == "parse_error"
            ]
            if any(e.raw in (frame.text, json.dumps(frame.text)) for e in whole):
                assert len(events) == 1  # a whole-frame error is the frame's only row
            for ev in events:
                assert writer.append(ev) == seq
                expected[seq] = (ev.stream, ev.key, ev.raw, _fields_text(ev.fields))
                seq += 1
    segment.close(delete=False)
    assert _stored(direct) == expected  # nothing salvaged, nothing lost, all readable
    report = recover(logged, CFG)
    assert report.quarantined == [] and report.frames == len(frames)
    assert _stored(logged) == expected  # the same rows with the same seqs after recovery
    return len(expected)


# A memory file system where there is one: a batch writes a few dozen partition directories.
_SCRATCH = "/dev/shm" if Path("/dev/shm").is_dir() else None


def _frames(drawn: list[tuple[str, str, dict[str, str]]]) -> list[Frame]:
    return [
        Frame(channel=c, recv_ns=T0 + i * NS_PER_S // 10, text=t, request=r)
        for i, (c, t, r) in enumerate(drawn)
    ]


_SLOW_EXAMPLES = 260
_SLOW_BATCH = 400


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(mutated_frame(), min_size=1, max_size=60))
def test_any_frame_is_recorded_or_a_parse_error_and_nothing_is_lost(
    drawn: list[tuple[str, str, dict[str, str]]],
) -> None:
    with tempfile.TemporaryDirectory(dir=_SCRATCH) as d:
        check_batch(_frames(drawn), Path(d))


_SLOW_COUNT = {"frames": 0, "rows": 0, "t0": 0.0}


@settings(
    max_examples=_SLOW_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(mutated_frame(), min_size=_SLOW_BATCH, max_size=_SLOW_BATCH))
def _fuzz_slow(drawn: list[tuple[str, str, dict[str, str]]]) -> None:
    with tempfile.TemporaryDirectory(dir=_SCRATCH) as d:
        _SLOW_COUNT["rows"] += check_batch(_frames(drawn), Path(d))
    _SLOW_COUNT["frames"] += len(drawn)


@pytest.mark.slow
def test_fuzz_at_least_100k_frames() -> None:
    t0 = time.perf_counter()
    _fuzz_slow()
    took = time.perf_counter() - t0
    print(f"fuzz: {_SLOW_COUNT['frames']:,} frames, {_SLOW_COUNT['rows']:,} rows in {took:.1f} s")
    assert _SLOW_COUNT["frames"] >= 100_000
