"""Shared test setup: no network but loopback, ever."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

import polyrl.rl  # noqa: F401 - load the fast BLAS before any test module imports mlx

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _is_loopback(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
    else:  # AF_UNIX paths and the like never leave the machine
        return True
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_loopback(address):
        raise RuntimeError(f"tests may not reach the network: connect to {address!r} refused")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_loopback(address):
        raise RuntimeError(f"tests may not reach the network: connect to {address!r} refused")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if host not in (None, "localhost") and not _is_loopback((host,)):
        raise RuntimeError(f"tests may not reach the network: lookup of {host!r} refused")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any socket connection or DNS lookup that is not loopback."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """``build(dir)`` run once per test run, the result this session's own copy.

    With pytest-xdist the workers share one build (the first to get the lock builds, the others
    copy it when it is done): the simulator is deterministic, so the copy is exactly what a
    build of its own would give, and each worker still owns its files (tests may write feature
    caches into a recording). Without xdist it is simply built here."""
    mine = tmp_path_factory.mktemp(name)
    if "PYTEST_XDIST_WORKER" not in os.environ:
        build(mine)
        return mine
    shared = tmp_path_factory.getbasetemp().parent / f"shared-{name}"
    shared.mkdir(exist_ok=True)
    done = shared / ".built"
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not done.exists():
                out = shared / "out"
                with contextlib.suppress(FileNotFoundError):
                    shutil.rmtree(out)
                out.mkdir()
                build(out)
                done.touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    shutil.rmtree(mine)
    shutil.copytree(shared / "out", mine)
    return mine


@pytest.fixture(scope="session")
def build_once(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """:func:`built_once` for conftests below this one: ``build_once(name, build)``."""
    return lambda name, build: built_once(tmp_path_factory, name, build)


@pytest.fixture(scope="session")
def small_recording(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """32 simulated minutes of all four assets from 2024-06-01T00:00 (seed 3), recorded
    through the real parsers and writer: windows 00:00 and 00:15 (both resolved inside the
    span) and the first two minutes of 00:30."""
    from polyrl.events import NS_PER_S, iso_to_ns
    from polyrl.recording.writer import RecordingConfig
    from polyrl.sections import Config
    from polyrl.sim.record import simulate_to_recording

    start = iso_to_ns("2024-06-01T00:00:00Z")

    def build(d: Path) -> None:
        simulate_to_recording(
            d / "rec",
            start_ns=start,
            end_ns=start + 32 * 60 * NS_PER_S,
            seed=3,
            config=Config(recording=RecordingConfig(fsync=False)),
        )

    return built_once(tmp_path_factory, "small-rec", build) / "rec"


@pytest.fixture(scope="session")
def three_day_recording(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Three recorded days (2024-06-01, -02, -03), each the first 17 simulated minutes of the
    day (window 00:00 resolved, 00:15 begun) with its own seed (3, 4, 5): three recorder runs
    merged under one root, as a recorder restarted once a day leaves them."""
    from polyrl.events import NS_PER_S, iso_to_ns
    from polyrl.recording.writer import RecordingConfig
    from polyrl.sections import Config
    from polyrl.sim.record import simulate_to_recording

    def build(base: Path) -> None:
        root = base / "rec"
        for i, day in enumerate(("2024-06-01", "2024-06-02", "2024-06-03")):
            part = base / f"run{i}"
            start = iso_to_ns(f"{day}T00:00:00Z")
            simulate_to_recording(
                part,
                start_ns=start,
                end_ns=start + 17 * 60 * NS_PER_S,
                seed=3 + i,
                config=Config(recording=RecordingConfig(fsync=False)),
            )
            for stream in (p for p in part.iterdir() if p.is_dir()):
                for d in stream.iterdir():
                    if d.is_dir():
                        shutil.copytree(d, root / stream.name / d.name)
                    else:  # provenance/<day>.json: what made the day comes along
                        (root / stream.name).mkdir(parents=True, exist_ok=True)
                        shutil.copy2(d, root / stream.name / d.name)

    return built_once(tmp_path_factory, "three-day-rec", build) / "rec"
