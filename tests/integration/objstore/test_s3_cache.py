"""Day caches and notebooks over a recording on the loopback S3 server: the cache key is
the content's, so the local copy and the bucket's give the same key and the same cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest

from polyrl.analysis.recordings import load_recording
from polyrl.features.cache import cache_dir, cache_key, load_or_build
from polyrl.replay import replay_spec
from polyrl.sections import Config

from .s3_server import S3Server

pytestmark = pytest.mark.integration

DAY = "2024-06-01"


def test_cache_from_s3_has_the_local_key_and_arrays(
    s3_env: S3Server, small_recording: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYRL_CACHE_DIR", str(tmp_path / "cache"))
    uri = s3_env.upload(small_recording, s3_env.new_bucket(), "rec")
    spec = replay_spec(Config())
    assert cache_key(uri, DAY, spec) == cache_key(small_recording, DAY, spec)
    # Another object under the same day changes the key (it is the content's, not the name's).
    other = s3_env.upload(small_recording, s3_env.new_bucket(), "rec")
    fs = s3_env.fs()
    victim = next(
        i.path
        for i in fs.get_file_info(pafs.FileSelector(other[5:], recursive=True))
        if i.path.endswith(".parquet") and f"date={DAY}" in i.path
    )
    with fs.open_output_stream(victim) as fh:
        fh.write(b"not the same bytes")
    assert cache_key(other, DAY, spec)[1] != cache_key(uri, DAY, spec)[1]

    local = load_or_build(small_recording, DAY, spec)
    remote = load_or_build(uri, DAY, spec)
    assert cache_dir(uri) == tmp_path / "cache"
    assert remote.path.is_relative_to(tmp_path / "cache")  # on local disk, not the bucket
    assert remote.key == local.key and remote.meta == local.meta
    for name, arr in local.arrays.items():
        np.testing.assert_array_equal(np.asarray(remote.arrays[name]), np.asarray(arr), name)
    again = load_or_build(uri, DAY, spec)  # a hit: the same entry, not rebuilt
    assert again.path == remote.path
    assert (remote.path / "meta.json").stat().st_mtime_ns == (
        again.path / "meta.json"
    ).stat().st_mtime_ns


def test_load_recording_from_s3(s3_env: S3Server, small_recording: Path) -> None:
    uri = s3_env.upload(small_recording, s3_env.new_bucket(), "rec")
    local, remote = load_recording(small_recording), load_recording(uri)
    assert uri in repr(remote)
    assert remote.streams == local.streams
    assert remote.rates().equals(local.rates())
    assert remote.stream("polymarket.book").equals(local.stream("polymarket.book"))
