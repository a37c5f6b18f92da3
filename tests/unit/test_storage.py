"""Paths and URIs as filesystems: what needs no server (the loopback S3 tests are under
tests/integration/objstore/)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs
import pytest

from polyrl.errors import RecordingError, StorageError
from polyrl.sections import load_config
from polyrl.storage import StorageConfig, is_uri, locate


def test_plain_and_file_uri_paths_stay_on_local_disk(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    loc = locate(tmp_path)
    assert loc.is_local and isinstance(loc.fs, pafs.LocalFileSystem)
    assert loc.subdirs() == ["a"]
    uri = locate(f"file://{tmp_path}")
    assert uri.is_local and uri.path == str(tmp_path)
    assert uri.child("a").is_dir() and not uri.child("b").is_dir()


def test_uri_detection() -> None:
    assert is_uri("s3://b/p") and is_uri("gs://b") and is_uri("file:///x")
    assert not is_uri("recordings/s3:") and not is_uri("sample") and not is_uri("http://x/y")


@pytest.mark.parametrize("var", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
def test_missing_credential_names_the_variable(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.delenv(var)
    with pytest.raises(StorageError, match=f"environment variable {var} is not set") as e:
        locate("s3://bucket/rec")
    assert "\n" not in str(e.value) and "s3://bucket/rec" in str(e.value)
    assert isinstance(e.value, RecordingError)  # handled wherever a bad root is


def test_bucketless_uri_and_bad_endpoint_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    with pytest.raises(StorageError, match="no bucket"):
        locate("s3:///rec")
    with pytest.raises(StorageError, match="endpoint 'ftp://x'"):
        locate("s3://b/rec", StorageConfig(endpoint="ftp://x"))


def test_storage_section_loads_and_checks_values(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[storage]\nendpoint = "http://127.0.0.1:9000"\nretries = 2\n')
    loaded = load_config(cfg)
    assert loaded.storage == StorageConfig(endpoint="http://127.0.0.1:9000", retries=2)
    cfg.write_text("[storage]\nretries = 0\n")
    with pytest.raises(Exception, match="retries must be >= 1"):
        load_config(cfg)
