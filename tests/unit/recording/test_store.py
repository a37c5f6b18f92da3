"""The Parquet store: layout, atomic files, seq, merge order, bounded reading, clear errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyrl.errors import RecordingError, SchemaMismatch
from polyrl.events import NS_PER_S, iso_to_ns
from polyrl.recording.reader import RecordingReader, list_partitions
from polyrl.recording.writer import (
    RecordingConfig,
    RecordingWriter,
    next_seq,
    recording_files,
)
from polyrl.testing.factories import make_event

T0 = iso_to_ns("2024-06-01T23:59:58Z")
FAST = RecordingConfig(fsync=False)


def _events():
    # Three streams, crossing midnight (a new date and hour partition).
    return [
        make_event("binance.spot.trade", T0 + 0, i=0),
        make_event("polymarket.trade", T0 + 5, key="tok1", asset="eth", i=1, exch_ns=T0),
        make_event("binance.spot.trade", T0 + 5, i=2),  # same recv_ns: seq breaks the tie
        make_event("binance.futures.open_interest", T0 + 3 * NS_PER_S, i=3),
        make_event("polymarket.trade", T0 + 4 * NS_PER_S, key="tok2", asset=None, i=4),
    ]


def test_round_trip_layout_and_order(tmp_path: Path) -> None:
    evs = _events()
    with RecordingWriter(tmp_path, config=FAST) as w:
        seqs = [w.append(e) for e in evs]
    assert seqs == [0, 1, 2, 3, 4]
    rel = sorted(str(p.relative_to(tmp_path)) for p in recording_files(tmp_path))
    assert rel == [
        "binance.futures.open_interest/date=2024-06-02/hour=00/part-0000000000000003.parquet",
        "binance.spot.trade/date=2024-06-01/hour=23/part-0000000000000000.parquet",
        "polymarket.trade/date=2024-06-01/hour=23/part-0000000000000001.parquet",
        "polymarket.trade/date=2024-06-02/hour=00/part-0000000000000004.parquet",
    ]
    md = pq.read_metadata(tmp_path / rel[1])
    assert md.row_group(0).column(0).compression == "ZSTD"
    got = list(RecordingReader(tmp_path, raw=True).events())
    assert [(e.stream, e.recv_ns, e.seq) for e in got] == [
        (e.stream, e.recv_ns, s) for e, s in zip(evs, seqs, strict=True)
    ]
    for a, b in zip(got, evs, strict=True):
        assert dict(a.fields) == dict(b.fields)
        assert (a.key, a.asset, a.exch_ns, a.raw) == (b.key, b.asset, b.exch_ns, b.raw)


def test_date_glob_and_stream_selection(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path, config=FAST) as w:
        w.extend(_events())
    r = RecordingReader(tmp_path, dates="2024-06-02")
    assert [e.seq for e in r.events()] == [3, 4]
    r = RecordingReader(tmp_path, dates=["2024-06-0*"], streams=["polymarket.trade"])
    assert [e.seq for e in r.events()] == [1, 4]
    assert r.hours() == [("2024-06-01", 23), ("2024-06-02", 0)]


def test_empty_glob_names_glob_and_root(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path, config=FAST) as w:
        w.extend(_events())
    with pytest.raises(RecordingError, match=r"2023-01-\*.*" + str(tmp_path)):
        RecordingReader(tmp_path, dates="2023-01-*")
    with pytest.raises(RecordingError, match="does not exist"):
        RecordingReader(tmp_path / "nope")


def test_hidden_temporaries_are_never_read(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path, config=FAST) as w:
        w.extend(_events())
    part = next(iter(recording_files(tmp_path))).parent
    (part / ".part-0000000000000099.parquet.tmp").write_bytes(b"PAR1 half written")
    assert len(list(RecordingReader(tmp_path).events())) == 5
    assert not any(p.name.startswith(".") for p in recording_files(tmp_path))


def test_seq_continues_after_restart(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path, config=FAST) as w:
        w.extend(_events())
    assert next_seq(tmp_path) == 5
    with RecordingWriter(tmp_path, config=FAST) as w:
        assert w.append(make_event("binance.spot.trade", T0 + 10 * NS_PER_S)) == 5
    assert [e.seq for e in RecordingReader(tmp_path).events()] == [0, 1, 2, 3, 4, 5]


def test_buffer_limit_writes_several_files_per_partition(tmp_path: Path) -> None:
    cfg = RecordingConfig(fsync=False, max_buffer_rows=3)
    with RecordingWriter(tmp_path, config=cfg) as w:
        for i in range(10):
            w.append(make_event("binance.spot.trade", T0 - 100 * NS_PER_S + i, i=i))
    files = recording_files(tmp_path)
    assert len(files) == 4
    assert [e.fields["trade_id"] for e in RecordingReader(tmp_path).events()] == [
        1000 + i for i in range(10)
    ]


def test_corrupt_file_is_named(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path, config=FAST) as w:
        w.extend(_events())
    victim = recording_files(tmp_path)[1]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingError, match=str(victim)):
        list(RecordingReader(tmp_path).events())


def test_schema_mismatch_names_stream_and_column(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path, config=FAST) as w:
        w.extend(_events())
    path = recording_files(tmp_path)[1]  # binance.spot.trade
    table = pq.read_table(path)
    bad = table.set_column(
        table.schema.get_field_index("price"),
        "price",
        pa.array(["x"] * table.num_rows, type=pa.string()),
    )
    pq.write_table(bad, path)
    with pytest.raises(SchemaMismatch, match=r"binance\.spot\.trade: column 'price' is string"):
        list(RecordingReader(tmp_path).events())


def test_grown_schema_reads_missing_nullable_column_as_null(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path, config=FAST) as w:
        w.append(make_event("binance.futures.trade", T0, qty_no_rpi=1.5))
    path = recording_files(tmp_path)[0]
    table = pq.read_table(path)
    pq.write_table(table.drop(["qty_no_rpi"]), path)  # as written before `nq` existed
    (ev,) = RecordingReader(tmp_path).events()
    assert ev.fields["qty_no_rpi"] is None
    assert ev.fields["price"] == 0.5
    table = pq.read_table(path)
    pq.write_table(table.drop(["price"]), path)  # a required column may never be missing
    with pytest.raises(SchemaMismatch, match="'price' missing"):
        list(RecordingReader(tmp_path).events())


def test_writer_names_bad_column(tmp_path: Path) -> None:
    """A row Arrow refuses becomes a parse_error status row naming the stream and column; the
    rows buffered with it are written."""
    w = RecordingWriter(tmp_path, config=FAST)
    good = [w.append(make_event("polymarket.trade", T0 + i, i=i)) for i in range(3)]
    bad = w.append(make_event("polymarket.trade", T0 + 3, price=None))
    odd = make_event("polymarket.trade", T0 + 4, market="\ud800")
    big = w.append(dataclasses.replace(odd, raw='{"market":"\ud800"}'))
    good.append(w.append(make_event("polymarket.trade", T0 + 5, i=5)))
    w.close()
    reader = RecordingReader(tmp_path, raw=True)
    assert reader.read_stream("polymarket.trade")["seq"].to_list() == good
    st = reader.read_stream("recorder.status")
    assert st["seq"].to_list() == [bad, big]
    assert st["kind"].to_list() == ["parse_error"] * 2
    assert st["stream_id"].to_list() == ["polymarket.trade"] * 2
    assert "polymarket.trade: column 'price'" in st["message"][0]
    assert "polymarket.trade: column 'market'" in st["message"][1]
    # Text UTF-8 cannot encode is kept as a JSON string literal, and the message says so.
    assert json.loads(st["raw"][1]) == '{"market":"\ud800"}'
    assert "JSON string literal" in st["message"][1]


def test_uncreatable_root(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RecordingError, match="cannot create recording root"):
        RecordingWriter(blocker / "recordings")


def test_unwritable_partition_is_an_error_and_keeps_rows(tmp_path: Path) -> None:
    w = RecordingWriter(tmp_path, config=FAST)
    w.append(make_event("binance.spot.trade", T0))
    # A file where the stream's directory should be: the write must fail loudly.
    (tmp_path / "binance.spot.trade").write_text("not a directory")
    with pytest.raises(RecordingError, match="cannot write"):
        w.flush()


def test_partitions_listing(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path, config=FAST) as w:
        w.extend(_events())
    parts = list_partitions(tmp_path)
    assert {(p.stream, p.date, p.hour) for p in parts} == {
        ("binance.spot.trade", "2024-06-01", 23),
        ("polymarket.trade", "2024-06-01", 23),
        ("polymarket.trade", "2024-06-02", 0),
        ("binance.futures.open_interest", "2024-06-02", 0),
    }


STREAMS = ["binance.spot.trade", "polymarket.trade", "reference.price", "recorder.status"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(STREAMS), st.integers(min_value=-3, max_value=3)),
        min_size=1,
        max_size=60,
    ),
    batch=st.integers(min_value=1, max_value=17),
)
def test_merge_is_total_order_by_recv_then_seq(tmp_path_factory, rows, batch) -> None:
    """Whatever the interleaving (ties, and receive clocks stepping back across an hour
    boundary), the merged stream is sorted by (recv_ns, seq) and loses nothing."""
    root = tmp_path_factory.mktemp("merge")
    t = T0
    written = []
    with RecordingWriter(root, config=FAST) as w:
        for i, (stream, step) in enumerate(rows):
            t = t + step * 700_000_000  # may step back; may cross midnight
            ev = make_event(stream, t, i=i)
            written.append((t, w.append(ev), stream))
    want = sorted(written)
    reader = RecordingReader(root)
    got = []
    for b in reader.batches(batch_size=batch):
        assert 0 < len(b) <= batch
        counts: dict[str, int] = {}
        for code in b.stream_code.tolist():
            counts[b.streams[code]] = counts.get(b.streams[code], 0) + 1
        assert {s: t.height for s, t in b.tables.items()} == counts
        got += [(e.recv_ns, e.seq, e.stream) for e in b.events()]
    assert got == want


def test_read_stream_sorted_frame(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path, config=FAST) as w:
        w.extend(_events())
    df = RecordingReader(tmp_path).read_stream("polymarket.trade")
    assert isinstance(df, pl.DataFrame)
    assert df["seq"].to_list() == [1, 4]
    assert "raw" not in df.columns


def test_compaction_merges_parts_and_survives_interruption(tmp_path: Path) -> None:
    from polyrl.recording.writer import compact_partition, partition_files

    cfg = RecordingConfig(fsync=False, max_buffer_rows=2)
    with RecordingWriter(tmp_path, config=cfg) as w:
        for i in range(7):
            w.append(make_event("binance.spot.trade", T0 - 100 * NS_PER_S + i, i=i))
    before = [(e.seq, dict(e.fields)) for e in RecordingReader(tmp_path, raw=True).events()]
    part_dir = recording_files(tmp_path)[0].parent
    parts = partition_files(part_dir)
    assert len(parts) == 4
    # An interrupted compaction: the merged file is visible, the parts are still there.
    keep = {p: p.read_bytes() for p in parts}
    merged = compact_partition(part_dir, "binance.spot.trade", cfg)
    assert merged is not None and merged.name == "part-0000000000000000-0000000000000006.parquet"
    assert partition_files(part_dir) == [merged]
    for p, data in keep.items():
        p.write_bytes(data)
    assert partition_files(part_dir) == [merged]
    after = [(e.seq, dict(e.fields)) for e in RecordingReader(tmp_path, raw=True).events()]
    assert after == before
    # Rows written after the compaction are read too.
    with RecordingWriter(tmp_path, config=cfg) as w:
        w.append(make_event("binance.spot.trade", T0 - 50 * NS_PER_S, i=9))
    assert [e.seq for e in RecordingReader(tmp_path).events()] == list(range(8))


def test_a_batch_from_live_events_equals_the_reader_s(tmp_path: Path) -> None:
    """Live mode builds its per-tick batches from events; replay reads them from disk: the
    same columns, types and values either way."""
    evs = _events()
    with RecordingWriter(tmp_path, config=FAST) as w:
        seqs = [w.append(e) for e in evs]
    read = next(iter(RecordingReader(tmp_path, dates="2024-06-01").batches()))
    import dataclasses

    from polyrl.recording.reader import MergedBatch

    events = [dataclasses.replace(e, seq=s) for e, s in zip(evs, seqs, strict=True)][:3]
    live = MergedBatch.from_events(events, frames=True)
    assert live.streams == read.streams
    assert np.array_equal(live.recv_ns, read.recv_ns) and np.array_equal(live.seq, read.seq)
    for s in read.tables:
        assert live.tables[s].equals(read.tables[s]), s
    # What the feature engine reads: the same numbers from events as from frames.
    cheap = MergedBatch.from_events(events)
    assert cheap.tables == {}
    for s, cols in read.columns.items():
        other = cheap.columns[s]
        for c in read.tables[s].columns:
            if read.tables[s][c].dtype.is_numeric():
                assert np.array_equal(cols.num(c, fill=0), other.num(c, fill=0)), (s, c)
            elif read.tables[s][c].dtype == pl.List:
                a, b = cols.flat(c), other.flat(c)
                assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]), (s, c)
            else:
                assert cols.obj(c).tolist() == other.obj(c).tolist(), (s, c)
