"""The write-ahead log: frames come back exactly; a torn or corrupt tail is dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from polyrl.errors import RecordingError
from polyrl.events import CH_BINANCE_SPOT_KLINES, CH_POLYMARKET_WS, Frame
from polyrl.recording.wal import SegmentHeader, WalSegment, read_segment, segment_paths, wal_dir

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
    from polyrl.recording.recorder import recover
    from polyrl.recording.writer import RecordingConfig

    report = recover(tmp_path, RecordingConfig(fsync=False))
    assert report.segments == 1 and report.frames == 0 and not path.exists()
