"""Taker fee formulas, per-match rounding and schedule validation, against hand values."""

from __future__ import annotations

import numpy as np
import pytest

from polyrl.broker.fees import check_fee_schedule, raw_taker_fee, round_fee, taker_fee


def fee(
    shares: float, price: float, rate: float, exponent: float, rounding: str = "floor"
) -> float:
    out = taker_fee(np.array(shares), np.array(price), np.array(rate), np.array(exponent), rounding)  # type: ignore[arg-type]
    return float(out)


def test_current_schedule_worked_examples() -> None:
    # The venue's worked example: 100 shares at 0.50, rate 0.07 -> 0.07 * 100 * 0.25 = $1.75.
    assert fee(100, 0.5, 0.07, 1) == 1.75
    # At 0.10: 0.07 * 100 * 0.1 * 0.9 = 0.63; symmetric at 0.90.
    assert fee(100, 0.1, 0.07, 1) == 0.63
    assert fee(100, 0.9, 0.07, 1) == 0.63


def test_jan_mar_2026_schedule_examples() -> None:
    # C * p * r * (p(1-p))^2: 100 * 0.5 * 0.25 * 0.0625 = 0.78125 ($0.78 per 100 shares).
    assert fee(100, 0.5, 0.25, 2) == 0.78125
    # 100 * 0.1 * 0.25 * 0.0081 = 0.02025 ($0.02 at 0.10).
    assert fee(100, 0.1, 0.25, 2) == 0.02025


def test_rounding_floor_and_half_up_to_five_decimals() -> None:
    # 2 shares at 0.51: 0.07 * 2 * 0.2499 = 0.034986 -> floor 0.03498, half_up 0.03499.
    assert fee(2, 0.51, 0.07, 1) == 0.03498
    assert fee(2, 0.51, 0.07, 1, "half_up") == 0.03499
    # Below the 0.00001 minimum: floor gives 0; half_up keeps 0.000008 as one quantum.
    assert float(round_fee(np.array(0.000008))) == 0.0
    assert float(round_fee(np.array(0.000008), "half_up")) == 0.00001
    assert float(round_fee(np.array(0.000004), "half_up")) == 0.0


def test_floor_is_not_fooled_by_binary_representation() -> None:
    # 100 shares at 0.80 pay exactly 1.12, which float arithmetic lands just below.
    raw = float(raw_taker_fee(np.array(100.0), np.array(0.8), np.array(0.07), np.array(1.0)))
    assert raw < 1.12
    assert fee(100, 0.8, 0.07, 1) == 1.12


def test_vectorised_over_levels_with_per_market_schedules() -> None:
    shares = np.array([[100.0, 2.0], [100.0, 100.0]])
    price = np.array([[0.5, 0.51], [0.5, 0.1]])
    rate = np.array([[0.07], [0.25]])
    expo = np.array([[1.0], [2.0]])
    np.testing.assert_array_equal(
        taker_fee(shares, price, rate, expo), [[1.75, 0.03498], [0.78125, 0.02025]]
    )


@pytest.mark.parametrize("bad", [0.0, 1.5, 3.0, np.nan])
def test_unknown_exponent_is_rejected_by_name(bad: float) -> None:
    with pytest.raises(ValueError, match="fee_exponent"):
        check_fee_schedule(np.array([0.07, 0.07]), np.array([1.0, bad]))


@pytest.mark.parametrize("bad", [-0.01, np.inf, np.nan])
def test_bad_rate_is_rejected_by_name(bad: float) -> None:
    with pytest.raises(ValueError, match="fee_rate.*market 1"):
        check_fee_schedule(np.array([0.07, bad]), np.array([1.0, 1.0]))


def test_unknown_rounding_is_rejected() -> None:
    with pytest.raises(ValueError, match="fee_rounding"):
        round_fee(np.array(1.0), "nearest")  # type: ignore[arg-type]
