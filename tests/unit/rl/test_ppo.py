"""PPO core: config checks, compiled == eager, determinism, forward paths, learning."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from polyrl.config import from_mapping
from polyrl.rl.network import fast_tanh
from polyrl.rl.ppo import PPO, PPOConfig, Rollout
from polyrl.rl.toy import N_ACTIONS, OBS_DIM, ToyEnv

from .helpers import SMALL, random_rollout, train, weights

REPO = Path(__file__).resolve().parents[3]


# -- config -----------------------------------------------------------------------------------


def test_defaults_are_the_seeds() -> None:
    c = PPOConfig()
    assert (c.lr_actor, c.lr_critic, c.gamma, c.gae_lambda) == (1e-4, 3e-4, 0.99, 0.95)
    assert (c.clip_coef, c.ent_coef, c.vf_coef) == (0.2, 0.10, 0.5)
    assert (c.n_epochs, c.minibatch_size, c.buffer_steps, c.hidden) == (10, 64, 512, 128)
    assert c.max_grad_norm == 0.5 and c.norm_adv and c.norm_obs and not c.anneal_lr
    assert c.target_kl is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lr_actor", 0.0),
        ("lr_critic", -1.0),
        ("gamma", 1.5),
        ("gae_lambda", -0.1),
        ("clip_coef", 0.0),
        ("ent_coef", -0.1),
        ("n_epochs", 0),
        ("minibatch_size", 0),
        ("buffer_steps", 0),
        ("hidden", 0),
        ("max_grad_norm", 0.0),
        ("target_kl", 0.0),
    ],
)
def test_config_range_checks_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        PPOConfig(**{field: value})


def test_anneal_requires_a_horizon() -> None:
    with pytest.raises(ValueError, match="anneal_updates"):
        PPOConfig(anneal_lr=True)


def test_configs_ppo_toml_matches_the_defaults() -> None:
    with open(REPO / "configs" / "ppo.toml", "rb") as fh:
        data = tomllib.load(fh)
    assert set(data) == {"ppo"}
    cfg = from_mapping(PPOConfig, data["ppo"], where="ppo")
    assert cfg == PPOConfig()
    documented = set(data["ppo"]) | {"target_kl"}  # target_kl is commented out (TOML has no null)
    assert documented == {f.name for f in dataclasses.fields(PPOConfig)}


# -- network pieces ---------------------------------------------------------------------------


def test_fast_tanh_matches_tanh_and_its_gradient() -> None:
    x = np.linspace(-12, 12, 20001, dtype=np.float32)
    y = np.array(mx.compile(fast_tanh)(mx.array(x)))
    np.testing.assert_allclose(y, np.tanh(x.astype(np.float64)), atol=2e-7)
    g = np.array(mx.grad(lambda v: fast_tanh(v).sum())(mx.array(x)))
    np.testing.assert_allclose(g, 1.0 - np.tanh(x.astype(np.float64)) ** 2, atol=1e-6)


def test_initial_weights_are_scaled_orthogonal() -> None:
    w = weights(PPO(OBS_DIM, N_ACTIONS, SMALL, seed=0))
    w_in = w["model.actor.layers.0.weight"]  # [128, 18]: orthonormal columns
    np.testing.assert_allclose(w_in.T @ w_in, 2.0 * np.eye(OBS_DIM), atol=1e-5)
    w_hid = w["model.critic.layers.1.weight"]
    np.testing.assert_allclose(w_hid @ w_hid.T, 2.0 * np.eye(128), atol=1e-5)
    head = w["model.actor.layers.2.weight"]  # [3, 128]: orthonormal rows * 0.01
    np.testing.assert_allclose(head @ head.T, 1e-4 * np.eye(N_ACTIONS), atol=1e-9)
    value_head = w["model.critic.layers.2.weight"]  # [1, 128]: a unit row
    np.testing.assert_allclose(value_head @ value_head.T, [[1.0]], atol=1e-6)
    assert not w["model.critic.layers.0.bias"].any()


def test_numpy_forward_equals_mlx_forward() -> None:
    ppo = PPO(OBS_DIM, N_ACTIONS, SMALL, seed=3)
    env = ToyEnv(4, seed=3)
    train(ppo, env, env.reset(), 2)  # non-trivial weights and normaliser statistics
    obs = np.random.default_rng(5).standard_normal((256, OBS_DIM)).astype(np.float32) * 3
    logits_mx, value_mx = ppo.forward(obs)
    logits_np, value_np = ppo.forward_numpy(obs)
    np.testing.assert_allclose(logits_np, logits_mx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(value_np, value_mx, rtol=1e-5, atol=1e-5)
    greedy = np.argmax(logits_mx, axis=-1)
    np.testing.assert_array_equal(ppo.act_deterministic(obs), greedy)  # MLX path
    small = ppo.NUMPY_MAX_BATCH
    for lo in range(0, len(obs), small):  # numpy path, batch by batch
        np.testing.assert_array_equal(
            ppo.act_deterministic(obs[lo : lo + small]), greedy[lo : lo + small]
        )
    np.testing.assert_allclose(ppo.value(obs), value_mx)


def test_act_returns_consistent_logp_and_values() -> None:
    ppo = PPO(OBS_DIM, N_ACTIONS, SMALL, seed=1)
    obs = np.random.default_rng(0).standard_normal((64, OBS_DIM)).astype(np.float32)
    actions, logp, value = ppo.act(obs)
    assert actions.shape == logp.shape == value.shape == (64,)
    assert actions.dtype == np.int64 and set(actions) <= {0, 1, 2}
    logits, v = ppo.forward(obs)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(logp, log_probs[np.arange(64), actions], atol=1e-5)
    np.testing.assert_allclose(value, v, atol=1e-6)
    # The key advances: a second call with the same obs samples differently.
    assert not np.array_equal(actions, ppo.act(obs)[0])


def test_act_rejects_wrong_width() -> None:
    ppo = PPO(OBS_DIM, N_ACTIONS, SMALL, seed=1)
    with pytest.raises(ValueError, match="18"):
        ppo.act(np.zeros((4, 17), dtype=np.float32))


def test_rollout_checks_shapes() -> None:
    r = random_rollout(0)
    with pytest.raises(ValueError, match="rewards"):
        dataclasses.replace(r, rewards=r.rewards[:-1])
    with pytest.raises(ValueError, match="last_value"):
        dataclasses.replace(r, last_value=np.zeros(3))


# -- normaliser -------------------------------------------------------------------------------


def test_update_folds_rollout_into_normaliser_after_training() -> None:
    ppo = PPO(OBS_DIM, N_ACTIONS, SMALL, seed=0)
    r = random_rollout(1)
    ppo.update(r)
    np.testing.assert_allclose(
        ppo.normaliser.mean, r.obs.reshape(-1, OBS_DIM).astype(np.float64).mean(0)
    )
    assert ppo.normaliser.count == r.obs.shape[0] * r.obs.shape[1]


# -- update -----------------------------------------------------------------------------------


def test_compiled_update_equals_eager_update() -> None:
    compiled = PPO(OBS_DIM, N_ACTIONS, SMALL, seed=7, compile=True)
    eager = PPO(OBS_DIM, N_ACTIONS, SMALL, seed=7, compile=False)
    before = weights(compiled)
    r = random_rollout(2)
    m_c = compiled.update(r)
    m_e = eager.update(r)
    w_c, w_e = weights(compiled), weights(eager)
    assert any(not np.array_equal(before[k], w_c[k]) for k in before if k.startswith("model."))
    for k in w_c:
        np.testing.assert_allclose(w_c[k], w_e[k], rtol=1e-4, atol=1e-6, err_msg=k)
    for k in m_c:
        np.testing.assert_allclose(m_c[k], m_e[k], rtol=1e-3, atol=1e-6, err_msg=k)


def test_update_metrics() -> None:
    ppo = PPO(OBS_DIM, N_ACTIONS, SMALL, seed=0)
    m = ppo.update(random_rollout(3))
    expected = {
        "losses/policy",
        "losses/value",
        "losses/entropy",
        "losses/approx_kl",
        "losses/clip_frac",
        "losses/explained_variance",
        "charts/learning_rate",
        "charts/learning_rate_critic",
        "charts/epochs",
        "charts/updates",
    }
    assert expected <= set(m)
    assert abs(m["losses/entropy"] - np.log(3)) < 0.01  # near-uniform initial policy
    assert m["losses/approx_kl"] >= 0.0 and 0.0 <= m["losses/clip_frac"] <= 1.0
    assert m["charts/learning_rate"] == pytest.approx(1e-4)
    assert m["charts/epochs"] == SMALL.n_epochs and m["charts/updates"] == 1.0


def test_target_kl_stops_epochs_early() -> None:
    cfg = dataclasses.replace(SMALL, n_epochs=8, target_kl=1e-9, lr_actor=1e-3)
    ppo = PPO(OBS_DIM, N_ACTIONS, cfg, seed=0)
    m = ppo.update(random_rollout(4))
    assert m["charts/epochs"] == 1.0


def test_learning_rate_anneals() -> None:
    cfg = dataclasses.replace(SMALL, anneal_lr=True, anneal_updates=4)
    ppo = PPO(OBS_DIM, N_ACTIONS, cfg, seed=0)
    lrs = [ppo.update(random_rollout(i))["charts/learning_rate"] for i in range(3)]
    np.testing.assert_allclose(lrs, [1e-4, 0.75e-4, 0.5e-4])
    assert float(ppo.tensors()["opt_critic.learning_rate"]) == pytest.approx(0.5 * 3e-4)


def test_minibatch_larger_than_rollout_is_an_error() -> None:
    ppo = PPO(OBS_DIM, N_ACTIONS, dataclasses.replace(SMALL, minibatch_size=1024), seed=0)
    with pytest.raises(ValueError, match="minibatch_size"):
        ppo.update(random_rollout(0))


# -- determinism ------------------------------------------------------------------------------


def _run(seed: int, updates: int = 2) -> dict[str, np.ndarray]:
    ppo = PPO(OBS_DIM, N_ACTIONS, SMALL, seed=seed)
    env = ToyEnv(4, seed=0)
    train(ppo, env, env.reset(), updates)
    return weights(ppo)


def test_same_seed_bit_identical_different_seed_differs() -> None:
    a, b, c = _run(11), _run(11), _run(12)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert not np.array_equal(a["model.actor.layers.0.weight"], c["model.actor.layers.0.weight"])


# -- learning ---------------------------------------------------------------------------------


def test_policy_learns_the_rewarded_action() -> None:
    cfg = PPOConfig(buffer_steps=128, minibatch_size=64, n_epochs=10)
    ppo = PPO(OBS_DIM, N_ACTIONS, cfg, seed=0)
    env = ToyEnv(4, seed=1)
    test = np.random.default_rng(123).standard_normal((4000, OBS_DIM)).astype(np.float32)

    def accuracy() -> float:
        return float(np.mean(ppo.act_deterministic(test) == env.target(test)))

    start = accuracy()
    obs = env.reset()
    train(ppo, env, obs, 4)
    end = accuracy()
    assert start < 0.5  # an untrained policy is near chance (1/3)
    assert end > 0.7, f"accuracy {start:.3f} -> {end:.3f}"


def test_rollout_dataclass_is_frozen() -> None:
    r = random_rollout(0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.obs = r.obs  # type: ignore[misc]
    assert isinstance(r, Rollout)


_DIGEST = """
import hashlib, numpy as np
from polyrl.rl.ppo import PPO, PPOConfig
from polyrl.rl.toy import ToyEnv, collect_rollout
ppo = PPO(18, 3, PPOConfig(buffer_steps=64, n_epochs=3), seed={seed})
env = ToyEnv(4, seed=0); obs = env.reset()
for _ in range(2):
    r, obs = collect_rollout(ppo, env, obs, 64); ppo.update(r)
h = hashlib.sha256()
for k, v in sorted(ppo.tensors().items()):
    h.update(k.encode()); h.update(np.array(v).tobytes())
print(h.hexdigest())
"""


def test_two_processes_same_seed_give_identical_weights() -> None:
    def digest(seed: int) -> str:
        code = _DIGEST.format(seed=seed)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    first, second = digest(21), digest(21)
    assert len(first) == 64 and first == second
    assert digest(22) != first
