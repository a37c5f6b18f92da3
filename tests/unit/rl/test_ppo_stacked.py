"""The stacked actor-critic, its flat Adam and numpy sampling hold the plain PPO's meaning.

The reference here is PPO as the seed wrote it: two separate MLPs with biases, ``mx.tanh``,
``logsumexp`` and ``take_along_axis``, the five means taken one by one, and for Adam a
float64 numpy transcription of clip-then-bias-corrected-Adam per network.
"""

from __future__ import annotations

import dataclasses

import mlx.core as mx
import numpy as np
import pytest

from polyrl.rl.network import BIAS_UNIT_INPUT, ActorCritic, Layout, augment, fast_tanh
from polyrl.rl.ppo import PPO, PPOConfig, ppo_loss
from polyrl.rl.toy import N_ACTIONS, OBS_DIM, ToyEnv

from .helpers import SMALL, random_rollout, train

NETS = ("actor", "critic")


def _reference_loss(
    named: dict[str, mx.array],
    obs: mx.array,
    actions: mx.array,
    old_logp: mx.array,
    adv: mx.array,
    returns: mx.array,
    old_values: mx.array,
    cfg: PPOConfig,
) -> tuple[mx.array, mx.array]:
    """The seed's PPO loss over two separate MLPs (weights [out, in], biases [out])."""

    def mlp(net: str, x: mx.array) -> mx.array:
        for i in range(3):
            x = x @ named[f"{net}.layers.{i}.weight"].T + named[f"{net}.layers.{i}.bias"]
            if i < 2:
                x = mx.tanh(x)
        return x

    logits, value = mlp("actor", obs), mlp("critic", obs)[:, 0]
    log_probs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    logp = mx.take_along_axis(log_probs, actions[:, None], axis=-1)[:, 0]
    log_ratio = logp - old_logp
    ratio = mx.exp(log_ratio)
    c = cfg.clip_coef
    pg = mx.maximum(-adv * ratio, -adv * mx.clip(ratio, 1 - c, 1 + c)).mean()
    if cfg.clip_vloss:
        v_clip = old_values + mx.clip(value - old_values, -c, c)
        v = 0.5 * mx.maximum((value - returns) ** 2, (v_clip - returns) ** 2).mean()
    else:
        v = 0.5 * ((value - returns) ** 2).mean()
    ent = -(mx.exp(log_probs) * log_probs).sum(axis=-1).mean()
    kl = ((ratio - 1.0) - log_ratio).mean()
    clip_frac = (mx.abs(ratio - 1.0) > c).astype(mx.float32).mean()
    loss = pg - cfg.ent_coef * ent + cfg.vf_coef * v
    return loss, mx.stack([pg, v, ent, kl, clip_frac])


def _trained(seed: int = 4) -> PPO:
    ppo = PPO(OBS_DIM, N_ACTIONS, SMALL, seed=seed)
    env = ToyEnv(4, seed=seed)
    train(ppo, env, env.reset(), 2)  # non-trivial weights, optimizer state, normaliser
    return ppo


@pytest.mark.parametrize("clip_vloss", [False, True])
def test_loss_and_gradients_equal_two_separate_mlps(clip_vloss: bool) -> None:
    cfg = dataclasses.replace(SMALL, clip_vloss=clip_vloss)
    ppo = _trained()
    lay = ppo.layout
    rng = np.random.default_rng(1)
    b = 256
    obs = rng.standard_normal((b, OBS_DIM)).astype(np.float32) * 2
    actions = rng.integers(0, N_ACTIONS, b)
    # Old log-probs near the current policy's, so some ratios are clipped and some are not.
    logits, values = ppo.forward_numpy(obs)
    lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    old_logp = (lp[np.arange(b), actions] + rng.normal(0, 0.2, b)).astype(np.float32)
    adv = rng.standard_normal(b).astype(np.float32)
    returns = (values + rng.normal(0, 0.5, b)).astype(np.float32)
    old_values = (values + rng.normal(0, 0.3, b)).astype(np.float32)
    theta = np.array(ppo.model.theta)

    kw = {"clip_coef": cfg.clip_coef, "ent_coef": cfg.ent_coef, "vf_coef": cfg.vf_coef}
    onehot = np.eye(N_ACTIONS, dtype=np.float32)[actions]
    data = [mx.array(a) for a in (onehot, old_logp, adv, returns, old_values)]

    def stacked(th: mx.array) -> tuple[mx.array, mx.array]:
        x = mx.array(augment(obs))
        return ppo_loss(lay.unpack(th), x, *data, clip_vloss=clip_vloss, **kw)

    (loss, stats), grad = mx.value_and_grad(stacked)(mx.array(theta))
    named = {k: mx.array(v) for k, v in lay.named(theta).items()}
    ref_data = [mx.array(a) for a in (actions, old_logp, adv, returns, old_values)]
    (ref_loss, ref_stats), ref_grad = mx.value_and_grad(_reference_loss)(
        named, mx.array(obs), *ref_data, cfg
    )
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.array(stats), np.array(ref_stats), rtol=1e-5, atol=1e-6)
    assert 0.0 < float(ref_stats[4]) < 1.0  # the clipped branch is exercised
    got = lay.named(np.array(grad))
    for k, g in ref_grad.items():
        want = np.array(g)
        assert np.abs(want).max() > 0, k
        atol = 1e-6 * np.abs(want).max()
        np.testing.assert_allclose(got[k], want, rtol=2e-4, atol=atol, err_msg=k)


def test_bias_unit_is_exactly_one_and_never_moves() -> None:
    ppo = _trained()
    lay = ppo.layout
    f, h = lay.obs_dim, lay.hidden
    theta = np.array(ppo.model.theta)
    w1 = theta[:, : (f + 1) * (h + 1)].reshape(2, f + 1, h + 1)
    # After two updates the bias unit is still exactly what Layout.flatten put there ...
    assert (w1[:, f, h] == BIAS_UNIT_INPUT).all()
    assert not w1[:, :f, h].any()
    for moment in ("m", "v"):  # ... because its gradient is exactly zero
        mo = np.array(ppo.opt_state[moment])[:, : (f + 1) * (h + 1)].reshape(2, f + 1, h + 1)
        assert not mo[:, :, h].any(), moment
        assert mo[:, :f, :h].any(), moment  # the real weights did move
    # ... and its activation is exactly 1 for any input.
    obs = mx.array(augment(np.random.default_rng(0).standard_normal((64, f)).astype(np.float32)))
    h1 = fast_tanh(obs @ lay.unpack(ppo.model.theta)[0])
    assert (np.array(h1)[..., h] == 1.0).all()
    # The critic head's padding columns never move either.
    w3 = lay.unpack(ppo.model.theta)[2]
    assert not np.array(w3)[1, :, 1:].any()


def test_the_network_keeps_mlx_module_api() -> None:
    # Its forward once shadowed nn.Module.apply, so MLX's own module calls (set_dtype,
    # apply) reached it with the wrong arguments and failed.
    net = ActorCritic(OBS_DIM, N_ACTIONS, 8)
    net.set_dtype(mx.float16)
    assert net.theta.dtype == mx.float16
    net.apply(lambda x: x.astype(mx.float32))
    assert net.theta.dtype == mx.float32
    obs = mx.array(augment(np.zeros((3, OBS_DIM), dtype=np.float32)))
    logits, value = net(obs)
    assert logits.shape == (3, N_ACTIONS) and value.shape == (3,)


def test_layout_round_trips_two_mlps() -> None:
    lay = Layout(obs_dim=5, hidden=7, n_actions=3)
    rng = np.random.default_rng(0)
    theta = lay.flatten(
        {k: rng.standard_normal(s).astype(np.float32) for k, s in _named_shapes(lay).items()}
    )
    named = lay.named(theta)
    assert {k: v.shape for k, v in named.items()} == _named_shapes(lay)
    np.testing.assert_array_equal(lay.flatten(named), theta)
    assert lay.size == 6 * 8 + 8 * 7 + 7 * 3 + 3


def _named_shapes(lay: Layout) -> dict[str, tuple[int, ...]]:
    f, h, a = lay.obs_dim, lay.hidden, lay.n_actions
    out = {}
    for net, n_out in (("actor", a), ("critic", 1)):
        for i, (o, n_in) in enumerate(((h, f), (h, h), (n_out, h))):
            out[f"{net}.layers.{i}.weight"] = (o, n_in)
            out[f"{net}.layers.{i}.bias"] = (o,)
    return out


def test_fast_tanh_saturates_exactly_and_keeps_nan() -> None:
    x = mx.array(np.array([-1e30, -8.0, 8.0, 1e30, np.inf, -np.inf, np.nan], np.float32))
    y = np.array(mx.compile(fast_tanh)(x))
    np.testing.assert_array_equal(y[:6], [-1, -1, 1, 1, 1, -1])
    assert np.isnan(y[6])
    g = np.array(mx.grad(lambda v: fast_tanh(v).sum())(x))
    np.testing.assert_array_equal(g[:6], 0.0)


@pytest.mark.parametrize("n", [4, PPO.NUMPY_MAX_BATCH + 8])
def test_act_samples_the_policy_and_reports_its_log_probs(n: int) -> None:
    ppo = _trained()
    obs = np.random.default_rng(2).standard_normal((n, OBS_DIM)).astype(np.float32)
    logits, value = ppo.forward(obs)  # MLX, the reference for both paths
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    draws = 3000
    counts = np.zeros((n, N_ACTIONS))
    for _ in range(draws):
        a, logp, v = ppo.act(obs)
        counts[np.arange(n), a] += 1
        np.testing.assert_allclose(logp, np.log(probs[np.arange(n), a]), atol=2e-5)
        np.testing.assert_allclose(v, value, atol=2e-5)
    # Each row's empirical frequencies within 5 binomial standard errors of the policy.
    se = np.sqrt(probs * (1 - probs) / draws)
    assert (np.abs(counts / draws - probs) <= 5 * se + 1e-3).all()


def test_act_is_reproducible_from_the_seed_and_state() -> None:
    obs = np.random.default_rng(5).standard_normal((4, OBS_DIM)).astype(np.float32)
    a, b = PPO(OBS_DIM, N_ACTIONS, SMALL, seed=9), PPO(OBS_DIM, N_ACTIONS, SMALL, seed=9)
    seq_a = [a.act(obs)[0] for _ in range(20)]
    state = a.state_dict()
    seq_b = [b.act(obs)[0] for _ in range(20)]
    assert all(np.array_equal(x, y) for x, y in zip(seq_a, seq_b, strict=True))
    assert len({tuple(s) for s in seq_a}) > 1  # it does sample
    b.load_state_dict(state)
    np.testing.assert_array_equal(a.act(obs)[0], b.act(obs)[0])


def test_forward_paths_agree_for_every_batch_size() -> None:
    ppo = _trained()
    model = ActorCritic(OBS_DIM, N_ACTIONS, SMALL.hidden)
    model.theta = ppo.model.theta
    for n in (1, 16, 17, PPO.NUMPY_MAX_BATCH, PPO.NUMPY_MAX_BATCH + 1, 300):
        obs = np.random.default_rng(n).standard_normal((n, OBS_DIM)).astype(np.float32)
        l_np, v_np = ppo.forward_numpy(obs)
        l_mx, v_mx = model(mx.array(augment(ppo._prepare(obs))))
        np.testing.assert_allclose(l_np, np.array(l_mx), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(v_np, np.array(v_mx), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ppo.value(obs), v_np, rtol=1e-5, atol=1e-5)


def test_update_with_clip_vloss_and_annealing_trains() -> None:
    cfg = dataclasses.replace(SMALL, clip_vloss=True, anneal_lr=True, anneal_updates=3)
    ppo = PPO(OBS_DIM, N_ACTIONS, cfg, seed=0)
    before = np.array(ppo.model.theta)
    m = [ppo.update(random_rollout(i)) for i in range(3)]
    assert not np.array_equal(np.array(ppo.model.theta), before)
    assert [x["charts/learning_rate_critic"] for x in m] == pytest.approx([3e-4, 2e-4, 1e-4])
    assert all(np.isfinite(list(x.values())).all() for x in m)
