"""Calibration per price bin: counts and Wilson intervals against values worked out by hand."""

from __future__ import annotations

import math

import polars as pl
import pytest

from polyrl.analysis.calibration import CALIBRATION, calibration_table, wilson_interval

approx = pytest.approx


def test_wilson_interval_by_hand() -> None:
    # z = 1.959964; centre (p + z^2/2n) / (1 + z^2/n), half-width
    # z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2).
    # 1 of 2: centre 0.5, half 0.67105 * 0.60423 = 0.40547.
    assert wilson_interval(1, 2) == approx((0.094531, 0.905469), abs=1e-6)
    # 2 of 3: centre (0.66667 + 0.64024) / 2.28049 = 0.57308, half 0.85945 * 0.42518 = 0.36543.
    assert wilson_interval(2, 3) == approx((0.207660, 0.938508), abs=1e-6)
    # n wins of n: the upper end is 1; 0 of n: the lower end is 0.
    assert wilson_interval(1, 1) == approx((0.206549, 1.0), abs=1e-6)
    assert wilson_interval(0, 5) == approx((0.0, 0.434482), abs=1e-6)
    # A 50% interval is narrower than the 95% one around the same centre.
    lo50, hi50 = wilson_interval(2, 3, level=0.5)
    assert 0.207660 < lo50 < 2 / 3 < hi50 < 0.938508
    # In floating point too, every interval holds its share and stays in [0, 1].
    for n in range(1, 120):
        for k in range(n + 1):
            lo, hi = wilson_interval(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0, (k, n)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="wins must be in"):
        wilson_interval(3, 2)


def test_calibration_table_by_hand() -> None:
    pos = pl.DataFrame({
        "entry_price": [0.05, 0.08, 0.55, 0.56, 0.57, 0.95, 0.10, 1.0, 0.3],
        "won": [False, True, True, True, False, True, True, True, None],
    })  # fmt: skip
    t = calibration_table(pos, bins=10)
    assert dict(t.schema) == CALIBRATION
    assert t.height == 10  # every bin, empty ones too
    assert t["bin"].to_list()[:2] == ["0.00-0.10", "0.10-0.20"] and t["bin"][-1] == "0.90-1.00"
    # 0.10 sits on an inner edge and goes to the bin above; 1.0 to the last bin; the
    # position without an outcome (0.3) is left out.
    assert t["positions"].to_list() == [2, 1, 0, 0, 0, 3, 0, 0, 0, 2]
    assert t["wins"].to_list() == [1, 1, 0, 0, 0, 2, 0, 0, 0, 2]
    b0, b5, b9 = (t.row(i, named=True) for i in (0, 5, 9))
    assert b0["mean_price"] == approx(0.065) and b0["win_rate"] == 0.5
    assert (b0["ci_low"], b0["ci_high"]) == approx((0.094531, 0.905469), abs=1e-6)
    assert b5["mean_price"] == approx(0.56) and b5["win_rate"] == approx(2 / 3)
    assert (b5["ci_low"], b5["ci_high"]) == approx((0.207660, 0.938508), abs=1e-6)
    assert b9["mean_price"] == approx(0.975) and b9["win_rate"] == 1.0
    assert b9["ci_high"] == 1.0
    empty = t.row(3, named=True)
    assert all(math.isnan(empty[c]) for c in ("mean_price", "win_rate", "ci_low", "ci_high"))
    none = calibration_table(pos.clear(), bins=4)
    assert none["positions"].to_list() == [0, 0, 0, 0]
