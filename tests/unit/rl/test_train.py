"""Training over the replay env: determinism, exact resume, refusals."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import polars as pl
import pytest

from polyrl.config import Config
from polyrl.errors import ConfigError, FeatureSetMismatch
from polyrl.features.engine import FeatureConfig
from polyrl.features.sets import feature_set
from polyrl.policies.ppo import PPOPolicy
from polyrl.rl.ppo import PPOConfig
from polyrl.rl.train import TrainConfig, train

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
