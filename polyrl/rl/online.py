"""Online training during live paper trading (``polyrl live --train``), as the seed did.

The :class:`OnlineTrainer` is the live session's policy: at each tick it samples actions
from the PPO agent for the markets that may trade and keeps one transition per such market
(observation, action, log-probability, value); the Engine then reports each market's reward
(realized PnL on a close), each window's end (the episode is done) and each settlement (its
PnL is added to the window's last transition while that is still buffered — a resolution
that arrives after the buffer was used is lost to training, not to the PnL). Once every
market has ``buffer_steps`` transitions, the update runs (on a worker thread, so the
recorder keeps receiving; decisions pause meanwhile) and a checkpoint is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polyrl.features.markets import Window
from polyrl.features.sets import FeatureSet
from polyrl.policies.base import HOLD
from polyrl.rl.ppo import PPO, Rollout


@dataclass(slots=True)
class _Step:
    obs: np.ndarray
    action: int
    logp: float
    value: float
    reward: float = 0.0
    done: bool = False
    window: int = -1


@dataclass(slots=True)
class _Slot:
    steps: list[_Step] = field(default_factory=list)


class OnlineTrainer:
    """A training PPO policy for M live markets (see the module doc)."""

    def __init__(
        self, ppo: PPO, fset: FeatureSet, n_markets: int, name: str = "ppo-online"
    ) -> None:
        self.ppo = ppo
        self.fset = fset
        self.name = name
        self.slots = [_Slot() for _ in range(n_markets)]
        self._acted: list[_Step | None] = [None] * n_markets
        self.updates = 0
        self.last_metrics: dict[str, float] = {}

    # -- the Policy side -------------------------------------------------------------------

    def act(self, obs: np.ndarray, tradable: np.ndarray) -> np.ndarray:
        actions = np.full(obs.shape[0], HOLD, dtype=np.int64)
        idx = np.flatnonzero(tradable)
        self._acted = [None] * obs.shape[0]
        if idx.shape[0]:
            a, logp, v = self.ppo.act(obs[idx])
            for j, m in enumerate(idx.tolist()):
                step = _Step(obs[m].copy(), int(a[j]), float(logp[j]), float(v[j]))
                self.slots[m].steps.append(step)
                self._acted[m] = step
                actions[m] = int(a[j])
        return actions

    # -- what the Engine reports -------------------------------------------------------------

    def rewards(self, rewards: np.ndarray, windows: np.ndarray) -> None:
        """Per-market rewards of the step just taken, and each market's window index."""
        for m, step in enumerate(self._acted):
            if step is not None:
                step.reward += float(rewards[m])
                step.window = int(windows[m])

    def episode_end(self, slot: int) -> None:
        steps = self.slots[slot].steps
        if steps:
            steps[-1].done = True

    def settled(self, window: Window, pnl: float) -> None:
        for step in reversed(self.slots[window.slot].steps):
            if step.window == window.index:
                step.reward += pnl
                return

    # -- updates -----------------------------------------------------------------------------

    @property
    def progress(self) -> float:
        """Fraction of the buffer filled (the least-filled market)."""
        T = self.ppo.config.buffer_steps
        return min(len(s.steps) for s in self.slots) / T

    def ready(self) -> bool:
        return self.progress >= 1.0 and all(
            len(s.steps) > self.ppo.config.buffer_steps for s in self.slots
        )

    def take_rollout(self) -> Rollout:
        """The first buffer_steps transitions of every market (removed from the buffer)."""
        T, M = self.ppo.config.buffer_steps, len(self.slots)
        F = self.fset.dim
        ob = np.empty((T, M, F), dtype=np.float32)
        act = np.empty((T, M), dtype=np.int64)
        lp = np.empty((T, M), dtype=np.float32)
        val = np.empty((T, M), dtype=np.float32)
        rew = np.empty((T, M), dtype=np.float32)
        dn = np.empty((T, M), dtype=bool)
        last = np.empty(M, dtype=np.float32)
        for m, s in enumerate(self.slots):
            for t, st in enumerate(s.steps[:T]):
                ob[t, m], act[t, m], lp[t, m], val[t, m] = st.obs, st.action, st.logp, st.value
                rew[t, m], dn[t, m] = st.reward, st.done
            last[m] = s.steps[T].value  # the value of the next kept step bootstraps
            del s.steps[:T]
        return Rollout(obs=ob, actions=act, logp=lp, values=val, rewards=rew, dones=dn,
                       last_value=last)  # fmt: skip

    def update(self, rollout: Rollout) -> dict[str, Any]:
        m = self.ppo.update(rollout)
        self.updates += 1
        self.last_metrics = {k: float(v) for k, v in m.items()}
        return self.last_metrics
