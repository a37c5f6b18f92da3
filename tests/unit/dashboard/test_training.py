"""The dashboard's view of a training run and of a sweep, from folders written as a real
training run writes them (the column names of `polyrl train`'s metrics.parquet)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl

from polyrl.dashboard.server import DashboardServer
from polyrl.dashboard.training import (
    CURVES,
    Files,
    curve,
    folder_kind,
    overrides,
    sweep_snapshot,
    train_snapshot,
)
from polyrl.runlog import atomic_write_bytes, atomic_write_parquet

COLUMNS = ("update", "steps", "losses/policy", "losses/value", "losses/entropy",
           "losses/approx_kl", "losses/clip_frac", "losses/explained_variance",
           "charts/learning_rate", "charts/learning_rate_critic", "charts/epochs",
           "charts/updates", "charts/episodes", "charts/fills", "charts/win_rate",
           "pnl/realized", "pnl/per_episode", "val/pnl", "val/pnl_per_window")  # fmt: skip
"""What `polyrl train --val` writes to metrics.parquet (read off a real run)."""


def _row(u: int, *, val: float | None = None, pnl: float = 0.0) -> dict[str, Any]:
    row: dict[str, Any] = {c: 0.01 * u for c in COLUMNS}
    per_window = None if val is None else val / 16
    row.update({"update": u, "steps": 256 * u, "losses/entropy": 1.1 - 0.01 * u,
                "pnl/realized": pnl, "pnl/per_episode": math.nan,
                "val/pnl": val, "val/pnl_per_window": per_window})  # fmt: skip
    return row


def _metrics(run: Path, rows: list[dict[str, Any]], *, updates: int | None = 10,
             ent: float = 0.1) -> None:  # fmt: skip
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(pl.DataFrame(rows, infer_schema_length=None), run / "metrics.parquet")
    timing = [{"update": r["update"], "seconds": 0.1, "rollout_seconds": 0.05,
               "charts/sps": 1000.0 + r["update"]} for r in rows]  # fmt: skip
    atomic_write_parquet(pl.DataFrame(timing), run / "timing.parquet")
    cfg = {"train": {"updates": updates, "envs": 2}, "ppo": {"ent_coef": ent, "gamma": 0.99}}
    atomic_write_bytes(run / "config.json", json.dumps(cfg).encode())


def _finish(run: Path, updates: int, kind: str = "train") -> None:
    summary = {"kind": kind, "updates": updates, "best_update": 2}
    atomic_write_bytes(run / "summary.json", json.dumps(summary).encode())


def test_the_three_kinds_of_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert folder_kind(empty) == "run"
    train = tmp_path / "train"
    _metrics(train, [_row(1)])
    assert folder_kind(train) == "train"
    ckpt = tmp_path / "ckpt"
    (ckpt / "checkpoints" / "last").mkdir(parents=True)
    assert folder_kind(ckpt) == "train"
    done = tmp_path / "done"
    done.mkdir()
    _finish(done, 3)
    assert folder_kind(done) == "train"
    backtest = tmp_path / "backtest"
    _metrics(backtest, [_row(1)])
    (backtest / "trades.parquet").write_bytes(b"")
    assert folder_kind(backtest) == "run"
    live = tmp_path / "live"
    _metrics(live, [_row(1)])
    (live / "live.json").write_text("{}")
    assert folder_kind(live) == "run"
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.toml").write_text("")
    assert folder_kind(sweep) == "sweep"


def test_a_growing_training_run_shows_each_new_update_and_validation(tmp_path: Path) -> None:
    run = tmp_path / "run"
    files = Files()
    _metrics(run, [_row(1), _row(2, pnl=-1.5)])
    s = train_snapshot(run, files, now_s=(run / "metrics.parquet").stat().st_mtime + 4)
    got = (s["kind"], s["state"], s["update"], s["updates"], s["steps"])
    assert got == ("train", "running", 2, 10, 512)
    assert s["idle_s"] == 4
    assert s["steps_per_s"] == 1002.0
    assert s["curves"]["pnl/realized"] == [[1, 0.0], [2, -1.5]]
    assert s["curves"]["losses/entropy"] == [[1, 1.09], [2, 1.08]]
    assert s["val"] == []
    # NaN (no episode ended in the rollout) is no point; every named curve is there.
    assert s["curves"]["pnl/per_episode"] == [] and set(s["curves"]) == set(CURVES)
    assert s["metrics"]["pnl/per_episode"] is None
    json.dumps(s, allow_nan=False)  # what the page gets is strict JSON
    _metrics(run, [_row(1), _row(2, pnl=-1.5), _row(3, val=12.5, pnl=2.0)])
    s = train_snapshot(run, files)
    assert s["update"] == 3 and len(s["curves"]["losses/policy"]) == 3
    assert s["val"] == [[3, 12.5]]
    _metrics(run, [_row(u, val=float(u) if u % 2 else None) for u in range(1, 6)], updates=5)
    _finish(run, 5)
    s = train_snapshot(run, files, now_s=1e12)
    got = (s["state"], s["update"], s["updates"], s["best_update"], s["idle_s"])
    assert got == ("finished", 5, 5, 2, None)
    assert s["val"] == [[1, 1.0], [3, 3.0], [5, 5.0]]


def test_missing_columns_give_no_curve_and_a_bad_read_keeps_the_last_good_one(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    rows = [{k: v for k, v in _row(u).items() if k not in ("losses/clip_frac", "val/pnl")}
            for u in (1, 2)]  # fmt: skip
    _metrics(run, rows)
    files = Files()
    s = train_snapshot(run, files)
    assert s["curves"]["losses/clip_frac"] == [] and s["val"] == []
    assert len(s["curves"]["losses/value"]) == 2
    # A metrics.parquet caught half-written (or locked) reads as the last good one.
    (run / "metrics.parquet").write_bytes(b"PAR1 not yet a whole file")
    s = train_snapshot(run, files)
    assert s["update"] == 2 and len(s["curves"]["losses/value"]) == 2
    # A fresh reader has nothing good to fall back on: no curves, no failure.
    assert train_snapshot(run, Files())["update"] is None
    assert curve(pl.DataFrame({"x": [1.0]}), "x") == []


def test_a_sweep_of_three_trials_gives_three_lines_and_what_each_varied(tmp_path: Path) -> None:
    sweep = tmp_path / "sw"
    sweep.mkdir()
    (sweep / "sweep.toml").write_text('[space]\n"ppo.ent_coef" = [0.0, 0.05, 0.1]\n')
    trials = sweep / "trials"
    _metrics(trials / "a", [_row(1, val=3.0, pnl=1.0), _row(2, val=4.0, pnl=2.0)], ent=0.0)
    _finish(trials / "a", 2)
    _metrics(trials / "b", [_row(1, val=-2.0, pnl=-1.0)], ent=0.05)
    (trials / "c").mkdir()  # created, nothing written yet
    atomic_write_bytes(trials / "c" / "config.json",
                       json.dumps({"train": {"updates": 10, "envs": 2},
                                   "ppo": {"ent_coef": 0.1, "gamma": 0.99}}).encode())  # fmt: skip
    s = sweep_snapshot(sweep)
    assert (s["kind"], s["state"]) == ("sweep", "running")
    by = {t["name"]: t for t in s["trials"]}
    assert list(by) == ["a", "b", "c"]
    assert [by[n]["state"] for n in "abc"] == ["finished", "running", "starting"]
    assert by["a"]["val"] == [[1, 3.0], [2, 4.0]] and by["a"]["last_val"] == 4.0
    assert by["b"]["pnl"] == [[1, -1.0]] and by["b"]["last_pnl"] == -1.0
    assert by["c"]["val"] == [] and by["c"]["last_val"] is None
    # Only what differs between the trials is an override (gamma and envs are shared).
    ent = [{"ppo.ent_coef": 0.0}, {"ppo.ent_coef": 0.05}, {"ppo.ent_coef": 0.1}]
    assert [by[n]["overrides"] for n in "abc"] == ent
    # The sweep ends: a trial with no summary of its own was stopped.
    atomic_write_bytes(sweep / "summary.json", json.dumps({"kind": "tune-sweep"}).encode())
    s = sweep_snapshot(sweep)
    assert s["state"] == "finished"
    assert [t["state"] for t in s["trials"]] == ["finished", "stopped", "stopped"]
    # The dashboard server of the folder serves the sweep's view.
    snap = DashboardServer.for_run(sweep).source()
    assert snap["kind"] == "sweep" and len(snap["trials"]) == 3


def test_overrides_name_keys_missing_from_a_trial() -> None:
    out = overrides({"a": {"ppo": {"lr": 1}}, "b": {"ppo": {"lr": 1, "clip": 0.3}}})
    assert out == {"a": {}, "b": {"ppo.clip": 0.3}}


def test_the_server_of_a_training_folder_serves_its_training_view(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    src = DashboardServer.for_run(run).source
    assert src()["kind"] == "run"  # nothing written yet
    _metrics(run, [_row(1, val=1.0)])
    snap = src()
    assert snap["kind"] == "train" and snap["val"] == [[1, 1.0]]


def test_a_sweeps_plan_names_each_trials_params_and_the_trials_not_started(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "sw"
    sweep.mkdir()
    (sweep / "sweep.toml").write_text("")
    plan = {"trials": {n: {"params": {"ppo.lr_actor": lr}, "seed": 0}
                       for n, lr in (("t0", 1e-4), ("t1", 3e-4), ("t2", 1e-3))}}  # fmt: skip
    atomic_write_bytes(sweep / "plan.json", json.dumps(plan).encode())
    _metrics(sweep / "trials" / "t0", [_row(1, val=1.0)])
    _finish(sweep / "trials" / "t0", 1)
    _metrics(sweep / "trials" / "t1", [_row(1, val=2.0)])
    atomic_write_bytes(sweep / "trials" / "t1" / "stopped.json", b'{"early_stopped": true}')
    s = sweep_snapshot(sweep)
    assert [(t["name"], t["state"]) for t in s["trials"]] == [
        ("t0", "finished"), ("t1", "stopped early"), ("t2", "pending")]  # fmt: skip
    assert [t["overrides"] for t in s["trials"]] == [
        {"ppo.lr_actor": lr} for lr in (1e-4, 3e-4, 1e-3)]  # fmt: skip
    assert s["trials"][2]["val"] == [] and s["trials"][2]["update"] is None
