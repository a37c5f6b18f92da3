"""`polyrl train` end to end through the real CLI: the README's main job on the sample."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

import polyrl.sections  # noqa: F401 - the small_recording fixture builds a Config

from .conftest import run_cli

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_train_on_the_sample_then_resume_and_backtest_the_checkpoint(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    res = run_cli("train", "--replay", "sample", "--updates", "3", "--runs", str(runs),
                  "--name", "t", timeout=900)  # fmt: skip
    assert res.returncode == 0, res.stderr
    run = runs / "t"
    # The held-out day, side by side with every baseline.
    for name in ("ppo", "momentum", "mean_revert", "fade_spike", "random", "gating"):
        assert f"\n{name:<12} total" in res.stdout, name
    assert "held-out evaluation (2024-06-02)" in res.stdout
    m = pl.read_parquet(run / "metrics.parquet")
    assert m["update"].to_list() == [1, 2, 3]
    for col in ("losses/policy", "losses/value", "losses/entropy", "losses/approx_kl",
                "losses/clip_frac", "losses/explained_variance", "charts/learning_rate",
                "charts/episodes", "charts/fills", "charts/win_rate", "pnl/realized"):  # fmt: skip
        assert col in m.columns, col
    assert "charts/sps" in pl.read_parquet(run / "timing.parquet").columns
    summary = json.loads((run / "summary.json").read_text())
    assert summary["eval_stats"]["ppo"]["total"]["windows"] > 0
    # The embedded sample is simulated data, and the run says so with the sample's seed.
    assert summary["data"]["kinds"] == ["simulated"]
    assert summary["data"]["text"].startswith("simulated, seed 20240601, ")
    assert f"data: {summary['data']['text']}" in res.stdout
    # The sample's split: train on its first day, test on its second, no validation days, so
    # no checkpoint is chosen by held-out data: the policy is `last`, and the output says so.
    assert summary["splits"] == {"train": ["2024-06-01"], "val": [], "eval": ["2024-06-02"]}
    assert summary["best_chosen_on"] is None
    assert (run / "checkpoints" / "last" / "weights.safetensors").exists()
    assert not (run / "checkpoints" / "best").exists()
    assert "no checkpoints/best; the policy is checkpoints/last" in res.stdout
    # Resume continues the same run to more updates.
    res = run_cli("train", "--replay", "sample", "--updates", "4", "--resume",
                  str(run / "checkpoints" / "last"), timeout=900)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert pl.read_parquet(run / "metrics.parquet")["update"].to_list() == [1, 2, 3, 4]


def test_train_errors_are_clear(tmp_path: Path) -> None:
    res = run_cli("train", "--replay", "sample", "--updates", "2", "--steps", "100")
    assert res.returncode == 1 and "--updates and --steps" in res.stderr
    res = run_cli("train", "--replay", "1999-*", "--root", str(tmp_path))
    assert res.returncode == 1 and "1999-*" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("train", "--replay", "sample", "--set", "ppo.lr_actr=0.1")
    assert res.returncode == 1 and "ppo.lr_actr" in res.stderr and "Traceback" not in res.stderr
    bad = tmp_path / "ckpt"
    bad.mkdir()
    res = run_cli("train", "--replay", "sample", "--resume", str(bad))
    assert res.returncode == 1 and str(bad) in res.stderr and "Traceback" not in res.stderr
    # --root names the recording a date glob reads; the sample has its own: refused, not ignored.
    res = run_cli("train", "--replay", "sample", "--root", str(tmp_path))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "--root" in res.stderr and "--replay sample" in res.stderr
    # Training, validation and test days overlapping: refused, naming the days and options,
    # before anything is built.
    res = run_cli("train", "--replay", "sample", "--eval", "2024-06-0*", "--runs",
                  str(tmp_path / "runs"))  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "--replay and --eval share 2024-06-01 (" in res.stderr
    res = run_cli("train", "--replay", "sample", "--val", "2024-06-02", "--eval", "*-02",
                  "--runs", str(tmp_path / "runs"))  # fmt: skip
    assert res.returncode == 1 and "--val and --eval share 2024-06-02" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


# The smallest training that still exercises checkpoints and resume: 2 envs, 64-step buffers.
_SMALL = ("--envs", "2", "--set", "ppo.buffer_steps=64", "--set", "ppo.minibatch_size=64",
          "--set", "ppo.n_epochs=1")  # fmt: skip


@pytest.mark.slow
def test_ctrl_c_prints_the_command_that_resumes_exactly(
    small_recording: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    args = ["train", "--replay", "2024-06-01", "--root", str(small_recording),
            "--updates", "100", *_SMALL, "--runs", str(runs)]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "polyrl", *args, "--name", "t"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )  # fmt: skip
    meta = runs / "t" / "checkpoints" / "last" / "meta.json"
    deadline = time.monotonic() + 300
    while not meta.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    stopped_at = json.loads(meta.read_text())["meta"]["update"]
    assert 1 <= stopped_at < 100, stopped_at
    lines = [ln for ln in err.splitlines() if "resume with: " in ln]
    assert len(lines) == 1, err
    command = shlex.split(lines[0].split("resume with: ", 1)[1])
    assert command[:3] == [sys.executable, "-m", "polyrl"]
    assert command[-2:] == ["--resume", str(runs / "t" / "checkpoints" / "last")]
    # The stopped run is not overwritten by starting it again without --resume.
    res = run_cli(*args, "--name", "t")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"--resume {runs / 't' / 'checkpoints' / 'last'}" in res.stderr
    # The printed command, run as printed, finishes the run ...
    res = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONHASHSEED": "0"})  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads((runs / "t" / "summary.json").read_text())["updates"] == 100
    # ... and its speed counts only the updates this process ran (64 steps x 2 envs each).
    m = re.search(r"(\d+) updates \(to update 100\), ([\d,]+) steps in ([\d.]+) s "
                  r"\(([\d,]+) steps/s", res.stderr)  # fmt: skip
    assert m is not None, res.stderr
    ran, n_steps, secs, sps = (
        int(m[1]),
        int(m[2].replace(",", "")),
        float(m[3]),
        int(m[4].replace(",", "")),
    )
    assert ran == 100 - stopped_at and n_steps == ran * 128
    assert sps == pytest.approx(n_steps / secs, rel=0.1, abs=2)
    # It ends with the next commands, with the real run path.
    assert res.stdout.splitlines()[-3:] == [
        "next:",
        f"  {sys.executable} -m polyrl report {runs / 't'}",
        f"  {sys.executable} -m polyrl live --load {runs / 't' / 'checkpoints' / 'last'}",
    ]
    # Exact: the interrupted and resumed run equals the same run made straight through.
    res = run_cli(*args, "--name", "straight")
    assert res.returncode == 0, res.stderr
    for f in ("metrics.parquet", "episodes.parquet", "checkpoints/last/weights.safetensors"):
        assert (runs / "t" / f).read_bytes() == (runs / "straight" / f).read_bytes(), f
