"""The baselines: momentum, mean reversion, spike fade, random, a gating ensemble, hold and
the fair-gap rule.

Each is a rule over named features of the observation (so each works with any feature set
that has the features it names; one that lacks them is refused with a message naming the
feature). Parameters live in ``[baselines]`` of the config. Moves are measured in units of
their expected size, ``z = return / (vol_5m x sqrt(minutes))``, so one threshold fits all
four assets.

=============  =================================================================================
momentum       BUY when the 1-minute move is up by more than ``momentum_z`` and taker flow
               agrees (``trade_flow > momentum_flow``); SELL on the mirror image; else HOLD.
mean_revert    Fade a stretched 5-minute move: SELL when ``z_5m > revert_z``, BUY when
               ``z_5m < -revert_z``; else HOLD.
fade_spike     After a spike — a large trade in the last 10 s and short-term volatility
               expanding (``vol_expansion > spike_vol_expansion``) — bet against the 1-minute
               move; else HOLD.
random         BUY with probability ``random_p_buy``, SELL with ``random_p_sell``, else HOLD;
               seeded, so a run is repeatable.
gating         Picks one of the above by regime: spike fade when volatility is high
               (``vol_regime > gate_vol_high``), momentum when trending
               (``|trend_regime| > gate_trend``), mean reversion otherwise.
hold           Always HOLD: never trades, PnL 0 in every window. The zero line a strategy
               must beat; any feature set.
fair_gap       BUY when ``fair_gap > fair_gap_threshold`` (the market's Up price is below the
               driftless fair value of Up), SELL when ``fair_gap < -fair_gap_threshold``;
               else HOLD. Needs the ``fair_gap`` feature (feature set ``full``). It reads the
               simulator's own fair-value formula, so on simulated data it measures how much
               edge the simulator's book lag plants, not a strategy.
=============  =================================================================================

``BASELINES`` (what ``--strategy all`` and training's evaluation run) are the five rule
strategies that work on every feature set. ``hold`` and ``fair_gap`` run only when named
(:data:`NAMED_ONLY`): hold's interval is the interval of PnL against 0 that every run
already reports, and fair_gap needs a feature most sets lack.

All rules also hold when the window is nearly over (``time_remaining < min_time_left``):
late entries pay the spread with little time to be right.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from polyrl.errors import ConfigError
from polyrl.features.sets import FeatureSet
from polyrl.policies.base import BUY, HOLD, SELL

BASELINES = ("momentum", "mean_revert", "fade_spike", "random", "gating")
"""The rule baselines that ``--strategy all`` and training's evaluation run."""
NAMED_ONLY = ("hold", "fair_gap")
"""Baselines run only when asked for by name."""
KNOWN = BASELINES + NAMED_ONLY
"""Every baseline :func:`make_baseline` knows."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BaselineConfig:
    """Parameters of the baseline rules (``[baselines]``)."""

    momentum_z: float = 1.0
    """momentum: minimum 1-minute move, in units of its expected size."""
    momentum_flow: float = 0.1
    """momentum: minimum taker flow imbalance in the move's direction (-1..1)."""
    revert_z: float = 2.0
    """mean_revert: 5-minute move (in units of its expected size) beyond which to fade it."""
    spike_vol_expansion: float = 0.4
    """fade_spike: minimum ln(vol_1m / vol_5m) that counts as a spike."""
    random_p_buy: float = 0.02
    """random: probability of BUY per market per tick."""
    random_p_sell: float = 0.02
    """random: probability of SELL per market per tick."""
    gate_vol_high: float = 0.5
    """gating: vol_regime above which spike fading is chosen."""
    gate_trend: float = 2.0
    """gating: |trend_regime| above which momentum is chosen."""
    fair_gap_threshold: float = 0.03
    """fair_gap: |fair_up - up_mid| (probability) beyond which to trade toward fair value."""
    min_time_left: float = 0.05
    """All rules: hold when less than this fraction of the window is left."""

    def __post_init__(self) -> None:
        for name in ("momentum_z", "revert_z", "gate_trend", "spike_vol_expansion",
                     "fair_gap_threshold"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not 0 <= self.random_p_buy + self.random_p_sell <= 1:
            raise ValueError("random_p_buy + random_p_sell must be in 0..1")
        if not 0 <= self.min_time_left < 1:
            raise ValueError("min_time_left must be in [0, 1)")


class _Rule(ABC):
    """Shared plumbing: feature indices by name, the late-window hold."""

    needs: tuple[str, ...] = ()

    def __init__(self, name: str, fset: FeatureSet, config: BaselineConfig) -> None:
        self.name = name
        self.config = config
        missing = [n for n in (*self.needs, "time_remaining") if n not in fset.names]
        if missing:
            raise ConfigError(
                f"baseline {name!r} needs feature(s) {', '.join(missing)}, which feature set "
                f"{fset.name!r} does not have"
            )
        self.ix = {n: fset.index(n) for n in (*self.needs, "time_remaining")}

    def f(self, obs: np.ndarray, name: str) -> np.ndarray:
        return obs[:, self.ix[name]].astype(np.float64)

    def act(self, obs: np.ndarray, tradable: np.ndarray) -> np.ndarray:
        a = self.rule(obs)
        late = self.f(obs, "time_remaining") < self.config.min_time_left
        return np.where(tradable & ~late, a, HOLD).astype(np.int64)

    @abstractmethod
    def rule(self, obs: np.ndarray) -> np.ndarray:
        """Actions [M] before the tradable mask and the late-window hold."""


def _z(ret: np.ndarray, vol: np.ndarray, minutes: float) -> np.ndarray:
    return ret / np.maximum(vol * np.sqrt(minutes), 1e-9)


class Momentum(_Rule):
    needs = ("returns_1m", "vol_5m", "trade_flow")

    def rule(self, obs: np.ndarray) -> np.ndarray:
        c = self.config
        z = _z(self.f(obs, "returns_1m"), self.f(obs, "vol_5m"), 1.0)
        flow = self.f(obs, "trade_flow")
        up = (z > c.momentum_z) & (flow > c.momentum_flow)
        down = (z < -c.momentum_z) & (flow < -c.momentum_flow)
        return np.where(up, BUY, np.where(down, SELL, HOLD))


class MeanRevert(_Rule):
    needs = ("returns_5m", "vol_5m")

    def rule(self, obs: np.ndarray) -> np.ndarray:
        z = _z(self.f(obs, "returns_5m"), self.f(obs, "vol_5m"), 5.0)
        c = self.config.revert_z
        return np.where(z > c, SELL, np.where(z < -c, BUY, HOLD))


class FadeSpike(_Rule):
    needs = ("large_trade_flag", "vol_expansion", "returns_1m")

    def rule(self, obs: np.ndarray) -> np.ndarray:
        spike = (self.f(obs, "large_trade_flag") > 0.5) & (
            self.f(obs, "vol_expansion") > self.config.spike_vol_expansion
        )
        r = self.f(obs, "returns_1m")
        return np.where(spike & (r > 0), SELL, np.where(spike & (r < 0), BUY, HOLD))


class Random(_Rule):
    needs = ()

    def __init__(self, name: str, fset: FeatureSet, config: BaselineConfig, seed: int) -> None:
        super().__init__(name, fset, config)
        self.rng = np.random.default_rng(seed)

    def rule(self, obs: np.ndarray) -> np.ndarray:
        u = self.rng.random(obs.shape[0])
        c = self.config
        return np.where(
            u < c.random_p_buy, BUY, np.where(u < c.random_p_buy + c.random_p_sell, SELL, HOLD)
        )


class Hold(_Rule):
    needs = ()

    def rule(self, obs: np.ndarray) -> np.ndarray:
        return np.full(obs.shape[0], HOLD)


class FairGap(_Rule):
    needs = ("fair_gap",)

    def rule(self, obs: np.ndarray) -> np.ndarray:
        g = self.f(obs, "fair_gap")
        c = self.config.fair_gap_threshold
        return np.where(g > c, BUY, np.where(g < -c, SELL, HOLD))


class Gating(_Rule):
    needs = ("vol_regime", "trend_regime")

    def __init__(self, name: str, fset: FeatureSet, config: BaselineConfig) -> None:
        super().__init__(name, fset, config)
        self.momentum = Momentum("momentum", fset, config)
        self.revert = MeanRevert("mean_revert", fset, config)
        self.spike = FadeSpike("fade_spike", fset, config)

    def rule(self, obs: np.ndarray) -> np.ndarray:
        c = self.config
        hot = self.f(obs, "vol_regime") > c.gate_vol_high
        trend = np.abs(self.f(obs, "trend_regime")) > c.gate_trend
        return np.where(
            hot,
            self.spike.rule(obs),
            np.where(trend, self.momentum.rule(obs), self.revert.rule(obs)),
        )


def make_baseline(name: str, fset: FeatureSet, config: BaselineConfig, *, seed: int = 0) -> _Rule:
    """A baseline by name; an unknown name is a ConfigError listing the known ones."""
    if name == "momentum":
        return Momentum(name, fset, config)
    if name == "mean_revert":
        return MeanRevert(name, fset, config)
    if name == "fade_spike":
        return FadeSpike(name, fset, config)
    if name == "random":
        return Random(name, fset, config, seed)
    if name == "gating":
        return Gating(name, fset, config)
    if name == "hold":
        return Hold(name, fset, config)
    if name == "fair_gap":
        return FairGap(name, fset, config)
    raise ConfigError(f"unknown strategy {name!r} (baselines: {', '.join(KNOWN)})")
