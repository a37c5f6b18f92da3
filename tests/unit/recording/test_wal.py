"""The write-ahead log: frames come back exactly; damaged bytes are quarantined verbatim and
recovery goes on past them."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from polyrl.errors import RecordingError
from polyrl.events import CH_BINANCE_SPOT_KLINES, CH_BINANCE_SPOT_WS, CH_POLYMARKET_WS, Frame
from polyrl.recording.reader import RecordingReader
from polyrl.recording.recovery import recover
from polyrl.recording.wal import (
    MARK,
    Record,
    SegmentHeader,
    WalSegment,
    quarantine_dir,
    read_segment,
    scan_segment,
    segment_paths,
    wal_dir,
)
from polyrl.recording.writer import RecordingConfig

FRAMES = [
    Frame(channel=CH_POLYMARKET_WS, recv_ns=1_717_200_000_000_000_001, text='{"a":"é\\n"}'),
    Frame(channel=CH_POLYMARKET_WS, recv_ns=1_717_200_000_000_000_002, text="PONG"),
    Frame(
        channel=CH_BINANCE_SPOT_KLINES,
        recv_ns=1_717_200_000_000_000_003,
        text='[[1,"2"]]\n',
        request={"symbol": "BTCUSDT"},
    ),
]


def _write(root: Path) -> Path:
    seg = WalSegment(
        wal_dir(root) / "segment-0000000000000042.wal",
        SegmentHeader(start_seq=42, tokens={"123": ("btc", "Up")}),
    )
    for f in FRAMES:
        seg.append(f)
    seg.flush(fsync=True)
    seg.close(delete=False)
    return seg.path


def test_round_trip(tmp_path: Path) -> None:
    path = _write(tmp_path)
    assert segment_paths(tmp_path) == [path]
    header, frames = read_segment(path)
    assert header.start_seq == 42
    assert dict(header.tokens) == {"123": ("btc", "Up")}
    assert list(frames) == FRAMES


@pytest.mark.parametrize("cut", [1, 5, 9, 20])
def test_torn_tail_is_dropped(tmp_path: Path, cut: int) -> None:
    path = _write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    _, frames = read_segment(path)
    assert list(frames) == FRAMES[:2]


def test_corrupt_record_ends_the_segment(tmp_path: Path) -> None:
    path = _write(tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip a byte inside the last record's text
    path.write_bytes(bytes(data))
    _, frames = read_segment(path)
    assert list(frames) == FRAMES[:2]


def test_not_a_segment_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "x.wal"
    bad.write_bytes(b"hello")
    with pytest.raises(RecordingError, match=str(bad)):
        read_segment(bad)


def test_close_delete_removes_file(tmp_path: Path) -> None:
    seg = WalSegment(tmp_path / ".wal" / "segment-1.wal", SegmentHeader(start_seq=1, tokens={}))
    seg.append(FRAMES[0])
    seg.close(delete=True)
    assert not seg.path.exists()


@pytest.mark.parametrize("keep", [0, 3, len(b"POLYRL-WAL-1\n") + 2, len(b"POLYRL-WAL-1\n") + 10])
def test_a_segment_cut_inside_its_header_holds_nothing(tmp_path: Path, keep: int) -> None:
    """kill -9 while a segment is being created leaves it short: no frames, no error."""
    path = _write(tmp_path)
    path.write_bytes(path.read_bytes()[:keep])
    header, frames = read_segment(path)
    assert header is None and list(frames) == []
    from polyrl.recording.recovery import recover
    from polyrl.recording.writer import RecordingConfig

    report = recover(tmp_path, RecordingConfig(fsync=False))
    assert report.segments == 1 and report.frames == 0 and not path.exists()


# -- damage never stops a recovery ------------------------------------------------------------


def _crashed_recording(root: Path, n: int = 9) -> list[str]:
    """A recorder that logged ``n`` aggTrade frames (seq 0..n-1 after a start row) and died
    before any checkpoint: its one segment holds them all. Returns the frame texts."""
    from polyrl.clock import LiveClock
    from polyrl.recording.recorder import Recorder

    from .test_recorder import agg_trade

    rec = Recorder(root, config=RecordingConfig(fsync=False), clock=LiveClock())
    texts = [agg_trade(i) for i in range(n)]
    for t in texts:
        rec.emit(Frame(channel=CH_BINANCE_SPOT_WS, recv_ns=rec.clock.now_ns(), text=t))
    rec._segment.flush()  # what the periodic WAL flush does; then the process dies
    return texts


def _record_spans(path: Path) -> list[tuple[int, int]]:
    data = path.read_bytes()
    starts = []
    p = data.find(MARK)
    while p >= 0:
        starts.append(p)
        p = data.find(MARK, p + 1)
    return list(zip(starts, [*starts[1:], len(data)], strict=True))


def _recovered(root: Path) -> tuple[list[int], list[int], pl.DataFrame]:
    r = RecordingReader(root, raw=True)
    trades = r.read_stream("binance.spot.trade")
    status = r.read_stream("recorder.status")
    return trades["trade_id"].to_list(), trades["seq"].to_list(), status


@pytest.mark.parametrize("where", ["text", "length"])
def test_a_corrupt_record_in_the_middle_is_quarantined_and_recovery_goes_on(
    tmp_path: Path, where: str
) -> None:
    _crashed_recording(tmp_path)
    (seg,) = segment_paths(tmp_path)
    spans = _record_spans(seg)
    assert len(spans) == 9
    a, b = spans[4]
    data = bytearray(seg.read_bytes())
    if where == "text":
        data[b - 10] ^= 0x20  # a flipped bit inside frame 4's text: its checksum fails
    else:
        data[a + 4 : a + 8] = (10**9).to_bytes(4, "little")  # a length running past the end
    seg.write_bytes(bytes(data))
    report = recover(tmp_path, RecordingConfig(fsync=False))
    # The frames after the damaged one are recovered, with the seq they had live.
    ids, seqs, status = _recovered(tmp_path)
    assert ids == [0, 1, 2, 3, 5, 6, 7, 8]
    assert seqs == [0, 1, 2, 3, 5, 6, 7, 8]
    # The damaged record is kept byte for byte and named in a status row.
    (q,) = report.quarantined
    assert q.path.parent == quarantine_dir(tmp_path)
    assert q.path.read_bytes() == bytes(data[a:b])
    assert (q.offset, q.size) == (a, b - a)
    row = status.filter(pl.col("kind") == "quarantine").row(0, named=True)
    assert str(q.path) in row["message"] and "corrupt" in row["message"]
    assert row["seq"] > max(seqs)
    assert segment_paths(tmp_path) == []


def test_a_torn_tail_is_quarantined(tmp_path: Path) -> None:
    _crashed_recording(tmp_path, n=3)
    (seg,) = segment_paths(tmp_path)
    a, _ = _record_spans(seg)[2]
    data = seg.read_bytes()
    seg.write_bytes(data[:-7])
    report = recover(tmp_path, RecordingConfig(fsync=False))
    assert _recovered(tmp_path)[0] == [0, 1]
    (q,) = report.quarantined
    assert q.path.read_bytes() == data[a:-7] and "cut short" in q.reason


def test_a_file_that_is_not_a_segment_is_quarantined_whole(tmp_path: Path) -> None:
    texts = _crashed_recording(tmp_path, n=4)
    junk = wal_dir(tmp_path) / "segment-junk.wal"
    junk.write_bytes(b"\x00garbage\xff" * 3)
    report = recover(tmp_path, RecordingConfig(fsync=False))
    assert _recovered(tmp_path)[0] == list(range(len(texts)))
    (q,) = report.quarantined
    assert q.path.read_bytes() == b"\x00garbage\xff" * 3 and q.offset == 0
    assert "not a polyrl write-ahead log segment" in q.reason
    assert segment_paths(tmp_path) == []


def test_text_utf8_cannot_encode_survives_the_wal(tmp_path: Path) -> None:
    """A frame whose text holds a lone surrogate is logged and read back exactly."""
    odd = Frame(channel=CH_POLYMARKET_WS, recv_ns=1_717_200_000_000_000_009, text='{"a":"\ud800"}')
    seg = WalSegment(wal_dir(tmp_path) / "segment-1.wal", SegmentHeader(start_seq=1, tokens={}))
    seg.append(odd, 7)
    seg.close(delete=False)
    scan = scan_segment(seg.path)
    assert scan.items == [Record(odd, 7)]


def test_a_segment_of_the_previous_layout_is_still_recovered(tmp_path: Path) -> None:
    """POLYRL-WAL-1 segments (no markers, no per-record seq) left by an older version."""
    import json
    import struct
    import zlib

    from .test_recorder import agg_trade

    head = json.dumps({"start_seq": 5, "tokens": {}}).encode()
    out = b"POLYRL-WAL-1\n" + struct.pack("<I", len(head)) + head
    for i in range(3):
        ch, text = CH_BINANCE_SPOT_WS.encode(), agg_trade(i).encode()
        body = struct.pack("<qHI", 1_717_200_000_000_000_000 + i, len(ch), 0) + ch + text
        out += struct.pack("<II", len(body), zlib.crc32(body)) + body
    path = wal_dir(tmp_path) / "segment-0000000000000005.wal"
    path.parent.mkdir(parents=True)
    path.write_bytes(out + b"\x01\x02")  # and a torn tail
    report = recover(tmp_path, RecordingConfig(fsync=False))
    ids, seqs, _ = _recovered(tmp_path)
    assert (ids, seqs) == ([0, 1, 2], [5, 6, 7])
    assert len(report.quarantined) == 1 and report.quarantined[0].path.read_bytes() == b"\x01\x02"
