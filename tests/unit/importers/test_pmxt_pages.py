"""The wanted markets' row ranges read from the ``market`` chunks' dictionary pages give the
same rows as filtering the decoded column, in every page layout pyarrow writes; a layout it
does not read gives None and the hour is still read right."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from polyrl.importers.fetch import LocalArchive
from polyrl.importers.pmxt_format import wanted_rows
from polyrl.importers.pmxt_pages import market_column, market_runs, merged
from polyrl.importers.pmxt_read import read_hour

from .test_pmxt_read import NAME, _table, cid

WANT = [cid(i) for i in (0, 3, 4, 150, 151, 199, 5000)]  # adjacent ones, the last, an absent one


def _expected(table: pa.Table) -> list[tuple[int, int]]:
    mask = pc.is_in(table.column("market"), value_set=pa.array(
        [c.encode() for c in WANT], pa.binary(66))).to_numpy(zero_copy_only=False)  # fmt: skip
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


LAYOUTS = {
    "archive": {"row_group_size": 3000, "compression": "zstd", "compression_level": 9},
    "pages v2, small pages": {"row_group_size": 7000, "data_page_version": "2.0",
                              "data_page_size": 512, "compression": "zstd"},
    "snappy, small pages": {"row_group_size": 2500, "compression": "snappy",
                            "data_page_size": 256},
    "uncompressed, one group": {"compression": "none"},
}  # fmt: skip


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_ranges_from_the_dictionary_pages_are_the_filtered_rows(tmp_path, layout):
    table = _table(200, 60)
    # Runs of one market that change inside bit-packed groups: markets of 1-13 rows too.
    table = pa.concat_tables([table.slice(0, 3000), table.slice(3000, 9000).take(
        pa.array(np.sort(np.random.default_rng(1).integers(0, 9000, 9000))))])  # fmt: skip
    pq.write_table(table, tmp_path / NAME, **LAYOUTS[layout])
    meta = pq.ParquetFile(tmp_path / NAME).metadata
    runs = market_runs(tmp_path / NAME, meta, list(range(meta.num_row_groups)), WANT)
    assert runs is not None and merged(runs) == _expected(table)
    want = wanted_rows(table, WANT)
    assert market_column(runs).equals(want.column("market").combine_chunks())
    got = read_hour(LocalArchive(tmp_path), NAME, WANT).table
    assert got is not None and got.equals(want)


def test_a_plain_market_column_or_a_null_market_falls_back_to_the_filter(tmp_path):
    table = _table(50, 40)
    pq.write_table(table, tmp_path / NAME, use_dictionary=False, row_group_size=500)
    meta = pq.ParquetFile(tmp_path / NAME).metadata
    assert market_runs(tmp_path / NAME, meta, [0, 1], WANT) is None
    got = read_hour(LocalArchive(tmp_path), NAME, WANT).table
    assert got is not None and got.num_rows == 120 and got.equals(wanted_rows(table, WANT))

    nulls = table.set_column(2, "market", pc.if_else(
        pa.array(np.arange(table.num_rows) == 5), pa.scalar(None, pa.binary(66)),
        table.column("market")))  # fmt: skip
    pq.write_table(nulls, tmp_path / NAME, row_group_size=500)
    meta = pq.ParquetFile(tmp_path / NAME).metadata
    assert market_runs(tmp_path / NAME, meta, [0], WANT) is None
    got = read_hour(LocalArchive(tmp_path), NAME, WANT).table
    assert got is not None and got.equals(wanted_rows(nulls, WANT))


def test_only_the_given_row_groups_are_read(tmp_path):
    table = _table(200, 60)
    pq.write_table(table, tmp_path / NAME, row_group_size=1000)
    meta = pq.ParquetFile(tmp_path / NAME).metadata
    # cid(0) is in row group 0, cid(150) in row group 9: asking for group 9 only.
    got = market_runs(tmp_path / NAME, meta, [9], [cid(0), cid(150)])
    assert got == [(9000, 9060, cid(150).encode())]
