"""The Books container, its validation, and the level walks."""

from __future__ import annotations

import numpy as np
import pytest

from polyrl.broker import ASK, BID, UP, Books, best_price, walk_buy, walk_sell

from .helpers import make_books


def test_books_shape_checks() -> None:
    with pytest.raises(ValueError, match=r"books.px must have shape"):
        Books(px=np.zeros((2, 2, 3)), size=np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match=r"books.size shape"):
        Books(px=np.zeros((2, 2, 2, 3)), size=np.zeros((2, 2, 2, 4)))
    b = Books(px=np.zeros((3, 2, 2, 4), dtype=np.float32), size=np.zeros((3, 2, 2, 4)))
    assert b.px.dtype == np.float64 and b.n == 3 and b.levels == 4
    assert b.select([2, 0]).n == 2


def test_validate_accepts_a_good_book_and_names_the_fault() -> None:
    good = make_books([{"up_bid": [(0.49, 10), (0.48, 5)], "up_ask": [(0.51, 3), (0.53, 1)]}])
    good.validate()
    bad = make_books([{}, {"up_ask": [(0.51, 3), (0.50, 1)]}])
    with pytest.raises(ValueError, match="market 1, token Up, side ask, level 0"):
        bad.validate()
    gap = make_books([{"down_bid": [(0.49, 10), (0.48, 5)]}])
    gap.size[0, 1, BID, 0] = 0.0
    with pytest.raises(ValueError, match="contiguous.*token Down, side bid"):
        gap.validate()
    neg = make_books([{"up_bid": [(0.49, -1)]}])
    with pytest.raises(ValueError, match="books.size"):
        neg.validate()
    price = make_books([{"up_bid": [(1.2, 1)]}])
    with pytest.raises(ValueError, match=r"books.px must be in \(0, 1\)"):
        price.validate()


def test_walk_buy_three_levels_and_fak() -> None:
    px = np.array([[0.50, 0.51, 0.55], [0.40, 0.45, np.nan]])
    size = np.array([[4.0, 2.0, 100.0], [5.0, 4.0, 0.0]])
    w = walk_buy(px, size, np.array([5.0, 5.0]))
    # Market 0: 2.00 + 1.02 whole, then 1.98 / 0.55 = 3.6 shares of level 2.
    np.testing.assert_allclose(w.shares, [[4, 2, 3.6], [5, 4, 0]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(w.total_notional, [5.0, 3.8], rtol=0, atol=1e-12)
    np.testing.assert_allclose(w.total_shares, [9.6, 9.0], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(w.levels, [3, 2])
    np.testing.assert_array_equal(w.complete, [True, False])
    assert np.isfinite(w.notional).all()


def test_walk_sell_partial_and_skips_unusable_levels() -> None:
    px = np.array([[0.60, np.nan, 0.55], [0.30, 0.29, 0.28]])
    size = np.array([[2.0, 7.0, 1.0], [10.0, 10.0, 10.0]])
    w = walk_sell(px, size, np.array([5.0, 15.0]))
    np.testing.assert_array_equal(w.shares, [[2, 0, 1], [10, 5, 0]])
    np.testing.assert_allclose(w.total_notional, [1.75, 4.45], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(w.complete, [False, True])
    np.testing.assert_array_equal(w.levels, [2, 2])


def test_best_price() -> None:
    b = make_books([{"up_bid": [(0.49, 10)]}, {}])
    price, has = best_price(b.px[:, UP, BID], b.size[:, UP, BID])
    np.testing.assert_array_equal(has, [True, False])
    assert price[0] == 0.49 and np.isnan(price[1])
    price, has = best_price(b.px[:, UP, ASK], b.size[:, UP, ASK])
    assert not has.any()
