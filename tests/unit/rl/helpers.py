"""Shared helpers for the PPO tests: a small config, a toy-env training loop, rollouts."""

from __future__ import annotations

import numpy as np

from polyrl.rl.ppo import PPO, PPOConfig, Rollout
from polyrl.rl.toy import N_ACTIONS, OBS_DIM, ToyEnv, collect_rollout

SMALL = PPOConfig(buffer_steps=64, minibatch_size=64, n_epochs=3)


def train(ppo: PPO, env: ToyEnv, obs: np.ndarray, updates: int) -> np.ndarray:
    """``updates`` rollout+update rounds; returns the obs to continue from."""
    for _ in range(updates):
        rollout, obs = collect_rollout(ppo, env, obs, ppo.config.buffer_steps)
        ppo.update(rollout)
    return obs


def weights(ppo: PPO) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in ppo.tensors().items()}


def random_rollout(seed: int, t: int = 64, n: int = 4) -> Rollout:
    """A synthetic rollout with plausible log-probs (near-uniform policy)."""
    rng = np.random.default_rng(seed)
    return Rollout(
        obs=rng.standard_normal((t, n, OBS_DIM)).astype(np.float32),
        actions=rng.integers(0, N_ACTIONS, (t, n)),
        logp=np.log(rng.uniform(0.25, 0.4, (t, n))).astype(np.float32),
        values=rng.standard_normal((t, n)).astype(np.float32) * 0.1,
        rewards=rng.random((t, n)).astype(np.float32),
        dones=rng.random((t, n)) < 0.1,
        last_value=np.zeros(n, dtype=np.float32),
    )
