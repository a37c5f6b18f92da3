"""The bench's day estimate from its hours: the first hour once, the later ones' mean for
the other 23, the rest of the import (Gamma) scaled to 24 hours."""

from __future__ import annotations

import pytest

from polyrl.importers.bench import pmxt_day_cpu_s


def test_first_hour_once_later_hours_for_the_rest_of_the_day() -> None:
    # 10 s of hours (4 + 3 + 3) within 10.3 s: 0.3 s of Gamma over 3 hours -> 2.4 s a day.
    assert pmxt_day_cpu_s(10.3, [4.0, 3.0, 3.0]) == pytest.approx(4.0 + 23 * 3.0 + 2.4)
    assert pmxt_day_cpu_s(5.0, [3.0, 2.0]) == pytest.approx(3.0 + 23 * 2.0)


def test_one_hour_scales_by_24() -> None:
    assert pmxt_day_cpu_s(2.5, [2.4]) == pytest.approx(60.0)
    assert pmxt_day_cpu_s(2.5, []) == pytest.approx(60.0)
