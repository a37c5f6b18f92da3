"""Adam with per-network clipping against a float64 reference, and its checkpoint names."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from polyrl.rl.adam import (
    adam_corrections,
    adam_update,
    load_optimizer_tensors,
    optimizer_tensors,
)
from polyrl.rl.network import Layout


def test_adam_update_clips_each_network_and_uses_its_learning_rate() -> None:
    rng = np.random.default_rng(3)
    p, max_norm, eps, lrs = 50, 0.5, 1e-8, np.array([[1e-3], [3e-2]])
    theta = rng.standard_normal((2, p))
    m = np.zeros((2, p))
    v = np.zeros((2, p))
    t_mx, m_mx, v_mx = (mx.array(a.astype(np.float32)) for a in (theta, m, v))
    for step in range(1, 6):
        # Actor gradient far above the clip norm, critic's below it.
        grad = rng.standard_normal((2, p)) * np.array([[1.0], [0.01]])
        norm = np.sqrt((grad**2).sum(axis=1, keepdims=True))
        g = grad * np.minimum(max_norm / (norm + 1e-6), 1.0)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        m_hat, v_hat = m / (1 - 0.9**step), v / (1 - 0.999**step)
        theta = theta - lrs * m_hat / (np.sqrt(v_hat) + eps)
        c1, c2 = adam_corrections(step)
        t_mx, m_mx, v_mx = adam_update(
            t_mx, m_mx, v_mx, mx.array(grad.astype(np.float32)),
            lr=mx.array(lrs.astype(np.float32)), c1=mx.array(c1), c2=mx.array(c2),
            max_grad_norm=max_norm, eps=eps,
        )  # fmt: skip
        np.testing.assert_allclose(np.array(t_mx), theta, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.array(v_mx), v, rtol=1e-4, atol=1e-12)


def test_optimizer_tensors_round_trip_and_refuse_unequal_steps() -> None:
    lay = Layout(obs_dim=5, hidden=8, n_actions=3)
    rng = np.random.default_rng(0)
    # Moments as Adam leaves them: zero on the bias unit's entries and the critic head's
    # unused columns (the only entries the names cannot carry).
    named = {
        k: rng.standard_normal(v.shape).astype(np.float32)
        for k, v in lay.named(np.zeros((2, lay.size), np.float32)).items()
    }
    m = lay.flatten(named, moments=True)
    v = np.abs(m)
    out = optimizer_tensors(lay, m, v, step=7, lrs=(1e-4, 3e-4))
    assert out["opt_actor.layers.0.weight.m"].shape == (8, 5)
    assert out["opt_critic.layers.2.bias.v"].shape == (1,)
    assert out["opt_critic.step"].dtype == np.uint64
    m2, v2, step, lrs = load_optimizer_tensors(lay, out, list(out))
    np.testing.assert_array_equal(m2, m)
    np.testing.assert_array_equal(v2, v)
    assert step == 7
    assert lrs == (float(np.float32(1e-4)), float(np.float32(3e-4)))
    out["opt_critic.step"] = np.array(8, dtype=np.uint64)
    with pytest.raises(ValueError, match="different steps"):
        load_optimizer_tensors(lay, out, list(out))
