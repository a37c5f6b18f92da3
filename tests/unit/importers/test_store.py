"""The import store: deterministic seq, rows by receive hour, idempotent, never mixed."""

from __future__ import annotations

import pyarrow as pa
import pytest

from polyrl.errors import RecordingError
from polyrl.events import NS_PER_S
from polyrl.importers.store import Gap, Unit, seq_base, unit_done, write_unit
from polyrl.recording.reader import RecordingReader
from polyrl.recording.schema import ARROW_SCHEMAS
from polyrl.recording.writer import RecordingWriter
from polyrl.testing.factories import make_event

T0 = 1_777_593_600 * NS_PER_S  # 2026-05-01T00:00Z
ENTRY = {"kind": "imported", "by": "test", "source": "binance"}


def _table(stream: str, recvs: list[int]) -> pa.Table:
    evs = [make_event(stream, r, i=i) for i, r in enumerate(recvs)]
    schema = ARROW_SCHEMAS[stream]
    cols = {f.name: [] for f in schema if f.name != "seq"}
    for e in evs:
        cols["recv_ns"].append(e.recv_ns)
        cols["exch_ns"].append(e.exch_ns)
        cols["key"].append(e.key)
        cols["asset"].append(e.asset)
        cols["quality"].append(0)
        cols["raw"].append(e.raw)
        for k, v in e.fields.items():
            cols[k].append(v)
    return pa.table(cols, schema=schema.remove(schema.get_field_index("seq")))


def _unit(**kw) -> Unit:
    recvs = [T0 + 5, T0 + 1, T0 + 3600 * NS_PER_S + 7]  # the last lands in hour 01
    base = dict(
        source="binance",
        date="2026-05-01",
        hour=None,
        tables={
            "binance.spot.trade": _table("binance.spot.trade", recvs),
            "binance.futures.trade": _table("binance.futures.trade", [T0 + 1, T0 + 2]),
        },
        objects=[{"file": "BTCUSDT-aggTrades-2026-05-01.zip", "sha256": "ab" * 32, "bytes": 10}],
        gaps=[Gap(T0 + 7200 * NS_PER_S, T0 + 10800 * NS_PER_S, "hour missing")],
    )
    base.update(kw)
    return Unit(**base)


def test_rows_sequenced_by_receive_time_and_split_by_hour(tmp_path):
    res = write_unit(tmp_path, _unit(), entry=ENTRY)
    names = sorted(str(p.relative_to(tmp_path)) for p in res.files)
    assert "binance.spot.trade/date=2026-05-01/hour=01/import-binance-2026-05-01.parquet" in names
    df = RecordingReader(tmp_path, dates="2026-05-01").read_stream("binance.spot.trade")
    assert df["recv_ns"].to_list() == [T0 + 1, T0 + 5, T0 + 3600 * NS_PER_S + 7]
    seqs = df["seq"].to_list()
    assert seqs == sorted(seqs) and seqs[0] >= seq_base(_unit())
    st = RecordingReader(tmp_path, dates="2026-05-01").read_stream("recorder.status")
    assert sorted(st["kind"].to_list()) == ["gap", "import"]
    assert unit_done(tmp_path, _unit())["rows"]["binance.spot.trade"] == 3


def test_import_twice_gives_identical_files(tmp_path):
    a = write_unit(tmp_path, _unit(), entry=ENTRY)
    first = {p: p.read_bytes() for p in a.files}
    b = write_unit(tmp_path, _unit(), entry=ENTRY)
    assert {p: p.read_bytes() for p in b.files} == first


def test_rewrite_with_other_delay_removes_files_no_longer_written(tmp_path):
    write_unit(tmp_path, _unit(), entry=ENTRY)
    moved = _unit(tables={"binance.spot.trade": _table("binance.spot.trade", [T0 + 9])})
    res = write_unit(tmp_path, moved, entry=ENTRY)
    assert any("hour=01" in str(p) for p in res.removed)
    df = RecordingReader(tmp_path, dates="2026-05-01").read_stream("binance.spot.trade")
    assert df["recv_ns"].to_list() == [T0 + 9]


def test_refuses_to_mix_with_recorded_rows_unless_asked(tmp_path):
    with RecordingWriter(tmp_path) as w:
        w.append(make_event("binance.spot.trade", T0 + 100))
    with pytest.raises(RecordingError, match="binance.spot.trade date=2026-05-01 hour=00"):
        write_unit(tmp_path, _unit(), entry=ENTRY)
    assert unit_done(tmp_path, _unit()) is None
    write_unit(tmp_path, _unit(), entry=ENTRY, allow_mixed=True)
    df = RecordingReader(tmp_path, dates="2026-05-01").read_stream("binance.spot.trade")
    assert len(df) == 4 and df["seq"].n_unique() == 4


def test_inspect_says_per_day_and_stream_what_was_recorded_and_imported(tmp_path):
    from polyrl.importers.store import import_entry
    from polyrl.recording.inspect import format_report, inspect_recording
    from polyrl.recording.provenance import note_day

    with RecordingWriter(tmp_path) as w:
        w.append(make_event("binance.futures.mark", T0 + 100))
    note_day(tmp_path, "2026-05-01", {"kind": "recorded", "by": "polyrl record"})
    entry = import_entry("binance", "https://data.binance.vision", delay_ms=20)
    write_unit(tmp_path, _unit(), entry=entry)
    report = inspect_recording(tmp_path)
    by = {(o.date, o.stream): o for o in report.origins}
    assert by[("2026-05-01", "binance.spot.trade")].imported_hours == {"binance": 2}
    assert by[("2026-05-01", "binance.spot.trade")].written_hours == 0
    assert by[("2026-05-01", "binance.futures.mark")].written_hours == 1
    text = format_report(report)
    assert "binance.spot.trade" in text
    line = next(x for x in text.splitlines() if "2026-05-01  binance.spot.trade" in x)
    assert "imported (binance) from data.binance.vision, 2 h" in line
    line = next(x for x in text.splitlines() if "2026-05-01  binance.futures.mark" in x)
    assert line.rstrip().endswith("recorded, 1 h")
    assert '"origins"' in report.to_json()
