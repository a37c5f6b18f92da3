"""The ``quality`` column: stored with every row, read as 0 from files older than it, counted
per stream and flag by ``inspect``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq

from polyrl.events import CH_BINANCE_SPOT_WS, NS_PER_S, Frame, iso_to_ns
from polyrl.recording.inspect import format_report, inspect_recording
from polyrl.recording.reader import RecordingReader, read_file
from polyrl.recording.writer import (
    RecordingConfig,
    RecordingWriter,
    compact_partition,
    partition_dir,
    recording_files,
)
from polyrl.sources.parse import Parser
from polyrl.sources.quality.flags import BAD_TIME, BAD_VALUE, DUPLICATE, SYMBOL
from polyrl.testing.factories import make_event

FAST = RecordingConfig(fsync=False)
T0 = iso_to_ns("2024-08-08T23:00:00Z")
CAPTURE = Path(__file__).resolve().parents[2] / "data" / "frames" / "quality"


def _spot_frames() -> list[Frame]:
    out = []
    for line in (CAPTURE / "binance_spot_btcusdt_2024-08-08.txt").read_text().splitlines():
        t, _, text = line.partition(" ")
        out.append(Frame(channel=CH_BINANCE_SPOT_WS, recv_ns=int(t), text=text))
    return out


def _edit(frame: Frame, **data: object) -> Frame:
    d = json.loads(frame.text)
    d["data"].update(data)
    # Indented on purpose: the combined-stream name is found whatever the whitespace.
    return Frame(channel=frame.channel, recv_ns=frame.recv_ns, text=json.dumps(d, indent=1))


def _record_with_defects(root: Path) -> dict[str, int]:
    """The real spot capture through Parser and writer, with three trades made defective
    and one resent; returns the expected flagged-row counts per flag name."""
    frames = _spot_frames()
    trades = [i for i, f in enumerate(frames) if "@trade" in f.text[:40]]
    frames[trades[1]] = _edit(frames[trades[1]], p="-1")
    frames[trades[2]] = _edit(frames[trades[2]], E=0)
    frames[trades[3]] = _edit(frames[trades[3]], s="ETHUSDT", p="0")
    frames.append(frames[trades[5]])  # the same trade id again
    parser = Parser()
    with RecordingWriter(root, config=FAST, start_seq=0) as w:
        for f in frames:
            for ev in parser.parse(f):
                w.append(ev)
    return {"bad_value": 2, "bad_time": 1, "symbol": 1, "duplicate": 1}


def test_flags_survive_parquet_and_come_back_on_events(tmp_path: Path) -> None:
    _record_with_defects(tmp_path)
    df = RecordingReader(tmp_path, streams=["binance.spot.trade"]).read_stream("binance.spot.trade")
    assert df.schema["quality"].is_integer()
    assert sorted(q for q in df["quality"].to_list() if q) == sorted(
        [BAD_VALUE, BAD_TIME, SYMBOL | BAD_VALUE, DUPLICATE]
    )
    assert (df["quality"] == 0).sum() == df.height - 4
    evs = [e for e in RecordingReader(tmp_path).events() if e.stream == "binance.spot.trade"]
    assert [e.quality for e in evs] == df["quality"].to_list()
    # Other streams of the same capture: all clean.
    for e in RecordingReader(tmp_path).events():
        if e.stream != "binance.spot.trade":
            assert e.quality == 0


def _old_file(root: Path, stream: str, events: list) -> Path:  # type: ignore[type-arg]
    """Write ``events`` as a file of the schema before ``quality`` existed."""
    with RecordingWriter(root, config=FAST) as w:
        for e in events:
            w.append(e)
    (path,) = [p for p in recording_files(root) if p.parts[-4] == stream]
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["quality"]), path)
    assert "quality" not in pq.read_schema(path).names
    return path


def test_files_written_before_the_column_existed_read_it_as_zero(tmp_path: Path) -> None:
    stream = "binance.spot.trade"
    old = _old_file(tmp_path, stream, [make_event(stream, T0 + i, i=i) for i in range(3)])
    t = read_file(old, stream, None)
    assert t.column("quality").to_pylist() == [0, 0, 0]
    assert read_file(old, stream, ["recv_ns", "quality"]).column("quality").to_pylist() == [0] * 3
    # A newer part in the same partition, with a flag; then both compacted into one file.
    with RecordingWriter(tmp_path, config=FAST) as w:
        w.append(replace(make_event(stream, T0 + 10, i=9), quality=DUPLICATE))
    evs = list(RecordingReader(tmp_path).events())
    assert [e.quality for e in evs] == [0, 0, 0, DUPLICATE]
    d = partition_dir(tmp_path, stream, "2024-08-08", 23)
    merged = compact_partition(d, stream, FAST)
    assert merged is not None
    assert pq.read_table(merged).column("quality").to_pylist() == [0, 0, 0, DUPLICATE]
    (flagged,) = inspect_recording(tmp_path).flagged
    assert (flagged.stream, flagged.rows, flagged.by_flag) == (stream, 1, {"duplicate": 1})


def test_inspect_counts_flagged_rows_per_stream_and_flag(tmp_path: Path) -> None:
    expected = _record_with_defects(tmp_path)
    report = inspect_recording(tmp_path)
    (trades,) = report.flagged
    assert trades.stream == "binance.spot.trade"
    assert trades.rows == 4  # one row carries two flags
    assert trades.by_flag == expected
    as_json = json.loads(report.to_json())
    assert as_json["flagged"] == [{"stream": "binance.spot.trade", "rows": 4, "by_flag": expected}]
    text = format_report(report)
    assert "flagged rows (quality)" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("binance.spot.trade") and "," in ln)
    assert "bad_value 2" in line and "duplicate 1" in line and "symbol 1" in line


def test_inspect_says_when_every_row_is_clean(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path, config=FAST) as w:
        for i in range(3):
            w.append(make_event("binance.spot.trade", T0 + i * NS_PER_S, i=i))
    report = inspect_recording(tmp_path)
    assert report.flagged == []
    assert "quality flags: none" in format_report(report)
