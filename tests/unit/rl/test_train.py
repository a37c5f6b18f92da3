"""Training over the replay env: determinism, exact resume, refusals."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import polars as pl
import pytest

from polyrl.errors import ConfigError, FeatureSetMismatch
from polyrl.features.engine import FeatureConfig
from polyrl.features.sets import feature_set
from polyrl.policies.ppo import PPOPolicy
from polyrl.rl.ppo import PPOConfig
from polyrl.rl.train import TrainConfig, resolve_splits, train
from polyrl.sections import Config

PPO_SMALL = PPOConfig(buffer_steps=128, minibatch_size=256, n_epochs=2)
CFG = Config()


def _train(root: Path, run: Path, updates: int, resume: Path | None = None, seed: int = 3):  # type: ignore[no-untyped-def]
    tc = TrainConfig(envs=4, updates=updates, checkpoint_every=2, seed=seed)
    return train(root=root, dates="*", eval_dates=None, config=CFG, tc=tc,
                 ppo_config=PPO_SMALL, run_dir=run, resume=resume)  # fmt: skip


def _weights(ckpt: Path) -> str:
    return hashlib.sha256((ckpt / "weights.safetensors").read_bytes()).hexdigest()


def test_same_seed_same_run_and_resume_is_exact(small_recording: Path, tmp_path: Path) -> None:
    a = _train(small_recording, tmp_path / "a", 4)
    b = _train(small_recording, tmp_path / "b", 4)
    # Determinism: identical metrics, episodes and weights.
    for f in ("metrics.parquet", "episodes.parquet"):
        assert (a.run_dir / f).read_bytes() == (b.run_dir / f).read_bytes(), f
    assert _weights(a.run_dir / "checkpoints" / "last") == _weights(
        b.run_dir / "checkpoints" / "last"
    )
    # Exact resume: 2 updates, then resume for 2 more == 4 straight.
    c = _train(small_recording, tmp_path / "c", 2)
    c2 = _train(small_recording, tmp_path / "c", 4, resume=c.run_dir / "checkpoints" / "last")
    assert c2.updates == 4
    # What ran in this call (its seconds measure only these): the last 2 updates of 4x128.
    assert (c2.updates_run, c2.steps_run, c2.steps) == (2, 1024, 2048)
    assert _weights(c2.run_dir / "checkpoints" / "last") == _weights(
        a.run_dir / "checkpoints" / "last"
    )
    ma, mc = (
        pl.read_parquet(a.run_dir / "metrics.parquet"),
        pl.read_parquet(c.run_dir / "metrics.parquet"),
    )
    assert ma.equals(mc)
    assert (a.run_dir / "checkpoints" / "update-00002" / "meta.json").exists()
    # A different seed trains differently.
    d = _train(small_recording, tmp_path / "d", 2, seed=4)
    assert _weights(d.run_dir / "checkpoints" / "last") != _weights(
        c.run_dir / "checkpoints" / "update-00002"
    )
    assert ma["steps"].to_list() == [512, 1024, 1536, 2048]


def test_checkpoints_are_refused_for_another_feature_set(
    small_recording: Path, tmp_path: Path
) -> None:
    r = _train(small_recording, tmp_path / "r", 1)
    with pytest.raises(FeatureSetMismatch, match="full"):
        PPOPolicy.load(r.run_dir / "checkpoints" / "last", feature_set("full"))
    pol = PPOPolicy.load(r.run_dir / "checkpoints" / "last", feature_set("seed18"))
    assert pol.fset.name == "seed18"
    full = dataclasses.replace(CFG, features=FeatureConfig(feature_set="full"))
    tc = TrainConfig(envs=4, updates=2, seed=3)
    with pytest.raises(FeatureSetMismatch):
        train(
            root=small_recording,
            dates="*",
            eval_dates=None,
            config=full,
            tc=tc,
            ppo_config=PPO_SMALL,
            run_dir=r.run_dir,
            resume=r.run_dir / "checkpoints" / "last",
        )
    tc8 = TrainConfig(envs=8, updates=2, seed=3)
    with pytest.raises(ConfigError, match="--envs 8"):
        train(
            root=small_recording,
            dates="*",
            eval_dates=None,
            config=CFG,
            tc=tc8,
            ppo_config=PPO_SMALL,
            run_dir=r.run_dir,
            resume=r.run_dir / "checkpoints" / "last",
        )


# --- splits that cannot leak -------------------------------------------------------------

D1, D2, D3 = "2024-06-01", "2024-06-02", "2024-06-03"
TINY = PPOConfig(buffer_steps=64, minibatch_size=64, n_epochs=1)


def test_overlapping_splits_are_refused_naming_days_and_options(
    three_day_recording: Path, tmp_path: Path
) -> None:
    root = three_day_recording
    # Globs are expanded against the recording's days before they are compared.
    assert resolve_splits(root, D1, "2024-06-02", "2024-06-03") == {
        "train": [D1], "val": [D2], "eval": [D3]}  # fmt: skip
    with pytest.raises(ConfigError, match=r"--replay and --eval share 2024-06-03 \("):
        resolve_splits(root, "2024-06-0[13]", None, "*-03")
    with pytest.raises(ConfigError, match=r"--val and --eval share 2024-06-02, 2024-06-03"):
        resolve_splits(root, D1, "2024-06-0[23]", "2024-06-02,2024-06-03")
    with pytest.raises(ConfigError) as e:
        resolve_splits(root, "*", "*-02", "*-03")
    assert "--replay and --val share 2024-06-02" in str(e.value)
    assert "--replay and --eval share 2024-06-03" in str(e.value)
    # train() refuses before it builds or writes anything.
    tc = TrainConfig(envs=2, updates=1, seed=3)
    with pytest.raises(ConfigError, match="--replay and --val share 2024-06-01"):
        train(root=root, dates=D1, val_dates="2024-06-0*", eval_dates=None, config=CFG,
              tc=tc, ppo_config=TINY, run_dir=tmp_path / "r")  # fmt: skip
    assert not (tmp_path / "r").exists()


def _split_run(root: Path, run: Path, val: str | None, ev: str | None):  # type: ignore[no-untyped-def]
    tc = TrainConfig(envs=2, updates=3, eval_every=1, checkpoint_every=10, seed=5)
    return train(root=root, dates=D1, val_dates=val, eval_dates=ev, config=CFG, tc=tc,
                 ppo_config=TINY, run_dir=run)  # fmt: skip


def test_best_is_chosen_on_validation_and_the_test_days_choose_nothing(
    three_day_recording: Path, tmp_path: Path
) -> None:
    root = three_day_recording
    a = _split_run(root, tmp_path / "a", D2, D3)
    s = a.summary
    assert s["splits"] == {"train": [D1], "val": [D2], "eval": [D3]}
    assert s["best_chosen_on"] == "val" and s["early_stopping"] is None
    m = pl.read_parquet(a.run_dir / "metrics.parquet")
    # Validation is scored every update; the test days are never looked at during training.
    assert m["val/pnl"].null_count() == 0 and m.height == 3
    assert not [c for c in m.columns if c.startswith("eval/")]
    vals = m["val/pnl"].to_list()
    assert s["best_update"] == 1 + vals.index(max(vals))
    assert s["best_val_pnl"] == max(vals)
    best_meta = (a.run_dir / "checkpoints" / "best" / "meta.json").read_text()
    assert f'"best_update": {s["best_update"]}' in best_meta
    # The same run with other test days, or none, chooses the same best: test PnL plays no part.
    b = _split_run(root, tmp_path / "b", D2, None)
    assert b.summary["best_update"] == s["best_update"]
    assert _weights(b.run_dir / "checkpoints" / "best") == _weights(
        a.run_dir / "checkpoints" / "best"
    )
    # The test evaluation covers every window of its day that has a tradable tick, flags counted.
    cov = s["eval_windows"]
    ep = pl.read_parquet(a.run_dir / "eval" / "ppo-episodes.parquet")
    assert cov["days"] == [D3] and cov["played"] == ep.height > 0
    assert cov["windows_in_days"] == cov["played"] + cov["not_tradable"]
    assert cov["missing_outcome"] == ep.filter(~pl.col("outcome").is_in(["Up", "Down"])).height
    assert s["eval_stats"]["ppo"]["total"]["windows"] >= 1
    # The test days score the checkpoint the run hands over: best, the same policy as the
    # validation run's best played on the test day.
    assert s["eval_checkpoint"] == "best"
    from polyrl.replay import load_days
    from polyrl.rl.env import evaluate
    from polyrl.rl.train import split_store

    best_pol = PPOPolicy.load(a.run_dir / "checkpoints" / "best", feature_set("seed18"))
    _, ep_best = evaluate(split_store(load_days(root, D3, CFG), exclude=None), best_pol,
                          fset=best_pol.fset, broker=CFG.broker,
                          latency_ns=CFG.engine.latency_ns,
                          min_notional=CFG.engine.min_notional)  # fmt: skip
    assert ep_best["pnl"].to_list() == ep["pnl"].to_list()
    assert json.loads((a.run_dir / "config.json").read_text())["splits"] == s["splits"]


def test_without_validation_there_is_no_best(three_day_recording: Path, tmp_path: Path) -> None:
    r = _split_run(three_day_recording, tmp_path / "r", None, D3)
    assert not (r.run_dir / "checkpoints" / "best").exists()
    assert (r.run_dir / "checkpoints" / "last" / "weights.safetensors").exists()
    assert r.summary["best_chosen_on"] is None and r.summary["best_update"] is None
    assert r.summary["eval_checkpoint"] == "last"
    assert r.summary["splits"] == {"train": [D1], "val": [], "eval": [D3]}
    assert "val/pnl" not in pl.read_parquet(r.run_dir / "metrics.parquet").columns
    # The summary names the data of every split's days: simulated, with each day's seed.
    data = r.summary["data"]
    assert sorted(data["days"]) == [D1, D3] and data["kinds"] == ["simulated"]
    assert [data["days"][d]["seed"] for d in (D1, D3)] == [3, 5]
    assert data["text"] == (
        f"{D1}: simulated, seed 3, default settings; {D3}: simulated, seed 5, default settings"
    )


def test_gap_windows_are_left_out_of_training_only(three_day_recording: Path) -> None:
    from polyrl.replay import load_days
    from polyrl.rl.train import split_store, window_coverage

    (cache,) = load_days(three_day_recording, D2, CFG)
    # Flag the first window that has tradable ticks as overlapping a recording gap.
    first = split_store([cache], exclude=None).info.row(0, named=True)
    w = cache.windows.with_columns(
        gap=pl.col("gap") | (pl.col("condition_id") == first["condition_id"])
    )
    flagged = dataclasses.replace(cache, windows=w)
    train_store = split_store([flagged], exclude=TrainConfig())
    test_store = split_store([flagged], exclude=None)
    assert test_store.n == train_store.n + 1
    assert first["condition_id"] not in train_store.info["condition_id"].to_list()
    cov = window_coverage(test_store)
    assert cov["gap"] == 1 and cov["played"] == test_store.n
    assert cov["window_set"] != window_coverage(train_store)["window_set"]
