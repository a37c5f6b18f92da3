"""Recordings read from a real S3-protocol server on loopback (moto's standalone server):
the same rows, the same ``inspect``, and clear errors for a missing bucket, missing
credentials and a connection cut mid-read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from polyrl.errors import RecordingError, StorageError
from polyrl.recording.reader import RecordingReader, list_partitions
from polyrl.storage import StorageConfig, locate
from tests.integration.conftest import run_cli

from .s3_server import CuttingProxy, S3Server

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_rec(s3_env: S3Server, small_recording: Path) -> str:
    """The small recording uploaded to a fresh bucket; its URI."""
    return s3_env.upload(small_recording, s3_env.new_bucket(), "data/rec")


def test_reader_from_s3_gives_the_local_rows(s3_rec: str, small_recording: Path) -> None:
    local = RecordingReader(small_recording)
    remote = RecordingReader(s3_rec)
    assert remote.root == s3_rec
    assert remote.hours() == local.hours() and remote.streams == local.streams
    n = 0
    for a, b in zip(local.batches(), remote.batches(), strict=True):
        assert (a.recv_ns == b.recv_ns).all() and (a.seq == b.seq).all()
        assert a.tables.keys() == b.tables.keys()
        for s in a.tables:
            assert_frame_equal(a.tables[s], b.tables[s])
        n += len(a)
    assert n > 10_000
    # Pruning by listing: a literal date lists only that date's keys, a glob filters.
    assert [p.files[0].name for p in list_partitions(s3_rec, "2024-06-01")] == [
        p.files[0].name for p in list_partitions(small_recording, "2024-06-01")
    ]
    with pytest.raises(RecordingError, match="no partition matches dates '2024-07-\\*'"):
        list_partitions(s3_rec, "2024-07-*")


def test_inspect_cli_from_s3_matches_local(s3_rec: str, small_recording: Path) -> None:
    local = run_cli("inspect", str(small_recording), "--json")
    remote = run_cli("inspect", s3_rec, "--json")
    assert local.returncode == 0, local.stderr
    assert remote.returncode == 0, remote.stderr
    a, b = json.loads(local.stdout), json.loads(remote.stdout)
    assert a.pop("root") == str(small_recording) and b.pop("root") == s3_rec
    assert a == b
    assert "simulated" in json.dumps(b["data"])  # provenance read from the bucket too
    # Book statistics read local recordings only, and say so.
    res = run_cli("inspect", s3_rec, "--book-stats")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert f"--book-stats: reads a local recording only, not {s3_rec}" in res.stderr


def test_missing_bucket_is_one_line_naming_it(s3_env: S3Server) -> None:
    with pytest.raises(StorageError, match="bucket 'polyrl-no-such-bucket' does not exist"):
        locate("s3://polyrl-no-such-bucket/rec")
    r = run_cli("inspect", "s3://polyrl-no-such-bucket/rec")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "bucket 'polyrl-no-such-bucket' does not exist" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_missing_prefix_names_the_root(s3_env: S3Server) -> None:
    bucket = s3_env.new_bucket()
    with pytest.raises(RecordingError, match=f"recording root s3://{bucket}/nothing"):
        RecordingReader(f"s3://{bucket}/nothing")


def test_missing_credentials_in_the_cli_name_the_variable(s3_rec: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AWS_SECRET_ACCESS_KEY"}
    r = subprocess.run(
        [sys.executable, "-m", "polyrl", "inspect", s3_rec],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "AWS_SECRET_ACCESS_KEY is not set" in r.stderr


def test_an_unreachable_endpoint_is_a_clear_error_not_a_hang(
    s3_rec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # nothing listens there
    cfg = StorageConfig(connect_timeout_s=1, request_timeout_s=2, retries=1)
    t0 = time.monotonic()
    with pytest.raises(StorageError, match=s3_rec.split("/")[2]):
        locate(s3_rec, cfg)
    assert time.monotonic() - t0 < 30


def test_connection_cut_mid_read_is_a_clear_error_not_a_hang(
    s3_env: S3Server, s3_rec: str, small_recording: Path
) -> None:
    proxy = CuttingProxy(s3_env.port)
    try:
        cfg = StorageConfig(
            endpoint=proxy.endpoint, connect_timeout_s=2, request_timeout_s=3, retries=2
        )
        reader = RecordingReader(locate(s3_rec, cfg))  # listing goes through uncut
        date, hour = reader.hours()[0]
        proxy.cut_after(3000)  # then every connection drops after 3 kB of replies
        t0 = time.monotonic()
        with pytest.raises(StorageError) as e:
            reader.read_hour(date, hour)
        took = time.monotonic() - t0
    finally:
        proxy.close()
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{s3_rec}/") and ".parquet" in msg, msg
    assert proxy.cuts >= 1
    assert took < 60, took
    # The same reader works again once the network does (nothing cached half-read).
    full = RecordingReader(s3_rec).read_hour(date, hour)
    assert sum(df.height for df in full.values()) == sum(
        df.height for df in RecordingReader(small_recording).read_hour(date, hour).values()
    )
    assert all(isinstance(df, pl.DataFrame) for df in full.values())


def test_several_hours_from_s3_in_order(s3_env: S3Server, three_day_recording: Path) -> None:
    # Several hours: the next is fetched while the current one is merged; same batches.
    uri = s3_env.upload(three_day_recording, s3_env.new_bucket(), "rec")
    local, remote = RecordingReader(three_day_recording), RecordingReader(uri)
    assert len(remote.hours()) == 3
    got = [(b.recv_ns.copy(), b.seq.copy()) for b in remote.batches(batch_size=5_000)]
    want = [(b.recv_ns, b.seq) for b in local.batches(batch_size=5_000)]
    assert len(got) == len(want) > 3
    for (ra, sa), (rb, sb) in zip(got, want, strict=True):
        assert (ra == rb).all() and (sa == sb).all()
    # Stopping part way through (a generator closed early) leaves nothing running.
    it = remote.batches()
    next(it)
    it.close()
