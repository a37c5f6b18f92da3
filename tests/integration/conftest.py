"""Helpers for end-to-end tests: run the real CLI in a subprocess."""

from __future__ import annotations

import os
import shutil
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


_SIM_HOUR_ARGS = ("--hours", "1", "--seed", "11")
_EARLY: dict[str, tuple[subprocess.Popen, Path]] = {}


@pytest.fixture(scope="session", autouse=True)
def _sim_hour_early(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """When a selected test reads :func:`sim_hour` and the run opens with
    ``test_backtest_cli.py`` (as the whole suite does), the simulation starts with the session,
    in a child process on the otherwise idle second core, while those backtests (all
    computation, nothing timed) run; :func:`sim_hour` takes it over when it is first asked
    for. A recording holds no path, so the one made there is the one made in place. Any other
    run makes it in place when asked: a timed loopback test never shares the cores with it."""
    items = request.session.items
    opens_untimed = bool(items) and items[0].path.name == "test_backtest_cli.py"
    if opens_untimed and any("sim_hour" in item.fixturenames for item in items):
        tmp = tmp_path_factory.mktemp("sim-hour-early")
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        with open(tmp / "output.txt", "w") as log:  # a file, not a pipe nobody reads yet
            proc = subprocess.Popen(
                [sys.executable, "-m", "polyrl", "simulate", "--out", str(tmp / "rec"),
                 *_SIM_HOUR_ARGS],
                cwd=_workdir(), env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        _EARLY["sim-hour"] = (proc, tmp)
    yield
    for proc, _ in _EARLY.values():  # never asked for (a test deselected at run time)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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
        if "sim-hour" in _EARLY:
            proc, tmp = _EARLY.pop("sim-hour")
            proc.wait(timeout=600)
            assert proc.returncode == 0, (tmp / "output.txt").read_text()
            shutil.move(tmp / "rec", d / "rec")
            return
        res = run_cli("simulate", "--out", str(d / "rec"), *_SIM_HOUR_ARGS)
        assert res.returncode == 0, res.stderr

    return build_once("sim-hour", build) / "rec"
