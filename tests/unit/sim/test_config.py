"""SimConfig: defaults, range checks naming the field, and loading from a [sim] table."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from polyrl.config import from_mapping
from polyrl.errors import ConfigError
from polyrl.sections import config_from_mapping
from polyrl.sim.config import SimConfig


def test_defaults_are_valid_and_documented() -> None:
    cfg = SimConfig()
    assert cfg.book_lag_s == 0.0  # no planted edge unless asked for
    assert cfg.fee_rate == 0.07 and cfg.fee_exponent == 1.0
    assert cfg.malformed_rate == 0.0
    # Every field has a docstring line right after it (the convention for config fields).
    text = inspect.getsource(SimConfig)
    for f in dataclasses.fields(SimConfig):
        after = text.split(f"    {f.name}:", 1)[1].split("\n", 2)[1].strip()
        assert after.startswith('"""'), f"{f.name} has no docstring line"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("volatile_vol_mult", 0.0),
        ("calm_mean_s", -1.0),
        ("jump_sd", -0.1),
        ("malformed_rate", 1.5),
        ("reference_drop_prob", -0.01),
        ("trade_size_tail_alpha", 1.0),
        ("book_levels", 1),
        ("book_noise", 0.5),
        ("book_lag_s", -1.0),
        ("book_end_depth", 1.5),
        ("book_end_wide_prob", -0.1),
        ("book_thin_s", 0.0),
        ("book_fills_per_trade", 0.5),
        ("common_loading", (0.5, 0.5, 0.5, 1.2)),
        ("annual_vol", (0.5, 0.5, 0.5)),
        ("spot_trade_rate", (1.0, 0.0, 1.0, 1.0)),
        ("close_delay_max_s", 1.0),
    ],
)
def test_out_of_range_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SimConfig(**{field: value})  # type: ignore[arg-type]


def test_loads_from_a_sim_table() -> None:
    cfg = from_mapping(SimConfig, {"book_lag_s": 2, "initial_price": [1, 2, 3, 4]}, where="sim")
    assert cfg.book_lag_s == 2.0
    assert cfg.initial_price == (1.0, 2.0, 3.0, 4.0)
    whole = config_from_mapping({"sim": {"malformed_rate": 0.01}})
    assert whole.sim.malformed_rate == 0.01


def test_unknown_or_bad_keys_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="book_lagg"):
        from_mapping(SimConfig, {"book_lagg": 1.0}, where="sim")
    with pytest.raises(ConfigError, match="malformed_rate"):
        from_mapping(SimConfig, {"malformed_rate": 2.0}, where="sim")
