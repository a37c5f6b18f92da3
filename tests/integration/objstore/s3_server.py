"""A real S3-protocol server on loopback for the object-storage tests: moto's standalone
server in a subprocess, and a TCP proxy in front of it that can cut connections."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

ACCESS_KEY = "polyrl-test-key"
SECRET_KEY = "polyrl-test-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    """A running moto server: ``endpoint`` is ``http://127.0.0.1:PORT``."""

    proc: subprocess.Popen
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fs(self) -> pafs.S3FileSystem:
        """An admin filesystem (may create buckets) for setting tests up."""
        return pafs.S3FileSystem(
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            endpoint_override=f"127.0.0.1:{self.port}",
            scheme="http",
            region="us-east-1",
            allow_bucket_creation=True,
        )

    def new_bucket(self) -> str:
        name = f"polyrl-{uuid.uuid4().hex[:12]}"
        self.fs().create_dir(name)
        return name

    def upload(self, local: Path, bucket: str, prefix: str) -> str:
        """Copy the tree ``local`` to ``s3://bucket/prefix``; returns that URI."""
        pafs.copy_files(
            str(local), f"{bucket}/{prefix}", destination_filesystem=self.fs(), use_threads=True
        )
        return f"s3://{bucket}/{prefix}"


def start_server(timeout_s: float = 60.0) -> S3Server:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return S3Server(proc, port)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"moto server did not listen on 127.0.0.1:{port} in {timeout_s} s")


def stop_server(server: S3Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


class CuttingProxy:
    """A loopback TCP proxy to ``127.0.0.1:target``. Once :meth:`cut_after` is called, that
    many more bytes get through in all (requests and replies); then every connection is
    closed mid-stream (and any new one at once), as a dropped network would."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.budget: int | None = None
        self.lock = threading.Lock()
        self.closed = False
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut_after(self, n: int) -> None:
        with self.lock:
            self.budget = n

    def close(self) -> None:
        self.closed = True
        self.sock.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    if self.budget is not None:
                        data = data[: max(self.budget, 0)]
                        self.budget -= len(data)
                    spent = self.budget is not None and self.budget <= 0
                if data:
                    dst.sendall(data)
                if spent:
                    self.cuts += 1
                    break
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
