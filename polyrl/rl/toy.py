"""A trivial vectorised environment for PPO tests and benchmarks (numpy, seeded).

Each of ``n_envs`` copies shows an 18-dimensional observation drawn from N(0, 1); one of
three actions is rewarded: the argmax of a fixed linear map of the observation
(``obs @ weights``, ``weights`` [18, 3] drawn once from the seed). Reward is 1 for the rewarded
action and 0 otherwise; episodes last ``episode_len`` steps and reset automatically. The
optimal policy therefore scores 1 per step and a uniform one 1/3, so a learner's progress is
measurable and a broken learner cannot pass for a working one.

Shapes match what :class:`polyrl.rl.ppo.PPO` expects of the real replay environment: ``obs``
[N, 18] float32, ``actions`` [N] int, ``reward`` [N] float32, ``done`` [N] bool (the episode
ended with this step; the returned ``obs`` is then the next episode's first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from polyrl.rl.ppo import PPO, Rollout

OBS_DIM = 18
N_ACTIONS = 3


class ToyEnv:
    """``n_envs`` independent copies of the linear-argmax bandit, stepped together."""

    def __init__(self, n_envs: int, *, seed: int = 0, episode_len: int = 16) -> None:
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        if episode_len < 1:
            raise ValueError(f"episode_len must be >= 1, got {episode_len}")
        self.n_envs = n_envs
        self.episode_len = episode_len
        # The rewarded map is a property of the task: it depends on the seed only, never on
        # how far the environment has run, so a restored env keeps the same task.
        self.weights = np.random.default_rng([seed, 1]).standard_normal((OBS_DIM, N_ACTIONS))
        self._rng = np.random.default_rng([seed, 2])
        self._t = np.zeros(n_envs, dtype=np.int64)
        self._obs = self._draw(n_envs)

    def _draw(self, n: int) -> np.ndarray:
        return self._rng.standard_normal((n, OBS_DIM)).astype(np.float32)

    def reset(self) -> np.ndarray:
        """Start every copy afresh; returns obs [N, 18] float32."""
        self._t[:] = 0
        self._obs = self._draw(self.n_envs)
        return self._obs.copy()

    def target(self, obs: np.ndarray) -> np.ndarray:
        """The rewarded action for each observation: obs [N, 18] -> [N] int64."""
        return np.argmax(obs.astype(np.float64) @ self.weights, axis=-1)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply actions [N]; returns (next obs [N, 18] float32, reward [N] float32, done [N]).

        ``done[i]`` means copy ``i``'s episode ended with this step; its returned obs is the
        first of a new episode (auto-reset).
        """
        actions = np.asarray(actions)
        if actions.shape != (self.n_envs,):
            raise ValueError(f"actions must have shape ({self.n_envs},), got {actions.shape}")
        reward = (actions == self.target(self._obs)).astype(np.float32)
        self._t += 1
        done = self._t >= self.episode_len
        self._t[done] = 0
        self._obs = self._draw(self.n_envs)
        return self._obs.copy(), reward, done

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this env is (JSON-able but for arrays)."""
        return {
            "rng": self._rng.bit_generator.state,
            "t": self._t.copy(),
            "obs": self._obs.copy(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`get_state` snapshot."""
        self._rng.bit_generator.state = state["rng"]
        self._t = np.array(state["t"], dtype=np.int64)
        self._obs = np.array(state["obs"], dtype=np.float32)


class VecEnv(Protocol):
    """What :func:`collect_rollout` needs of an environment: ``step`` returns (next obs [N, F],
    reward [N], done [N]) first, and may return more after them (ReplayEnv adds its info)."""

    n_envs: int

    def step(self, actions: np.ndarray) -> tuple[Any, ...]: ...


def collect_rollout(
    ppo: PPO, env: VecEnv, obs: np.ndarray, n_steps: int
) -> tuple[Rollout, np.ndarray]:
    """Run ``ppo.act`` for ``n_steps`` steps of ``env`` from raw obs [N, F].

    Returns the :class:`~polyrl.rl.ppo.Rollout` (obs [T, N, F] ... last_value [N]) and the
    observation to continue from.
    """
    from polyrl.rl.ppo import Rollout

    n, f = obs.shape
    buf_obs = np.empty((n_steps, n, f), dtype=np.float32)
    actions = np.empty((n_steps, n), dtype=np.int64)
    logp = np.empty((n_steps, n), dtype=np.float32)
    values = np.empty((n_steps, n), dtype=np.float32)
    rewards = np.empty((n_steps, n), dtype=np.float32)
    dones = np.empty((n_steps, n), dtype=bool)
    for t in range(n_steps):
        buf_obs[t] = obs
        actions[t], logp[t], values[t] = ppo.act(obs)
        out = env.step(actions[t])
        obs, rewards[t], dones[t] = out[0], out[1], out[2]
    rollout = Rollout(
        obs=buf_obs,
        actions=actions,
        logp=logp,
        values=values,
        rewards=rewards,
        dones=dones,
        last_value=ppo.value(obs),
    )
    return rollout, obs
