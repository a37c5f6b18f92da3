"""Exploring recordings: overview, rates with silences, status and gaps, windows, one close."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from polyrl.analysis import load_recording
from polyrl.errors import RecordingError
from polyrl.events import NS_PER_S, iso_to_ns, status_event
from polyrl.recording.reader import RecordingReader
from polyrl.recording.writer import RecordingConfig, RecordingWriter
from polyrl.testing.factories import make_event

T0 = iso_to_ns("2024-06-01T00:00:00Z")


def test_overview_channels_and_rates_of_the_small_recording(small_recording: Path) -> None:
    rec = load_recording(small_recording, "2024-06-01")
    assert "polymarket.book" in rec.streams and rec.hours == [("2024-06-01", 0)]
    ov = rec.overview()
    assert {"stream", "group", "rows", "mean_rate_per_s", "max_silence_s"} <= set(ov.columns)
    assert ov.filter(pl.col("stream") == "binance.futures.mark")["group"].sort().to_list() == [
        "btc", "eth", "sol", "xrp",
    ]  # fmt: skip
    assert set(rec.channels()["channel"]) >= {"binance.spot.ws", "polymarket.clob.ws"}
    rates = rec.rates(every_s=60)
    # Every stream on the same grid of 33 minutes (00:00 .. 00:32), empty minutes as 0.
    grid = rates.group_by("stream").agg(
        pl.len(), pl.col("t_ns").min().alias("first"), pl.col("t_ns").max().alias("last")
    )
    assert set(grid["len"]) == {33} and set(grid["first"]) == {T0}
    assert set(grid["last"]) == {T0 + 32 * 60 * NS_PER_S}
    reader = RecordingReader(small_recording, columns=["recv_ns"])
    total = sum(df.height for df in reader.read_hour("2024-06-01", 0).values())
    assert rates["rows"].sum() == total
    row = rates.filter(pl.col("stream") == "binance.futures.mark").row(3, named=True)
    assert row["rate_per_s"] == pytest.approx(row["rows"] / 60) and row["rows"] > 0


def test_markets_and_a_window_close(small_recording: Path) -> None:
    rec = load_recording(small_recording)
    m = rec.markets()
    assert m.height == m["condition_id"].n_unique()  # repeated announcements collapse
    resolved = m.filter(pl.col("outcome").is_not_null())
    starts = sorted(set(resolved["window_start_ns"]))
    assert starts == [T0, T0 + 900 * NS_PER_S]  # 00:00 and 00:15 resolve inside the span
    assert set(resolved["outcome"]) <= {"Up", "Down"} and resolved.height == 8
    slug = resolved.filter(pl.col("asset") == "eth")["slug"][0]
    v = rec.window_close(slug, before_s=120, after_s=30)
    end = v.market["window_end_ns"]
    assert v.market["slug"] == slug and v.market["asset"] == "eth"
    assert v.book.height > 0 and v.reference.height > 0
    for df in (v.book, v.reference):
        assert df["t_ns"].min() >= end - 120 * NS_PER_S and df["t_ns"].max() <= end + 30 * NS_PER_S
    assert ((v.book["best_bid"] <= v.book["best_ask"]) | v.book["best_bid"].is_null()).all()
    assert v.open_price is not None and v.close_price is not None
    # The recorded outcome agrees with the reference feed: Up iff close >= open.
    assert v.market["outcome"] == ("Up" if v.close_price >= v.open_price else "Down")
    with pytest.raises(KeyError, match="no window 'btc-nope'"):
        rec.window_close("btc-nope")


def test_status_and_gaps_from_recorder_status(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    s = NS_PER_S
    with RecordingWriter(root, config=RecordingConfig(fsync=False)) as w:
        w.append(status_event("connect", T0, channel="binance.spot.ws"))
        w.append(make_event("binance.spot.trade", T0 + 1 * s))
        w.append(status_event("disconnect", T0 + 5 * s, channel="binance.spot.ws"))
        w.append(status_event("gap", T0 + 65 * s, channel="binance.spot.ws",
                              stream="binance.spot.trade", gap_start_ns=T0 + 5 * s,
                              gap_end_ns=T0 + 65 * s))  # fmt: skip
        w.append(make_event("binance.spot.trade", T0 + 130 * s, i=1))
    rec = load_recording(root)
    st = rec.status()
    assert st["kind"].to_list() == ["connect", "disconnect", "gap"]
    g = rec.gaps()
    assert g.rows(named=True) == [{"channel": "binance.spot.ws", "stream_id": "binance.spot.trade",
                                   "start_ns": T0 + 5 * s, "end_ns": T0 + 65 * s,
                                   "seconds": 60.0}]  # fmt: skip
    rates = rec.rates(every_s=60).filter(pl.col("stream") == "binance.spot.trade")
    assert rates["rows"].to_list() == [1, 0, 1]  # the silent minute shows as 0


def test_bad_roots_and_globs_are_named(small_recording: Path, tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=str(tmp_path / "none")):
        load_recording(tmp_path / "none")
    with pytest.raises(RecordingError, match="1999-"):
        load_recording(small_recording, "1999-*")


def test_rates_of_a_recording_whose_files_hold_no_rows_are_empty(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    with RecordingWriter(root, config=RecordingConfig(fsync=False)) as w:
        w.append(make_event("binance.spot.trade", T0 + NS_PER_S))
    (part,) = root.rglob("*.parquet")
    pl.read_parquet(part).head(0).write_parquet(part)  # a valid file without a row
    rates = load_recording(root).rates(every_s=60)
    assert rates.height == 0
    assert rates.columns == ["stream", "t_ns", "rows", "rate_per_s"]
