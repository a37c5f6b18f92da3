"""Online training bookkeeping: transitions per market, episode ends, late settlements."""

from __future__ import annotations

import numpy as np

from polyrl.features.markets import Window
from polyrl.features.sets import feature_set
from polyrl.rl.online import OnlineTrainer
from polyrl.rl.ppo import PPO, PPOConfig

FSET = feature_set("seed18")


def _window(slot: int, index: int) -> Window:
    return Window(index=index, asset="btc", slot=slot, condition_id=f"c{index}", slug="s",
                  up_token="u", down_token="d", start_ns=0, end_ns=900, known_ns=0,
                  tick_size=0.01, min_size=5.0, fees_enabled=True, fee_rate=0.07,
                  fee_exponent=1.0)  # fmt: skip


def test_rollouts_carry_rewards_episode_ends_and_settlements() -> None:
    T = 8
    ppo = PPO(FSET.dim, 3, PPOConfig(buffer_steps=T, minibatch_size=8, n_epochs=2), seed=1)
    tr = OnlineTrainer(ppo, FSET, 2)
    rng = np.random.default_rng(0)
    for t in range(T + 3):
        obs = rng.standard_normal((2, FSET.dim)).astype(np.float32)
        tradable = np.array([True, t % 2 == 0])  # market 1 trades every other tick
        a = tr.act(obs, tradable)
        assert a[1] == 0 or tradable[1]
        tr.rewards(np.array([0.5, -0.25]), np.array([0, 1]))
        if t == 3:
            tr.episode_end(0)
    assert not tr.ready()  # market 1 has only 6 transitions
    for _ in range(2 * T):
        tr.act(rng.standard_normal((2, FSET.dim)).astype(np.float32), np.array([True, True]))
        tr.rewards(np.zeros(2), np.array([2, 2]))
    tr.settled(_window(1, 1), 3.0)  # a late resolution lands on window 1's last step
    assert tr.ready()
    before = {k: np.array(v) for k, v in ppo.tensors().items()}
    ro = tr.take_rollout()
    assert ro.obs.shape == (T, 2, FSET.dim) and ro.actions.shape == (T, 2)
    assert ro.rewards[0, 0] == 0.5 and ro.dones[3, 0] and not ro.dones[2, 0]
    assert ro.rewards[:5, 1].tolist() == [-0.25] * 5
    assert ro.rewards[5, 1] == -0.25 + 3.0  # window 1's last step got the settlement
    assert ro.rewards[6:, 1].tolist() == [0.0, 0.0]
    m = tr.update(ro)
    assert tr.updates == 1 and "losses/policy" in m
    after = {k: np.array(v) for k, v in ppo.tensors().items()}
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    assert [len(s.steps) for s in tr.slots] == [(T + 3) + 2 * T - T, 6 + 2 * T - T]
