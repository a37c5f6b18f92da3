"""Runs on the embedded sample, for the notebooks and for trying :mod:`polyrl.analysis` out.

Each function makes what it names once, through the same ``polyrl`` commands a user would
type (run in a child process), and hands back the existing one when it is already there, so a
notebook can be re-run top to bottom cheaply. The sample is two simulated hours over two
recording days: training uses the first day and every evaluation the second (held out).
``recordings`` is the directory the sample is kept under (``<recordings>/sample``; default:
the configured ``[recording] root``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from polyrl.errors import PolyrlError


def polyrl(*args: str) -> None:
    """Run one ``polyrl`` command as a user would type it, in a child process (this package
    sits below the command line and never imports it), printing its output here as it
    comes; a failure raises :class:`~polyrl.errors.PolyrlError` naming the command and its
    exit code."""
    cmd = [sys.executable, "-m", "polyrl", *args]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        assert p.stdout is not None
        for line in p.stdout:
            print(line, end="", flush=True)
    if p.returncode != 0:
        raise PolyrlError(f"polyrl {' '.join(args)} exited with code {p.returncode}")


def _root_set(recordings: Path | str | None) -> list[str]:
    return [] if recordings is None else ["--set", f"recording.root={json.dumps(str(recordings))}"]


def sample_recording(recordings: Path | str | None = None) -> Path:
    """The sample's recording root, generated on first use (well under a minute)."""
    from polyrl.sections import load_config
    from polyrl.sim.sample import ensure_sample

    overrides = {"recording": {"root": str(recordings)}} if recordings is not None else None
    return ensure_sample(load_config(None, overrides))


def sample_days(recordings: Path | str | None = None) -> tuple[str, str]:
    """The sample's (training day, held-out day)."""
    from polyrl.features.cache import recording_days

    days = recording_days(sample_recording(recordings), "*")
    return days[0], days[-1]


def sample_train_run(
    runs: Path | str,
    *,
    recordings: Path | str | None = None,
    updates: int = 4,
    seed: int = 0,
    name: str = "sample-train",
) -> Path:
    """``polyrl train --replay sample``: PPO on the sample's first day for ``updates``
    updates, evaluated with every baseline on the second; the run directory."""
    run_dir = Path(runs) / name
    if not (run_dir / "summary.json").exists():
        sample_recording(recordings)
        polyrl("train", "--replay", "sample", "--updates", str(updates), "--seed", str(seed),
               "--runs", str(runs), "--name", name, *_root_set(recordings))  # fmt: skip
    return run_dir


def sample_backtests(
    runs: Path | str,
    *,
    recordings: Path | str | None = None,
    dates: str | None = None,
    name: str = "sample-backtests",
) -> Path:
    """``polyrl backtest --strategy all`` on the sample's held-out day (or ``dates``): every
    baseline through the Engine; the directory holding one run per baseline."""
    out = Path(runs) / name
    if not (out / "comparison.json").exists():
        root = sample_recording(recordings)
        day = dates if dates is not None else sample_days(recordings)[1]
        polyrl("backtest", "--strategy", "all", "--replay", day, "--root", str(root),
               "--runs", str(runs), "--name", name)  # fmt: skip
    return out
