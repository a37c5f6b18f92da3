"""``import_binance`` end to end on archive-format zips (a folder and the loopback server):
checksums, gaps, retries, defects reported, receive delays, idempotence, resume, no mixing."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from polyrl.errors import RecordingError
from polyrl.importers.binance import ChecksumError, import_binance
from polyrl.importers.config import ImportConfig
from polyrl.importers.store import Unit, unit_done
from polyrl.recording.reader import RecordingReader
from polyrl.recording.writer import RecordingWriter
from polyrl.testing.archive_server import ArchiveServer
from polyrl.testing.binance_archive import Defects, export_day, rel, write_zip
from polyrl.testing.factories import make_event

DAY = "2024-06-01"
MS = 1_000_000
CFG = ImportConfig(binance_spot_delay_ms=25.0, binance_futures_delay_ms=12.0, backoff_s=0.01)


@pytest.fixture(scope="module")
def archive(small_recording, tmp_path_factory) -> Path:
    """The small recording's binance rows of 2024-06-01 as archive files (btc, eth)."""
    out = tmp_path_factory.mktemp("binance-archive")
    export_day(small_recording, DAY, out, assets=("btc", "eth"))
    return out


def _read(root: Path, stream: str) -> pl.DataFrame:
    return RecordingReader(root, dates=[DAY, "2024-06-02"]).read_stream(stream)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*.parquet"))
        if not p.name.startswith(".")
    }


def _go(root: Path, arch: Path | str, **kw) -> object:
    return import_binance(
        root, DAY, DAY, assets=kw.pop("assets", ("btc", "eth")), cfg=CFG, archive=str(arch), **kw
    )


def test_trades_round_trip_exactly_with_recv_delayed(archive, small_recording, tmp_path):
    s = _go(tmp_path, archive)
    assert s.days_imported == [DAY] and not s.gaps
    for stream, delay in (("binance.spot.trade", 25), ("binance.futures.trade", 12)):
        rec = _read(small_recording, stream).filter(pl.col("key").is_in(["BTCUSDT", "ETHUSDT"]))
        got = _read(tmp_path, stream)
        cols = ["key", "trade_id", "price", "qty", "first_id", "last_id", "buyer_maker", "side"]
        cols.append("trade_ns")
        assert (
            got.sort("key", "trade_id")
            .select(cols)
            .equals(rec.sort("key", "trade_id").select(cols))
        )
        assert (got["recv_ns"] - got["trade_ns"] == delay * MS).all()
        assert (got["exch_ns"] == got["trade_ns"]).all()
    st = _read(tmp_path, "recorder.status").filter(pl.col("kind") == "import")
    objs = [json.loads(m) for m in st["message"]]
    assert {o["file"] for o in objs} >= {rel("spot", "aggTrades", "BTCUSDT", DAY)}
    spot = next(o for o in objs if o["file"].endswith("BTCUSDT-aggTrades-2024-06-01.zip"))
    assert spot["delay_ms"] == 25.0 and len(spot["sha256"]) == 64 and spot["bytes"] > 0
    prov = json.loads((tmp_path / "provenance" / f"{DAY}.json").read_text())
    assert "polyrl import binance" in json.dumps(prov)


def test_klines_and_mark_rows_are_received_after_their_bar(archive, tmp_path):
    _go(tmp_path, archive)
    k = _read(tmp_path, "binance.spot.kline")
    assert set(k["interval"]) == {"1s", "1m"}
    step = pl.when(pl.col("interval") == "1s").then(1000 * MS).otherwise(60_000 * MS)
    k = k.with_columns(step.alias("step"))
    assert (k["recv_ns"] == k["open_ns"] + k["step"] + 25 * MS).all()
    assert (k["recv_ns"] > k["close_ns"]).all() and k["closed"].all()
    m = _read(tmp_path, "binance.futures.mark")
    assert len(m) > 0 and (m["recv_ns"] == m["exch_ns"] + 12 * MS).all()
    assert (m["exch_ns"] % (60_000 * MS) == 0).all() and (m["next_funding_ns"] > m["exch_ns"]).all()
    oi = _read(tmp_path, "binance.futures.open_interest")
    assert len(oi) > 0 and (oi["recv_ns"] == oi["exch_ns"] + 12 * MS).all()


def test_headers_microseconds_and_missing_day_and_monthly_fallback(small_recording, tmp_path):
    arch = tmp_path / "arch"
    export_day(
        small_recording,
        DAY,
        arch,
        assets=("btc",),
        defects=Defects(
            spot_header=True, spot_unit="us", futures_header=False, missing=("metrics", "1s")
        ),
    )
    s = _go(tmp_path / "rec", arch, assets=("btc",))
    plain = tmp_path / "plain"
    export_day(small_recording, DAY, plain, assets=("btc",))
    _go(tmp_path / "rec2", plain, assets=("btc",))
    for stream in ("binance.spot.trade", "binance.futures.trade"):
        a, b = _read(tmp_path / "rec", stream), _read(tmp_path / "rec2", stream)
        assert a.drop("seq").equals(b.drop("seq"))
    assert s.repairs["timestamps_us_files"] == 2  # aggTrades + klines 1m (1s missing)
    assert s.repairs["missing_file_gap"] == 2 and len(s.gaps) == 2
    assert any("BTCUSDT-metrics-2024-06-01.zip not in the archive" in g for g in s.gaps)
    gaps = _read(tmp_path / "rec", "recorder.status").filter(pl.col("kind") == "gap")
    assert set(gaps["stream_id"]) == {"binance.futures.open_interest", "binance.spot.kline"}
    # a month file stands in for the missing daily one
    (arch / rel("futures/um", "metrics", "BTCUSDT", "2024-06")).parent.mkdir(parents=True)
    shutil.copy(
        plain / rel("futures/um", "metrics", "BTCUSDT", DAY),
        arch / rel("futures/um", "metrics", "BTCUSDT", "2024-06"),
    )
    m = arch / rel("futures/um", "metrics", "BTCUSDT", "2024-06")
    digest = (plain / (rel("futures/um", "metrics", "BTCUSDT", DAY) + ".CHECKSUM")).read_text()
    m.with_name(m.name + ".CHECKSUM").write_text(digest)
    s = _go(tmp_path / "rec", arch, assets=("btc",), force=True)
    assert s.repairs["monthly_file_for_missing_day"] == 1 and len(s.gaps) == 1


def test_a_wrong_checksum_stops_naming_the_file_or_is_a_gap(small_recording, tmp_path):
    arch = tmp_path / "arch"
    export_day(
        small_recording, DAY, arch, assets=("btc",), defects=Defects(bad_checksum=("metrics",))
    )
    with pytest.raises(ChecksumError, match=r"BTCUSDT-metrics-2024-06-01\.zip: sha256 \w+ != "):
        _go(tmp_path / "rec", arch, assets=("btc",))
    assert unit_done(tmp_path / "rec", Unit("binance", DAY, None)) is None
    s = _go(tmp_path / "rec", arch, assets=("btc",), checksum_gap=True)
    assert s.repairs["checksum_mismatch_gap"] == 1 and len(s.gaps) == 1


def test_out_of_order_monthly_file_sorted_and_reported(small_recording, tmp_path):
    arch = tmp_path / "arch"
    kinds = ("futures_aggTrades", "metrics")
    export_day(
        small_recording,
        DAY,
        arch,
        assets=("btc",),
        defects=Defects(monthly=kinds, shuffle_monthly=True),
    )
    assert not (arch / rel("futures/um", "aggTrades", "BTCUSDT", DAY)).exists()
    s = _go(tmp_path / "rec", arch, assets=("btc",))
    assert s.repairs["monthly_file_for_missing_day"] == 2 and not s.gaps
    assert s.repairs["rows_out_of_order_sorted"] > 0
    got = _read(tmp_path / "rec", "binance.futures.trade")
    rec = _read(small_recording, "binance.futures.trade").filter(pl.col("key") == "BTCUSDT")
    assert got["trade_id"].to_list() == sorted(rec["trade_id"].to_list())
    assert got["trade_ns"].is_sorted()


def test_duplicated_and_missing_metrics_rows_reported(small_recording, tmp_path):
    arch = tmp_path / "arch"
    export_day(
        small_recording,
        DAY,
        arch,
        assets=("btc",),
        defects=Defects(duplicate_metrics=2, drop_metrics=1),
    )
    s = _go(tmp_path / "rec", arch, assets=("btc",))
    assert s.repairs["duplicate_rows_dropped"] == 2
    assert s.repairs["metrics_rows_missing"] > 0
    oi = _read(tmp_path / "rec", "binance.futures.open_interest")
    assert oi["exch_ns"].n_unique() == len(oi)
    info = unit_done(tmp_path / "rec", Unit("binance", DAY, None))["info"]
    assert info["repairs"]["duplicate_rows_dropped"] == 2
    assert any("5-minute rows missing" in n for n in info["notes"])


def test_http_faults_are_retried_and_give_the_same_rows(archive, tmp_path):
    _go(tmp_path / "local", archive)
    with ArchiveServer(archive) as srv:
        srv.fail("*/BTCUSDT-aggTrades-2024-06-01.zip", 429, times=1, retry_after=0.01)
        srv.fail("*/ETHUSDT-1m-2024-06-01.zip", 503, times=2)
        srv.cut("*/BTCUSDT-1s-2024-06-01.zip", after=1000)
        s = _go(tmp_path / "http", srv.url)
        assert {429, 503} <= {x.status for x in srv.log}
    assert not s.gaps
    assert _files(tmp_path / "http").keys() == _files(tmp_path / "local").keys()
    for stream in ("binance.spot.trade", "binance.spot.kline", "binance.futures.trade"):
        assert (
            _read(tmp_path / "http", stream)
            .drop("seq")
            .equals(_read(tmp_path / "local", stream).drop("seq"))
        )


def test_idempotent_resumed_and_replaced_files_reimported(archive, tmp_path):
    arch = tmp_path / "arch"
    shutil.copytree(archive, arch)
    root = tmp_path / "rec"
    _go(root, arch)
    first = _files(root)
    s = _go(root, arch)
    assert s.days_skipped == [DAY] and _files(root) == first
    s = _go(root, arch, force=True)
    assert s.days_imported == [DAY] and _files(root) == first
    # an interrupted import left no marker: the day is imported again, same files
    (root / ".import" / "binance" / f"binance-{DAY}.json").unlink()
    s = _go(root, arch)
    assert s.days_imported == [DAY] and _files(root) == first
    # the archive replaced one file since: the next run re-imports the day and says so
    z = rel("futures/um", "metrics", "ETHUSDT", DAY)
    with zipfile.ZipFile(arch / z) as zf:
        body = zf.read(zf.namelist()[0])
    lines = body.splitlines(keepends=True)
    write_zip(arch, z, b"".join(lines[:-1]))  # the replacement lacks the last row
    s = _go(root, arch)
    assert s.days_imported == [DAY] and s.replaced == [z] and s.repairs["files_replaced"] == 1
    assert len(_read(root, "binance.futures.open_interest")) == first_oi(first) - 1


def first_oi(files: dict[str, bytes]) -> int:
    return sum(
        pq.read_metadata(io.BytesIO(b)).num_rows
        for k, b in files.items()
        if k.startswith("binance.futures.open_interest/")
    )


def test_refuses_to_mix_with_recorded_rows(archive, tmp_path):
    from polyrl.events import iso_to_ns

    with RecordingWriter(tmp_path) as w:
        w.append(make_event("binance.spot.trade", iso_to_ns(f"{DAY}T00:10:00Z")))
    with pytest.raises(RecordingError, match="binance.spot.trade date=2024-06-01 hour=00"):
        _go(tmp_path, archive)
    s = _go(tmp_path, archive, allow_mixed=True)
    assert s.days_imported == [DAY]


def test_importing_another_asset_later_keeps_the_first(archive, tmp_path):
    _go(tmp_path, archive, assets=("btc",))
    s = _go(tmp_path, archive, assets=("eth",))
    assert s.days_imported == [DAY]
    keys = set(_read(tmp_path, "binance.spot.trade")["key"])
    assert keys == {"BTCUSDT", "ETHUSDT"}
    assert _go(tmp_path, archive, assets=("btc", "eth")).days_skipped == [DAY]
