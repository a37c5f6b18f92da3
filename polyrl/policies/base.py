"""The Policy protocol every decision maker implements (baselines and the PPO agent).

A policy sees one observation per market — ``obs`` float32 [M, F] in the order of a
:class:`~polyrl.features.sets.FeatureSet` — and the mask of markets that may trade, and
returns one action per market: 0 HOLD, 1 BUY (long the Up token), 2 SELL (long the Down
token). Markets that may not trade get HOLD whatever the policy says (the caller enforces
it). Policies hold no market state of their own beyond their parameters and, for the
random baseline, a seeded generator.

A class of your own that follows this protocol runs in ``polyrl backtest`` and ``polyrl live``
with ``--strategy package.module:Name`` or ``--strategy path/to/file.py:Name``
(:mod:`polyrl.policies.plugin` loads and checks it).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

HOLD, BUY, SELL = 0, 1, 2
ACTION_NAMES = ("HOLD", "BUY", "SELL")


class Policy(Protocol):
    """Observation [M, F] + tradable mask [M] -> actions [M] (int64, 0/1/2)."""

    name: str

    def act(self, obs: np.ndarray, tradable: np.ndarray) -> np.ndarray: ...
