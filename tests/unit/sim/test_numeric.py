"""Numerical and text helpers of the simulator."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polyrl.sim.clob import PX, size_text, small_tick
from polyrl.sim.numeric import ar1, fixed, norm_cdf, ou, rng, trim_decimal
from polyrl.sim.reference import resolve


@pytest.mark.parametrize("a", [0.0, 0.3, 0.9, 0.995, 0.99999])
def test_ar1_matches_the_recurrence(a: float) -> None:
    g = np.random.default_rng(1)
    u = g.standard_normal((3, 5_000))
    x0 = np.array([0.5, -1.0, 2.0])
    want = np.empty_like(u)
    prev = x0.copy()
    for t in range(u.shape[1]):
        prev = a * prev + u[:, t]
        want[:, t] = prev
    np.testing.assert_allclose(ar1(u, a, x0), want, rtol=1e-8, atol=1e-8)


def test_ou_has_the_requested_stationary_sd() -> None:
    x = ou(rng(3, 1).standard_normal(400_000), 20.0, 0.7)
    assert abs(x.std() - 0.7) < 0.03
    # Lag-20 autocorrelation of an OU with tau = 20 steps is exp(-1).
    r = np.corrcoef(x[:-20], x[20:])[0, 1]
    assert abs(r - math.exp(-1)) < 0.03


def test_generators_are_keyed() -> None:
    assert rng(1, 2, 3).random() == rng(1, 2, 3).random()
    assert rng(1, 2, 3).random() != rng(1, 2, 4).random()
    assert rng(1, 2, 3, 0).random() != rng(1, 2, 3).random()


def test_norm_cdf() -> None:
    np.testing.assert_allclose(
        norm_cdf(np.array([0.0, 1.0, -1.96])), [0.5, 0.841344746, 0.0249979], atol=1e-7
    )


def test_norm_cdf_of_a_0d_array_is_a_0d_array() -> None:
    # The object ufunc returns a bare float for a 0-d input; that used to fail on `.astype`.
    got = norm_cdf(np.array(1.0))
    assert got.shape == () and got.dtype == np.float64
    assert float(got) == float(norm_cdf(np.array([1.0]))[0])


def test_fixed_point_text_is_exact() -> None:
    assert fixed(6182802000000, 8) == "61828.02000000"
    assert fixed(6, 3) == "0.006"
    assert fixed(12, 0) == "12"
    assert trim_decimal(500, 3) == "0.5"
    assert trim_decimal(301, 3) == "0.301"
    assert PX[10] == "0.01" and PX[999] == "0.999" and PX[1000] == "1"
    assert size_text(330000) == "3300"
    assert size_text(7028120) == "70281.2"
    assert size_text(99999) == "999.99"


def test_tick_predicate_is_symmetric() -> None:
    assert small_tick(961, 970) and small_tick(20, 30)
    assert not small_tick(960, 970) and not small_tick(30, 40)
    # The Down book of an Up book (bb, ba) is (1000 - ba, 1000 - bb): same predicate.
    for bb, ba in [(961, 965), (30, 39), (500, 510), (955, 961)]:
        assert small_tick(bb, ba) == small_tick(1000 - ba, 1000 - bb)


def test_resolution_rule_tie_is_up() -> None:
    assert resolve(10, 10) == "Up"
    assert resolve(10, 11) == "Up"
    assert resolve(11, 10) == "Down"
