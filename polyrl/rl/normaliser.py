"""The observation normaliser of :mod:`polyrl.rl.ppo`: running mean and variance of the raw
observations, in float64, merged batch by batch (Chan et al.'s parallel formula).

Invariant: with no data seen, mean is 0 and var 1, so raw observations pass through
(clipped). PPO keeps the statistics frozen while a rollout is collected and folds the
rollout in at the end of its update, so every gradient step normalises as acting did.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class RunningNorm:
    """Running mean and variance of observations [B, F] (float64, parallel-merge formula).

    ``normalise`` maps raw obs to float32 ``(obs - mean) / sqrt(var + eps)`` clipped to
    ``+-clip``. With no data seen yet mean is 0 and var 1, so raw obs pass through (clipped).
    """

    def __init__(self, dim: int, *, clip: float = 10.0, eps: float = 1e-8) -> None:
        self.dim = dim
        self.clip = clip
        self.eps = eps
        self.mean = np.zeros(dim, dtype=np.float64)
        self.var = np.ones(dim, dtype=np.float64)
        self.count = 0.0

    def update(self, x: np.ndarray) -> None:
        """Fold a batch x [B, F] into the statistics."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.dim)
        n = float(x.shape[0])
        if n == 0:
            return
        b_mean = x.mean(axis=0)
        b_var = x.var(axis=0)
        total = self.count + n
        delta = b_mean - self.mean
        m2 = self.var * self.count + b_var * n + delta**2 * self.count * n / total
        self.mean = self.mean + delta * n / total
        self.var = m2 / total
        self.count = total

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """Raw obs [..., F] -> normalised float32 obs [..., F]."""
        z = (np.asarray(x, dtype=np.float64) - self.mean) / np.sqrt(self.var + self.eps)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """Statistics as JSON-ready values (floats round-trip exactly through JSON)."""
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mean = np.asarray(state["mean"], dtype=np.float64)
        var = np.asarray(state["var"], dtype=np.float64)
        if mean.shape != (self.dim,) or var.shape != (self.dim,):
            raise ValueError(
                f"normaliser statistics have shape {mean.shape}/{var.shape}, expected ({self.dim},)"
            )
        self.mean, self.var, self.count = mean, var, float(state["count"])
