"""``polyrl bench s3``: reading a recorded day from an S3-protocol server on loopback
against reading it from local disk.

The server is moto's standalone one, started here on a free 127.0.0.1 port (moto comes with
the ``dev`` extra) unless ``endpoint`` names a running one (MinIO, say; then the standard
credential variables must be set). The bench recording is the simulated one of ``polyrl
bench store``, uploaded once per run; each read is a :class:`RecordingReader` over the day,
every typed column but ``raw``, merged into batches, best of ``repeat``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.fs as pafs

from polyrl.config import Config
from polyrl.envvars import environ_set
from polyrl.errors import ConfigError
from polyrl.recording.bench import _machine, ensure_bench_recording
from polyrl.recording.files import recording_files
from polyrl.recording.reader import RecordingReader
from polyrl.storage import Location, StorageConfig, check_credentials, locate

_KEY, _SECRET = "polyrl-bench", "polyrl-bench-secret"


@dataclass(slots=True)
class S3Bench:
    """Figures of one ``polyrl bench s3`` run."""

    day: str
    events: int
    bytes: int
    local_s: float
    s3_s: float
    local_events_per_s: float
    s3_events_per_s: float
    ratio: float
    """S3 read time / local read time (the issue's target: at most 2)."""
    server: str
    machine: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _moto() -> Iterator[str]:
    """moto's S3 server on a free loopback port for the duration; yields its endpoint."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        raise ConfigError(
            "bench s3: moto is not installed (pip install 'polyrl[dev]'), or pass --endpoint"
        ) from None
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise ConfigError("bench s3: moto's server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _time_read(root: Path | Location, day: str, repeat: int) -> tuple[float, int]:
    best, n = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = sum(len(b) for b in RecordingReader(root, dates=day).batches())
        best = min(best, time.perf_counter() - t0)
    return best, n


def bench_s3(
    work: Path,
    *,
    hours: float,
    seed: int,
    config: Config,
    endpoint: str = "",
    repeat: int = 3,
    progress: Callable[[str], None] | None = None,
) -> S3Bench:
    """Time reading the bench recording's first day locally and from the S3 server."""
    say = progress or (lambda msg: None)
    if endpoint:
        check_credentials(f"bench s3 --endpoint {endpoint}")
    src = ensure_bench_recording(work, hours=hours, seed=seed, config=config, progress=progress)
    day = RecordingReader(src).hours()[0][0]
    size = sum(p.stat().st_size for p in recording_files(src))
    with _server(endpoint) as (ep, env):
        with environ_set(env):
            cfg = StorageConfig(endpoint=ep, region=config.storage.region)
            admin = pafs.S3FileSystem(
                access_key=os.environ["AWS_ACCESS_KEY_ID"],
                secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                endpoint_override=ep.split("://", 1)[1],
                scheme=ep.split("://", 1)[0],
                region=cfg.region,
                allow_bucket_creation=True,
                allow_bucket_deletion=True,
            )
            bucket = f"polyrl-bench-{uuid.uuid4().hex[:8]}"
            admin.create_dir(bucket)
            say(f"uploading {size / 1e6:,.1f} MB to s3://{bucket}/rec at {ep}")
            pafs.copy_files(str(src), f"{bucket}/rec", destination_filesystem=admin)
            loc = locate(f"s3://{bucket}/rec", cfg)
            say(f"reading {day}: local disk, then S3 (best of {repeat})")
            local_s, n = _time_read(src, day, repeat)
            s3_s, m = _time_read(loc, day, repeat)
            admin.delete_dir(bucket)
    if n != m:
        raise RuntimeError(f"bench s3: {n} events locally, {m} from S3")
    return S3Bench(
        day=day,
        events=n,
        bytes=size,
        local_s=local_s,
        s3_s=s3_s,
        local_events_per_s=n / local_s,
        s3_events_per_s=n / s3_s,
        ratio=s3_s / local_s,
        server=("moto (started here) " if not endpoint else "") + ep,
        machine=_machine(),
    )


@contextmanager
def _server(endpoint: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(endpoint, credential variables to set) of the server to measure against."""
    if endpoint:
        yield endpoint, {}
        return
    with _moto() as ep:
        yield ep, {"AWS_ACCESS_KEY_ID": _KEY, "AWS_SECRET_ACCESS_KEY": _SECRET}
