"""Archive access against the loopback archive server: ranges, retries, cuts, 404, ETags."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from polyrl.importers.fetch import ArchiveError, HttpArchive, LocalArchive, open_archive
from polyrl.testing.archive_server import ArchiveServer

BLOB = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
def served(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "blob.bin").write_bytes(BLOB)
    with ArchiveServer(tmp_path) as srv:
        yield srv


def _http(srv: ArchiveServer) -> HttpArchive:
    return HttpArchive(srv.url, backoff_s=0.01, retries=3)


def test_stat_and_ranges_match_the_file(served):
    ar = _http(served)
    info = ar.stat("a/blob.bin")
    assert info is not None and info.size == len(BLOB) and info.etag.startswith('"')
    assert ar.read("a/blob.bin", 1000, 1010) == BLOB[1000:1010]
    assert ar.read("a/blob.bin", len(BLOB) - 5) == BLOB[-5:]
    assert ar.read("a/blob.bin") == BLOB
    assert ar.stat("a/missing.bin") is None
    assert served.log[-1].status == 404


def test_retries_429_and_503_honouring_retry_after(served):
    served.fail("/a/blob.bin", 429, times=1, retry_after=0.05)
    served.fail("/a/blob.bin", 503, times=1)
    ar = _http(served)
    assert ar.read("a/blob.bin", 0, 100) == BLOB[:100]
    assert ar.stats.retries == 2
    assert [s.status for s in served.log] == [429, 503, 206]


def test_gives_up_with_a_line_naming_the_object(served):
    served.fail("/a/blob.bin", 500, times=10)
    with pytest.raises(ArchiveError, match=r"a/blob.bin: HTTP 500 after 3 retries"):
        _http(served).read("a/blob.bin", 0, 10)


def test_a_cut_connection_resumes_from_the_last_byte(served):
    served.cut("/a/blob.bin", after=300_000)
    ar = _http(served)
    assert ar.read("a/blob.bin") == BLOB
    gets = [s for s in served.log if s.method == "GET"]
    assert gets[0].sent == 300_000 and gets[1].range == "bytes=300000-"
    assert ar.stats.bytes_fetched == len(BLOB)


def test_an_object_replaced_mid_read_is_refused(served, tmp_path):
    ar = _http(served)
    ar.read("a/blob.bin", 0, 10)
    (tmp_path / "a" / "blob.bin").write_bytes(BLOB[::-1])
    os.utime(tmp_path / "a" / "blob.bin", ns=(1, 1))
    with pytest.raises(ArchiveError, match="changed while it was read"):
        ar.read("a/blob.bin", 10, 20)


def test_parquet_footer_and_one_column_are_read_by_range(tmp_path):
    n = 200_000
    t = pa.table({"a": pa.array(range(n)), "b": pa.array([f"x{i}" for i in range(n)])})
    pq.write_table(t, tmp_path / "t.parquet", row_group_size=50_000)
    size = (tmp_path / "t.parquet").stat().st_size
    with ArchiveServer(tmp_path) as srv:
        ar = _http(srv)
        pf = pq.ParquetFile(ar.open("t.parquet"))
        got = pf.read_row_group(2, columns=["a"])
        assert got.column("a").to_pylist() == list(range(100_000, 150_000))
        assert ar.stats.bytes_fetched < size / 2


def test_local_archive_and_open_archive(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"hello")
    ar = open_archive(str(tmp_path))
    assert isinstance(ar, LocalArchive) and ar.read("x.bin", 1, 3) == b"el"
    assert ar.stat("nope") is None
    with pytest.raises(ArchiveError, match="does not exist"):
        open_archive(str(tmp_path / "absent"))


def test_archive_is_abstract():
    from polyrl.importers.fetch import Archive

    with pytest.raises(TypeError, match="abstract"):
        Archive()

    class NoRead(Archive):
        def stat(self, rel):
            return None

        def location(self, rel):
            return rel

    with pytest.raises(TypeError, match="read"):
        NoRead()
