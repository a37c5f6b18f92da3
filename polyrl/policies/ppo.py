"""The trained PPO agent as a Policy (backtests, evaluation, live paper trading)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from polyrl.features.sets import FeatureSet
from polyrl.policies.base import HOLD


class PPOPolicy:
    """Greedy (argmax) actions of a PPO agent; HOLD where the market may not trade."""

    def __init__(self, ppo, fset: FeatureSet, name: str = "ppo") -> None:
        self.ppo = ppo
        self.fset = fset
        self.name = name

    @classmethod
    def load(cls, checkpoint: Path, fset: FeatureSet) -> PPOPolicy:
        """A checkpoint built for ``fset`` (another feature set or version is refused)."""
        from polyrl.rl.checkpoint import load_checkpoint

        ppo, _ = load_checkpoint(
            checkpoint, expect_obs_dim=fset.dim, expect_feature_set=(fset.name, fset.version)
        )
        return cls(ppo, fset, name=f"ppo:{Path(checkpoint).name}")

    def act(self, obs: np.ndarray, tradable: np.ndarray) -> np.ndarray:
        a = np.asarray(self.ppo.act_deterministic(obs), dtype=np.int64)
        return np.where(tradable, a, HOLD)
