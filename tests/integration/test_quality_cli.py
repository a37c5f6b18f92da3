"""Quality flags end to end: real frames with defects, left in a killed recorder's write-ahead
log, recovered into Parquet; ``polyrl inspect`` counts them and ``polyrl schema`` names the
bits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyrl.events import CH_BINANCE_SPOT_WS, CH_RECORDER, Frame
from polyrl.recording.recovery import recover
from polyrl.recording.wal import SegmentHeader, WalSegment, wal_dir
from polyrl.recording.writer import RecordingConfig
from polyrl.sources.parse import status_frame
from polyrl.sources.quality.flags import FLAGS

from .conftest import REPO, run_cli

pytestmark = pytest.mark.integration

CAPTURE = REPO / "tests" / "data" / "frames" / "quality" / "binance_spot_btcusdt_2024-08-08.txt"


def _frames() -> list[Frame]:
    out = []
    for line in CAPTURE.read_text().splitlines():
        t, _, text = line.partition(" ")
        out.append(Frame(channel=CH_BINANCE_SPOT_WS, recv_ns=int(t), text=text))
    return out


def _with(frame: Frame, **data: object) -> Frame:
    d = json.loads(frame.text)
    d["data"].update(data)
    return Frame(channel=frame.channel, recv_ns=frame.recv_ns, text=json.dumps(d))


def test_recovered_defects_are_flagged_and_counted_by_inspect(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    frames = _frames()
    trades = [i for i, f in enumerate(frames) if "@trade" in f.text[:40]]
    diffs = [i for i, f in enumerate(frames) if "@depth" in f.text[:40]]
    frames[trades[0]] = _with(frames[trades[0]], E=0)  # 1970
    frames[trades[1]] = _with(frames[trades[1]], p="-1")
    frames[diffs[2]] = _with(frames[diffs[2]], U=json.loads(frames[diffs[2]].text)["data"]["u"] + 1)
    del frames[diffs[6]]  # a lost diff: the next one breaks the sequence
    frames.append(frames[trades[4]])  # a trade resent
    t0 = frames[0].recv_ns - 1
    seg = WalSegment(wal_dir(root) / "segment-0000000000000000.wal", SegmentHeader(0, {}))
    seg.append(status_frame("start", t0, channel=CH_RECORDER))
    seg.append(status_frame("connect", t0, channel=CH_BINANCE_SPOT_WS))
    for f in frames:
        seg.append(f)
    seg.close(delete=False)  # as a kill -9 leaves it
    report = recover(root, RecordingConfig(fsync=False))
    assert report.rows_written == len(frames) + 2

    res = run_cli("inspect", str(root), "--json")
    assert res.returncode == 0, res.stderr
    flagged = {f["stream"]: f for f in json.loads(res.stdout)["flagged"]}
    assert set(flagged) == {"binance.spot.trade", "binance.spot.depth"}
    assert flagged["binance.spot.trade"]["by_flag"] == {
        "bad_value": 1,
        "bad_time": 1,
        "duplicate": 1,
    }
    # The diff with U > u does not follow its predecessor either; the lost diff breaks the
    # chain once more at the diff after it.
    assert flagged["binance.spot.depth"]["rows"] == 2
    assert flagged["binance.spot.depth"]["by_flag"] == {"depth_ids": 1, "seq_gap": 2}
    text = run_cli("inspect", str(root)).stdout
    assert "flagged rows (quality)" in text and "duplicate 1" in text

    res = run_cli("schema", "binance.spot.depth", "--json")
    got = json.loads(res.stdout)
    assert "quality" in [c["name"] for c in got["columns"]]
    assert [f["name"] for f in got["quality_flags"]] == [f.name for f in FLAGS]
    listing = run_cli("schema").stdout
    assert all(f.name in listing for f in FLAGS)
