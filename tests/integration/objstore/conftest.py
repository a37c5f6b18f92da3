"""Fixtures of the object-storage tests: a moto S3 server on a free loopback port for the
session, fresh buckets, and the standard credential variables pointing at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .s3_server import ACCESS_KEY, SECRET_KEY, S3Server, start_server, stop_server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = start_server()
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The standard variables set for the loopback server (the CLI's subprocesses inherit
    them): credentials and ``AWS_ENDPOINT_URL``."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return s3_server
