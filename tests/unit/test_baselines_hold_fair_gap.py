"""The hold and fair-gap baselines: their rules on hand-made observations."""

from __future__ import annotations

import numpy as np
import pytest

from polyrl.errors import ConfigError
from polyrl.features.sets import feature_set
from polyrl.policies.base import BUY, HOLD, SELL
from polyrl.policies.baselines import BASELINES, KNOWN, BaselineConfig, make_baseline


def _obs(fset_name: str, **cols: list[float]) -> np.ndarray:
    fset = feature_set(fset_name)
    n = len(next(iter(cols.values())))
    obs = np.zeros((n, fset.dim), dtype=np.float32)
    obs[:, fset.index("time_remaining")] = 0.5
    for name, values in cols.items():
        obs[:, fset.index(name)] = values
    return obs


def test_fair_gap_buys_below_fair_sells_above_and_holds_inside_the_threshold() -> None:
    pol = make_baseline("fair_gap", feature_set("full"), BaselineConfig())
    obs = _obs("full", fair_gap=[0.031, 0.03, 0.0, -0.03, -0.031, 0.2])
    tradable = np.array([True, True, True, True, True, False])
    assert pol.act(obs, tradable).tolist() == [BUY, HOLD, HOLD, HOLD, SELL, HOLD]
    # The threshold is the config's, and the late-window hold applies as to every rule.
    pol = make_baseline("fair_gap", feature_set("full"), BaselineConfig(fair_gap_threshold=0.1))
    assert pol.act(obs, np.ones(6, bool)).tolist() == [HOLD] * 5 + [BUY]
    late = _obs("full", fair_gap=[0.2], time_remaining=[0.01])
    assert pol.act(late, np.ones(1, bool)).tolist() == [HOLD]


def test_fair_gap_needs_the_feature_and_names_it() -> None:
    with pytest.raises(ConfigError, match="'fair_gap' needs feature.*fair_gap.*'seed18'"):
        make_baseline("fair_gap", feature_set("seed18"), BaselineConfig())
    with pytest.raises(ValueError, match="fair_gap_threshold"):
        BaselineConfig(fair_gap_threshold=-0.01)


@pytest.mark.parametrize("fset", ["seed18", "full"])
def test_hold_never_trades(fset: str) -> None:
    pol = make_baseline("hold", feature_set(fset), BaselineConfig())
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(64, feature_set(fset).dim)).astype(np.float32) * 5
    assert (pol.act(obs, np.ones(64, bool)) == HOLD).all()


def test_all_is_the_five_rule_baselines_and_every_name_is_known() -> None:
    assert BASELINES == ("momentum", "mean_revert", "fade_spike", "random", "gating")
    assert set(KNOWN) == {*BASELINES, "hold", "fair_gap"}
    with pytest.raises(ConfigError, match="hold, fair_gap"):
        make_baseline("nope", feature_set("seed18"), BaselineConfig())
