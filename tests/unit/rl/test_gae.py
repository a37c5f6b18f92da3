"""GAE: the vectorised implementation against the plain loop, and the done convention."""

from __future__ import annotations

import numpy as np
import pytest

from polyrl.rl.ppo import compute_gae


def compute_gae_loop(
    rewards: np.ndarray,
    values: np.ndarray,
    dones: np.ndarray,
    last_value: np.ndarray,
    *,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Reference GAE, one env and one step at a time in plain Python."""
    n_steps, n_envs = np.shape(rewards)
    advantages = np.zeros((n_steps, n_envs))
    for n in range(n_envs):
        gae = 0.0
        for t in reversed(range(n_steps)):
            next_v = float(last_value[n]) if t == n_steps - 1 else float(values[t + 1][n])
            keep = 0.0 if dones[t][n] else 1.0
            delta = float(rewards[t][n]) + gamma * next_v * keep - float(values[t][n])
            gae = delta + gamma * gae_lambda * keep * gae
            advantages[t, n] = gae
    return advantages, advantages + np.asarray(values, dtype=np.float64)


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_gae_equals_loop_with_random_dones(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t, n = int(rng.integers(1, 40)), int(rng.integers(1, 7))
    rewards = rng.standard_normal((t, n)).astype(np.float32)
    values = rng.standard_normal((t, n)).astype(np.float32)
    dones = rng.random((t, n)) < 0.2
    last_value = rng.standard_normal(n).astype(np.float32)
    gamma, lam = float(rng.uniform(0.8, 1.0)), float(rng.uniform(0.0, 1.0))
    adv, ret = compute_gae(rewards, values, dones, last_value, gamma=gamma, gae_lambda=lam)
    adv_ref, ret_ref = compute_gae_loop(
        rewards, values, dones, last_value, gamma=gamma, gae_lambda=lam
    )
    assert adv.shape == (t, n)
    np.testing.assert_allclose(adv, adv_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ret, ret_ref, rtol=1e-12, atol=1e-12)


def test_gae_by_hand_one_env() -> None:
    # Three steps, episode ends with step 1: step 1 must not see values[2] or last_value.
    rewards = np.array([[1.0], [2.0], [3.0]])
    values = np.array([[0.5], [0.25], [0.125]])
    dones = np.array([[False], [True], [False]])
    last_value = np.array([4.0])
    g, lam = 0.9, 0.5
    d2 = 3.0 + g * 4.0 - 0.125
    d1 = 2.0 - 0.25  # terminal: no bootstrap
    d0 = 1.0 + g * 0.25 - 0.5
    a2, a1 = d2, d1
    a0 = d0 + g * lam * a1
    adv, ret = compute_gae(rewards, values, dones, last_value, gamma=g, gae_lambda=lam)
    np.testing.assert_allclose(adv[:, 0], [a0, a1, a2])
    np.testing.assert_allclose(ret[:, 0], [a0 + 0.5, a1 + 0.25, a2 + 0.125])


def test_lambda_one_gives_discounted_returns() -> None:
    rewards = np.ones((5, 1))
    values = np.zeros((5, 1))
    dones = np.zeros((5, 1), dtype=bool)
    _, ret = compute_gae(rewards, values, dones, np.zeros(1), gamma=0.5, gae_lambda=1.0)
    np.testing.assert_allclose(ret[:, 0], [1.9375, 1.875, 1.75, 1.5, 1.0])
