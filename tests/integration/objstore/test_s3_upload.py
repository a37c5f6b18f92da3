"""Closed hours shipped to the loopback S3 server as complete, verified objects; a
connection cut mid-upload leaves no partial object and the next pass resumes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from polars.testing import assert_frame_equal

from polyrl.errors import StorageError
from polyrl.events import iso_to_ns
from polyrl.recording.reader import RecordingReader
from polyrl.recording.upload import manifest_path, upload_closed_hours
from polyrl.storage import StorageConfig, locate

from .s3_server import CuttingProxy, S3Server

pytestmark = pytest.mark.integration

LATER = iso_to_ns("2024-06-02T00:00:00Z")


def _objects(server: S3Server, bucket: str) -> dict[str, bytes]:
    fs = server.fs()
    out = {}
    for i in fs.get_file_info(pafs.FileSelector(bucket, recursive=True)):
        if i.type == pafs.FileType.File:
            with fs.open_input_stream(i.path) as fh:
                out[i.path.split("/", 2)[2]] = bytes(fh.read())
    return out


@pytest.fixture
def rec(small_recording: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "rec"
    shutil.copytree(small_recording, dst, ignore=shutil.ignore_patterns(".cache"))
    return dst


def test_closed_hours_round_trip_and_a_second_pass_sends_nothing(
    s3_env: S3Server, rec: Path
) -> None:
    bucket = s3_env.new_bucket()
    uri = f"s3://{bucket}/up"
    # At 00:30 the only hour (00h) is still open: nothing is shipped.
    early = upload_closed_hours(rec, uri, now_ns=iso_to_ns("2024-06-01T00:30:00Z"), grace_s=120)
    assert early.uploaded == [] and early.open_hours > 0
    first = upload_closed_hours(rec, uri, now_ns=LATER, grace_s=120)
    assert first.open_hours == 0 and "provenance/2024-06-01.json" in first.uploaded
    stored = _objects(s3_env, bucket)
    assert set(stored) == set(first.uploaded)
    for key, data in stored.items():
        assert (rec / key).read_bytes() == data, key
    local, remote = RecordingReader(rec), RecordingReader(uri)
    for date, hour in local.hours():
        a, b = local.read_hour(date, hour), remote.read_hour(date, hour)
        assert a.keys() == b.keys()
        for s in a:
            assert_frame_equal(a[s], b[s])
    again = upload_closed_hours(rec, uri, now_ns=LATER, grace_s=120)
    assert again.uploaded == [] and again.already == len(first.uploaded)


def test_a_cut_connection_leaves_no_partial_object_and_the_next_pass_resumes(
    s3_env: S3Server, rec: Path
) -> None:
    bucket = s3_env.new_bucket()
    uri = f"s3://{bucket}/up"
    before = {p: p.read_bytes() for p in rec.rglob("*") if p.is_file()}
    proxy = CuttingProxy(s3_env.port)
    try:
        cfg = StorageConfig(
            endpoint=proxy.endpoint, connect_timeout_s=2, request_timeout_s=3, retries=1
        )
        dest = locate(uri, cfg)
        proxy.cut_after(400_000)  # a few files' worth, then the network drops
        with pytest.raises(StorageError) as e:
            upload_closed_hours(rec, dest, now_ns=LATER, grace_s=120)
    finally:
        proxy.close()
    assert proxy.cuts >= 1
    assert str(e.value).startswith(f"{uri}/") and "\n" not in str(e.value)
    partial = _objects(s3_env, bucket)
    for key, data in partial.items():  # whatever is visible is whole
        assert (rec / key).read_bytes() == data, key
    mpath = manifest_path(rec, locate(uri))
    noted = json.loads(mpath.read_text())["files"] if mpath.exists() else {}
    assert set(noted) <= set(partial)  # noted only once verified in the bucket
    resumed = upload_closed_hours(rec, uri, now_ns=LATER, grace_s=120)
    assert resumed.already == len(noted)
    stored = _objects(s3_env, bucket)
    assert len(stored) == resumed.already + len(resumed.uploaded)
    for key, data in stored.items():
        assert (rec / key).read_bytes() == data, key
    # The local copy was never touched (only the upload manifest was added).
    after = {p: p.read_bytes() for p in rec.rglob("*") if p.is_file() and ".upload" not in p.parts}
    assert after == before
