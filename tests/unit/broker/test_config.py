"""BrokerConfig and MarketRules range checks name the field at fault."""

from __future__ import annotations

import numpy as np
import pytest

from polyrl.broker import BrokerConfig, MarketRules
from polyrl.config import from_mapping
from polyrl.errors import ConfigError


def test_defaults_are_the_seed() -> None:
    c = BrokerConfig()
    assert (c.capital, c.size_fraction, c.order_usdc) == (10.0, 0.5, 5.0)
    assert (c.on_opposite, c.on_same, c.reward, c.fee_rounding) == ("close", "hold", "pnl", "floor")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("capital", 0.0),
        ("capital", float("inf")),
        ("size_fraction", 0.0),
        ("size_fraction", 1.5),
        ("size_fraction", float("nan")),
        ("on_opposite", "reverse"),
        ("on_same", "pyramid"),
        ("reward", "sharpe"),
        ("fee_rounding", "nearest"),
        ("shaping_unrealized_coef", -0.1),
        ("shaping_trade_penalty", float("nan")),
    ],
)
def test_bad_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        BrokerConfig(**{field: value})  # type: ignore[arg-type]


def test_config_loads_from_a_toml_table() -> None:
    c = from_mapping(BrokerConfig, {"capital": 20, "on_opposite": "flip", "reward": "shaped"})
    assert c.capital == 20.0 and c.on_opposite == "flip" and c.reward == "shaped"
    with pytest.raises(ConfigError, match="on_same"):
        from_mapping(BrokerConfig, {"on_same": "more"})
    with pytest.raises(ConfigError, match="size_fraction"):
        from_mapping(BrokerConfig, {"size_fraction": 2})


def test_market_rules_checks() -> None:
    r = MarketRules.uniform(3)
    assert r.n == 3 and r.fee_rate.tolist() == [0.07] * 3 and r.min_size.tolist() == [5.0] * 3
    with pytest.raises(ValueError, match="fee_exponent.*1.5.*market 2"):
        MarketRules(
            fee_rate=np.full(3, 0.07),
            fee_exponent=np.array([1.0, 2.0, 1.5]),
            fees_enabled=np.ones(3, bool),
            min_size=np.full(3, 5.0),
            min_notional=np.ones(3),
        )
    with pytest.raises(ValueError, match="min_notional must have shape"):
        MarketRules(
            fee_rate=np.full(2, 0.07),
            fee_exponent=np.ones(2),
            fees_enabled=np.ones(2, bool),
            min_size=np.full(2, 5.0),
            min_notional=np.ones(3),
        )
    with pytest.raises(ValueError, match="min_size must be finite"):
        MarketRules.uniform(2, min_size=-1.0)
    with pytest.raises(ValueError, match="fee_exponent"):
        MarketRules.uniform(2, fee_exponent=3.0)
