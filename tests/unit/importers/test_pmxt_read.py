"""Reading a PMXT hour by range: only the wanted markets' row groups are fetched."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from polyrl.errors import PolyrlError
from polyrl.importers.fetch import HttpArchive, LocalArchive
from polyrl.importers.pmxt_format import PMXT_SCHEMA, wanted_rows
from polyrl.importers.pmxt_read import read_hour
from polyrl.testing.archive_server import ArchiveServer

T = 1_777_593_600_000
NAME = "polymarket_orderbook_2026-05-01T00.parquet"


def cid(i: int) -> str:
    return "0x" + f"{i:064x}"


def _table(n_markets: int, per_market: int) -> pa.Table:
    """An hour of price_change rows of many markets, in the archive's order and schema."""
    rng = np.random.default_rng(7)
    n = n_markets * per_market
    m = np.repeat(np.arange(n_markets), per_market)
    k = np.tile(np.arange(per_market), n_markets)
    asset = (10**15 + m * 2 + (k >= per_market // 2)).astype(str)
    tsr = T + np.tile(np.arange(per_market) % (per_market // 2), n_markets) * 7
    dec = lambda v, t: pa.array(v).cast(t)  # noqa: E731 - decimal text -> decimal column
    cols = {
        "timestamp_received": pa.array(tsr).cast(pa.timestamp("ms", tz="UTC")),
        "timestamp": pa.array(tsr - 3).cast(pa.timestamp("ms", tz="UTC")),
        "market": pa.array([cid(i).encode() for i in m], pa.binary(66)),
        "event_type": pa.array(["price_change"] * n),
        "asset_id": pa.array(asset),
        "bids": pa.nulls(n, pa.string()),
        "asks": pa.nulls(n, pa.string()),
        "price": dec(np.char.mod("0.%04d", rng.integers(1, 9999, n)), pa.decimal128(9, 4)),
        "size": dec(np.char.mod("%d.", rng.integers(0, 10**9, n)).astype(object)
                    + np.char.mod("%06d", rng.integers(0, 10**6, n)).astype(object),
                    pa.decimal128(18, 6)),
        "side": pa.array(np.where(k % 3, "BUY", "SELL")),
        "best_bid": dec(["0.4900"] * n, pa.decimal128(9, 4)),
        "best_ask": dec(["0.5100"] * n, pa.decimal128(9, 4)),
        "fee_rate_bps": pa.nulls(n, pa.uint16()),
        "transaction_hash": pa.nulls(n, pa.string()),
        "old_tick_size": pa.nulls(n, pa.decimal128(9, 4)),
        "new_tick_size": pa.nulls(n, pa.decimal128(9, 4)),
    }  # fmt: skip
    return pa.table(cols, schema=PMXT_SCHEMA)


@pytest.fixture(scope="module")
def hour_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pmxt")
    pq.write_table(_table(400, 500), d / NAME, row_group_size=5000, compression="zstd")
    return d


def test_only_the_row_groups_of_the_wanted_markets_are_fetched(hour_dir):
    size = (hour_dir / NAME).stat().st_size
    want = [cid(37), cid(38)]
    full = wanted_rows(pq.read_table(hour_dir / NAME), want)
    with ArchiveServer(hour_dir) as srv:
        ar = HttpArchive(srv.url, backoff_s=0.01)
        got = read_hour(ar, NAME, want)
    assert got.table is not None and got.table.equals(full) and got.table.num_rows == 1000
    assert got.row_groups == 40 and got.row_groups_read <= 2
    assert got.size == size and 0 < got.bytes_fetched < 0.10 * size
    assert got.bytes_fetched == ar.stats.bytes_fetched


def test_a_busy_hour_fetches_its_row_groups_in_coalesced_ranges_not_the_whole_file(hour_dir):
    # Wanted markets in 27 of the 40 row groups (two of every three): 14 runs of adjacent
    # groups. The file is not read whole: the 13 groups between the runs are never fetched.
    groups = [g for g in range(40) if g % 3 != 2]
    want = [cid(10 * g + 5) for g in groups]
    full = wanted_rows(pq.read_table(hour_dir / NAME), want)
    with ArchiveServer(hour_dir) as srv:
        ar = HttpArchive(srv.url, backoff_s=0.01)
        got = read_hour(ar, NAME, want)
    assert got.table is not None and got.table.equals(full) and got.table.num_rows == 27 * 500
    assert got.row_groups_read == 27
    assert got.bytes_fetched < 0.75 * got.size
    assert ar.stats.requests <= 14 + 3  # a HEAD, the footer, then a range per run


def test_no_wanted_market_reads_only_the_footer(hour_dir):
    ar = LocalArchive(hour_dir)
    got = read_hour(ar, NAME, [])
    assert got.table is not None and got.table.num_rows == 0 and got.row_groups_read == 0
    assert got.bytes_fetched < 0.10 * got.size


def test_a_missing_hour_reads_as_none(hour_dir):
    with ArchiveServer(hour_dir) as srv:
        got = read_hour(HttpArchive(srv.url), "polymarket_orderbook_2026-05-01T01.parquet", [])
    assert got.table is None and got.size == 0
    assert read_hour(LocalArchive(hour_dir), "nope.parquet", [cid(1)]).table is None


def test_cut_and_429_503_are_retried_with_the_same_rows(hour_dir):
    want = [cid(5), cid(90)]
    full = wanted_rows(pq.read_table(hour_dir / NAME), want)
    with ArchiveServer(hour_dir) as srv:
        srv.cut(f"/{NAME}", after=1000, times=2)
        srv.fail(f"/{NAME}", 429, times=1, retry_after=0.01)
        srv.fail(f"/{NAME}", 503, times=1)
        ar = HttpArchive(srv.url, backoff_s=0.01)
        got = read_hour(ar, NAME, want)
    assert got.table is not None and got.table.equals(full)
    assert ar.stats.retries >= 4  # two cuts, a 429 and a 503


def test_a_file_that_is_not_a_pmxt_hour_is_named(tmp_path):
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / NAME)
    with pytest.raises(PolyrlError, match=r"T00.parquet: not a PMXT v2 hour file \(columns a\)"):
        read_hour(LocalArchive(tmp_path), NAME, [cid(1)])


def test_a_read_that_keeps_failing_is_one_error_naming_the_url(hour_dir):
    with ArchiveServer(hour_dir) as srv:
        srv.cut(f"/{NAME}", after=10, times=100)
        ar = HttpArchive(srv.url, backoff_s=0.01, retries=1)
        with pytest.raises(PolyrlError) as e:
            read_hour(ar, NAME, [cid(3)])
    msg = str(e.value)
    assert f"{srv.url}/{NAME}" in msg and "\n" not in msg
