"""`polyrl sweep` end to end on a local Ray: a 4-trial sweep (2 configurations x 2 seeds),
killed mid-way and continued by the same command, then drawn by `polyrl report`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from .conftest import _workdir, run_cli

pytestmark = pytest.mark.integration

SPEC = """
name = "tiny"
[data]
replay = "2024-06-01"
val = "2024-06-02"
eval = "2024-06-03"
root = "{root}"
[set]
train = {{ updates = 2, envs = 2 }}
ppo = {{ buffer_steps = 32, n_epochs = 1, minibatch_size = 32 }}
[space]
"ppo.lr_actor" = [1e-4, 1e-3]
seeds = [0, 1]
[run]
max_concurrent = 1
"""


@pytest.mark.slow
def test_sweep_killed_then_continued_ends_with_its_table(
    three_day_recording: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(root=three_day_recording))
    runs = tmp_path / "runs"
    # The missing day caches are built by 2 local processes before the trials start.
    args = ["sweep", str(spec), "--runs", str(runs), "--cpus", "2", "--workers", "2"]
    sweep = runs / "tiny"
    # First attempt: killed (the whole process group, Ray's local processes included) as
    # soon as one trial has finished.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "polyrl", *args], cwd=_workdir(), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 240
    done: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        done = sorted(sweep.glob("trials/*/summary.json"))
        if done:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert done, "no trial finished before the deadline"
    assert (sweep / "sweep.toml").read_text() == spec.read_text()
    first = {p: p.stat().st_mtime_ns for p in done}
    assert not (sweep / "summary.json").exists()
    # The same command continues: finished trials are skipped, the rest run.
    res = run_cli(*args, timeout=600)
    assert res.returncode == 0, res.stderr
    skipped = int(res.stderr.split(" done, ")[0].rsplit(": ", 1)[1])
    assert skipped >= len(first) and skipped < 4
    for p, mtime in first.items():
        assert p.stat().st_mtime_ns == mtime, f"{p} was run again"
    # The folder contract: sweep.toml, trials/<trial>/ normal run folders, summary, table.
    trials = sorted(p.name for p in (sweep / "trials").iterdir())
    assert len(trials) == 4 and all(t.endswith(("-s0", "-s1")) for t in trials)
    for t in trials:
        s = json.loads((sweep / "trials" / t / "summary.json").read_text())
        assert s["kind"] == "train" and s["best_chosen_on"] == "val"
        assert s["splits"] == {"train": ["2024-06-01"], "val": ["2024-06-02"], "eval": []}
        m = pl.read_parquet(sweep / "trials" / t / "metrics.parquet")
        assert m["update"].to_list() == [1, 2] and "val/pnl_per_window" in m.columns
        assert (sweep / "trials" / t / "checkpoints" / "best" / "meta.json").exists()
        assert not (sweep / "trials" / t / "eval").exists()  # trials never see the test days
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["kind"] == "tune-sweep" and summary["chosen_on"] == "val"
    assert all(t["status"] == "finished" for t in summary["trials"])
    table = pl.read_parquet(sweep / "table.parquet")
    assert table.height == 2 and table["trials_done"].to_list() == [2, 2]
    assert (table["val_windows"] > 0).all()
    # Each interval holds its mean and resamples seeds x windows (2 seeds: twice the starts).
    for r in table.iter_rows(named=True):
        assert r["val_ci_low"] <= r["val_pnl_per_window"] <= r["val_ci_high"]
        assert r["val_clusters"] % 2 == 0 and r["val_clusters"] >= 2
    # Chosen on validation: the best mean; test figures for it alone.
    best = table.sort("val_pnl_per_window", descending=True)["config_id"][0]
    assert table.filter(pl.col("chosen"))["config_id"].to_list() == [best] == [summary["chosen"]]
    others = table.filter(~pl.col("chosen"))
    assert others["test_pnl_per_window"].null_count() == others.height
    chosen = table.filter(pl.col("chosen")).row(0, named=True)
    assert chosen["test_windows"] > 0 and chosen["test_pnl_per_window"] is not None
    assert sorted(p.name for p in (sweep / "test").glob("*-episodes.parquet")) == [
        f"{best}-s0-episodes.parquet", f"{best}-s1-episodes.parquet"]  # fmt: skip
    # Printed too.
    assert f"* {best}" in res.stdout and f"test of the chosen {best}" in res.stdout
    # polyrl report draws the sweep.
    rep = run_cli("report", str(sweep), "--out", str(tmp_path / "rep"))
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "rep" / "sweep.png").stat().st_size > 5000
    md = (tmp_path / "rep" / "report.md").read_text()
    assert best in md and "test" in md


def test_sweep_spec_errors_are_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text('[data]\nreplay = "2024-06-01"\nval = "2024-06-02"\n[space]\n'
                    '"ppo.lr_actr" = [0.1, 0.2]\n')  # fmt: skip
    res = run_cli("sweep", str(spec), "--runs", str(tmp_path / "runs"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert str(spec) in res.stderr and "lr_actr" in res.stderr
    spec.write_text(f'[data]\nreplay = "2024-06-0*"\nval = "2024-06-02"\nroot = "{tmp_path}"\n'
                    )  # fmt: skip
    res = run_cli("sweep", str(spec), "--runs", str(tmp_path / "runs"))
    assert res.returncode == 1 and "Traceback" not in res.stderr and "2024-06-0*" in res.stderr
    for extra, word in ((["--workers", "0"], "--workers"),
                        (["--workers", "2", "--ray", "127.0.0.1:6379"], "--ray")):  # fmt: skip
        res = run_cli("sweep", str(spec), "--runs", str(tmp_path / "runs"), *extra)
        assert res.returncode == 1 and "Traceback" not in res.stderr
        assert word in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_a_ray_address_nothing_answers_on_is_one_line(
    three_day_recording: Path, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as s:  # a free port, closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(root=three_day_recording))
    res = run_cli("sweep", str(spec), "--runs", str(tmp_path / "runs"), "--ray",
                  f"127.0.0.1:{port}", timeout=300)  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stderr
    errors = [x for x in res.stderr.splitlines() if "error" in x]
    assert len(errors) == 1 and f"--ray 127.0.0.1:{port}" in errors[0], res.stderr
    assert not list((tmp_path / "runs").glob("*/trials/*/summary.json"))


@pytest.mark.slow
def test_asha_stops_trials_and_a_rerun_does_not_start_them_again(
    three_day_recording: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "asha.toml"
    spec.write_text(
        SPEC.format(root=three_day_recording)
        .replace("updates = 2", "updates = 2, eval_every = 1")
        .replace("[1e-4, 1e-3]", "[1e-5, 1e-4, 1e-3, 3e-3]")
        .replace("seeds = [0, 1]", "seeds = [0]")
        + "[scheduler]\nasha = { grace = 1, reduction_factor = 2 }\n"
    )
    args = ["sweep", str(spec), "--runs", str(tmp_path / "runs"), "--name", "a", "--cpus", "1"]
    res = run_cli(*args, timeout=600)
    assert res.returncode == 0, res.stderr
    sweep = tmp_path / "runs" / "a"
    status = {t["name"]: t["status"] for t in json.loads((sweep / "summary.json").read_text())[
        "trials"]}  # fmt: skip
    stopped = [n for n, s in status.items() if s == "stopped"]
    assert stopped and "finished" in status.values() and "missing" not in status.values()
    for n in stopped:
        d = sweep / "trials" / n
        mark = json.loads((d / "stopped.json").read_text())
        assert mark["early_stopped"] and mark["update"] < 2
        assert not (d / "summary.json").exists()
        assert pl.read_parquet(d / "metrics.parquet")["update"].max() == mark["update"]
    # A stopped trial's best so far still counts in the table.
    assert (pl.read_parquet(sweep / "table.parquet")["trials_done"] == 1).all()
    again = run_cli(*args, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "4 done, 0 to run" in again.stderr
