"""Helpers for end-to-end tests: run the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``polyrl ARGS`` in a fresh interpreter; returns the completed process (text mode)."""
    env = dict(os.environ)
    env.setdefault("PYTHONHASHSEED", "0")
    return subprocess.run(
        [sys.executable, "-m", "polyrl", *args],
        cwd=cwd or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def sim_hour(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulated hour of all four assets (seed 11), shared by the tests that read it."""
    root = tmp_path_factory.mktemp("sim-hour") / "rec"
    res = run_cli("simulate", "--out", str(root), "--hours", "1", "--seed", "11")
    assert res.returncode == 0, res.stderr
    return root
