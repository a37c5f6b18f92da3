"""Helpers for end-to-end tests: run the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_WORKDIR: list[Path] = []


@pytest.fixture(scope="session", autouse=True)
def cli_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory the CLI runs in: its relative defaults (``recordings/``, where the
    embedded sample is built, ``runs/``) land here, shared by the session, never in the
    repository."""
    if not _WORKDIR:
        _WORKDIR.append(tmp_path_factory.mktemp("cli-cwd"))
    return _WORKDIR[0]


def _workdir() -> Path:
    if not _WORKDIR:  # called before the session fixture ran
        _WORKDIR.append(Path(tempfile.mkdtemp(prefix="polyrl-cli-cwd-")))
    return _WORKDIR[0]


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``polyrl ARGS`` in a fresh interpreter, in :func:`cli_workdir` unless ``cwd`` is
    given; returns the completed process (text mode)."""
    env = dict(os.environ)
    env.setdefault("PYTHONHASHSEED", "0")
    return subprocess.run(
        [sys.executable, "-m", "polyrl", *args],
        cwd=cwd or _workdir(),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def sim_hour(build_once) -> Path:  # type: ignore[no-untyped-def]
    """One simulated hour of all four assets (seed 11), shared by the tests that read it."""

    def build(d: Path) -> None:
        res = run_cli("simulate", "--out", str(d / "rec"), "--hours", "1", "--seed", "11")
        assert res.returncode == 0, res.stderr

    return build_once("sim-hour", build) / "rec"
