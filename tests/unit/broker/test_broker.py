"""PaperBroker scenarios computed by hand (exact to 1e-9 USDC or better)."""

from __future__ import annotations

import numpy as np
import pytest

from polyrl.broker import (
    BrokerConfig,
    MarketRules,
    PaperBroker,
    StepResult,
)
from polyrl.broker.book import Books
from polyrl.broker.results import Fills

from .helpers import make_books

TOL = 1e-9
T = np.array([True])
F = np.array([False])


def act(
    br: PaperBroker, action: int, books: Books, tradable: np.ndarray = T, t: int = 0
) -> StepResult:
    return br.step(np.array([action]), books, tradable, t)


def close(a: float, b: float) -> bool:
    return abs(a - b) <= TOL


# A position bought at 0.50: 10 shares for 5.00 USDC + 0.175 fee (0.07 * 10 * 0.25).
ENTRY = make_books([{"up_ask": [(0.50, 100)], "up_bid": [(0.48, 100)], "down_ask": [(0.52, 100)]}])
# Later: Up bids 0.60 x 4 then 0.58 x 100; Down asks 0.42 x 100.
LATER = make_books(
    [{"up_bid": [(0.60, 4), (0.58, 100)], "up_ask": [(0.62, 50)], "down_ask": [(0.42, 100)]}]
)


def long_up(config: BrokerConfig | None = None) -> PaperBroker:
    br = PaperBroker(1, config)
    r = act(br, 1, ENTRY, t=1_000)
    assert r.buy.shares[0] == 10.0 and close(br.cost[0], 5.175)
    return br


def test_buy_walks_three_levels() -> None:
    books = make_books([{"up_ask": [(0.50, 4), (0.51, 2), (0.55, 100)]}])
    br = PaperBroker(1)
    r = act(br, 1, books, t=7)
    # 4 @ 0.50 (2.00) + 2 @ 0.51 (1.02) + 1.98 / 0.55 = 3.6 @ 0.55 -> 9.6 shares for 5.00.
    assert close(r.buy.shares[0], 9.6) and close(r.buy.notional[0], 5.0)
    assert close(r.buy.avg_price[0], 5.0 / 9.6)
    # Fees per level, floored: 0.07 + 0.03498 (0.034986) + 0.06237.
    assert close(r.buy.fee[0], 0.16735)
    assert r.buy.levels[0] == 3 and not r.buy.partial[0] and r.buy.rejected[0] == 0
    assert r.buy.side[0] == 1 and r.buy.token[0] == 0
    assert br.held[0] == 0 and br.entry_ns[0] == 7 and br.trades[0] == 1
    assert close(br.cost[0], 5.16735) and close(br.shares[0], 9.6) and close(br.fees[0], 0.16735)
    assert r.rewards[0] == 0.0 and r.sell.side[0] == 0


def test_partial_fill_when_depth_runs_out() -> None:
    books = make_books([{"down_ask": [(0.40, 5), (0.45, 4)]}])
    br = PaperBroker(1)
    r = act(br, 2, books)
    # All of the book: 5 @ 0.40 + 4 @ 0.45 = 3.80 USDC; the other 1.20 is cancelled.
    assert r.buy.shares[0] == 9.0 and close(r.buy.notional[0], 3.8)
    assert close(r.buy.fee[0], 0.084 + 0.0693)
    assert r.buy.partial[0] and r.buy.levels[0] == 2 and r.buy.token[0] == 1
    assert br.held[0] == 1 and close(br.cost[0], 3.8 + 0.1533)


@pytest.mark.parametrize(
    ("capital", "ask", "code"),
    [
        (2.0, 0.50, 2),  # 1.00 USDC / 0.50 = 2 shares < 5
        (1.5, 0.10, 3),  # 0.75 / 0.10 = 7.5 shares, but 0.75 USDC < 1
        (10.0, None, 4),  # no asks at all
    ],
)
def test_buy_rejections(capital: float, ask: float | None, code: int) -> None:
    books = make_books([{"up_ask": [(ask, 100)]} if ask else {"up_bid": [(0.4, 10)]}])
    br = PaperBroker(1, BrokerConfig(capital=capital))
    before = br.state_dict()
    r = act(br, 1, books)
    assert r.buy.rejected[0] == code and r.buy.side[0] == 1 and r.buy.token[0] == 0
    assert r.buy.shares[0] == 0 and np.isnan(r.buy.avg_price[0])
    for key, value in br.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_sell_rejections_below_min_size_and_min_notional() -> None:
    # A partial buy leaves 3 shares (< 5): the close is rejected and the position stays.
    br = PaperBroker(1)
    act(br, 1, make_books([{"up_ask": [(0.50, 3)]}]))
    r = act(br, 2, LATER)
    assert r.sell.rejected[0] == 2 and r.sell.side[0] == -1 and br.shares[0] == 3.0
    # 6 shares into a 0.10 bid is 0.60 USDC < 1.
    br = PaperBroker(1)
    act(br, 1, make_books([{"up_ask": [(0.50, 6)]}]))
    r = act(br, 2, make_books([{"up_bid": [(0.10, 100)]}]))
    assert r.sell.rejected[0] == 3 and br.shares[0] == 6.0
    r = act(br, 2, make_books([{"down_ask": [(0.9, 100)]}]))
    assert r.sell.rejected[0] == 4 and br.held[0] == 0


@pytest.mark.parametrize(
    ("capital", "price", "rate", "exponent", "enabled", "expected"),
    [
        (100.0, 0.5, 0.07, 1.0, True, 1.75),
        (20.0, 0.1, 0.07, 1.0, True, 0.63),
        (100.0, 0.5, 0.25, 2.0, True, 0.78125),
        (20.0, 0.1, 0.25, 2.0, True, 0.02025),
        (100.0, 0.5, 0.07, 1.0, False, 0.0),
    ],
)
def test_fee_of_a_100_share_fill(
    capital: float, price: float, rate: float, exponent: float, enabled: bool, expected: float
) -> None:
    rules = MarketRules.uniform(1, fee_rate=rate, fee_exponent=exponent, fees_enabled=enabled)
    br = PaperBroker(1, BrokerConfig(capital=capital), rules)
    r = act(br, 1, make_books([{"up_ask": [(price, 1000)]}]))
    assert close(r.buy.shares[0], 100.0)
    assert close(r.buy.fee[0], expected)
    assert close(br.cost[0], capital / 2 + expected)


def test_fee_is_rounded_per_level() -> None:
    br = PaperBroker(1, BrokerConfig(capital=4.0), MarketRules.uniform(1, min_size=1.0))
    act(br, 1, make_books([{"up_ask": [(0.50, 4)]}]))  # 4 shares for 2.00, fee 0.07
    assert br.shares[0] == 4.0 and close(br.cost[0], 2.07)
    r = act(br, 2, make_books([{"up_bid": [(0.51, 2), (0.49, 2)]}]))
    # Each level: 0.07 * 2 * 0.2499 = 0.034986 -> 0.03498; together 0.06996, whereas
    # rounding the sum (0.069972) would give 0.06997.
    assert r.sell.fee[0] == 0.06996
    assert close(r.realized[0], 2.0 - 0.06996 - 2.07)


def test_opposite_signal_closes_with_exact_pnl() -> None:
    br = long_up()
    r = act(br, 2, LATER, t=2_000)
    # Sell 10: 4 @ 0.60 = 2.40, 6 @ 0.58 = 3.48; fees 0.0672 + 0.10231 (0.102312).
    assert close(r.sell.notional[0], 5.88) and close(r.sell.fee[0], 0.16951)
    pnl = 5.88 - 0.16951 - 5.175
    assert close(r.realized[0], pnl) and close(r.rewards[0], pnl)
    assert r.sell.levels[0] == 2 and not r.sell.partial[0] and r.sell.token[0] == 0
    assert r.buy.side[0] == 0  # close does not open the opposite
    assert br.held[0] == -1 and br.shares[0] == 0 and br.cost[0] == 0 and br.entry_ns[0] == -1
    assert br.wins[0] == 1 and br.losses[0] == 0 and br.trades[0] == 2
    assert close(br.realized[0], pnl) and close(br.fees[0], 0.175 + 0.16951)


def test_flip_closes_then_opens_the_other_token() -> None:
    br = long_up(BrokerConfig(on_opposite="flip"))
    r = act(br, 2, LATER, t=2_000)
    assert close(r.realized[0], 5.88 - 0.16951 - 5.175)
    # Then 5.00 / 0.42 Down shares, fee 0.07 * 5.00 * 0.58 = 0.203.
    assert close(r.buy.shares[0], 5.0 / 0.42) and close(r.buy.fee[0], 0.203)
    assert r.buy.token[0] == 1 and r.sell.token[0] == 0
    assert br.held[0] == 1 and br.entry_ns[0] == 2_000 and close(br.cost[0], 5.203)
    assert br.trades[0] == 3 and br.wins[0] == 1
    rows = r.trade_rows()
    assert [(row["side"], row["token"], row["action"]) for row in rows] == [
        (-1, 0, "SELL"),
        (1, 1, "SELL"),
    ]
    assert rows[1]["realized_pnl"] is None and close(rows[0]["realized_pnl"], r.realized[0])


def test_flip_after_a_partial_close_opens_nothing() -> None:
    br = long_up(BrokerConfig(on_opposite="flip"))
    thin = make_books([{"up_bid": [(0.60, 4)], "down_ask": [(0.42, 100)]}])
    r = act(br, 2, thin)
    assert r.sell.partial[0] and r.sell.shares[0] == 4.0 and r.buy.side[0] == 0
    # 4 of 10 shares sold: 40% of the cost leaves with them.
    assert close(r.realized[0], 2.4 - 0.0672 - 0.4 * 5.175)
    assert br.held[0] == 0 and br.shares[0] == 6.0 and close(br.cost[0], 0.6 * 5.175)
    assert br.wins[0] + br.losses[0] == 0  # not closed yet


def test_ignore_keeps_the_position() -> None:
    br = long_up(BrokerConfig(on_opposite="ignore"))
    before = br.state_dict()
    r = act(br, 2, LATER)
    assert r.sell.side[0] == 0 and r.buy.side[0] == 0 and r.rewards[0] == 0
    for key, value in br.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_same_signal_hold_versus_add() -> None:
    br = long_up()
    r = act(br, 1, ENTRY)
    assert r.buy.side[0] == 0 and br.shares[0] == 10.0 and br.trades[0] == 1

    br = long_up(BrokerConfig(on_same="add"))
    r = act(br, 1, ENTRY, t=5_000)
    # Room left: 10 - 5.175 = 4.825 USDC -> 9.65 shares, fee 0.07 * 9.65 * 0.25 = 0.16887(5).
    assert close(r.buy.notional[0], 4.825) and close(r.buy.fee[0], 0.16887)
    assert close(br.shares[0], 19.65) and close(br.cost[0], 5.175 + 4.825 + 0.16887)
    assert br.entry_ns[0] == 1_000  # the position's entry time is its first buy
    # Capital used up: a third BUY sends no order at all.
    r = act(br, 1, ENTRY)
    assert r.buy.side[0] == 0 and r.buy.rejected[0] == 0 and br.trades[0] == 2
    r = act(br, 1, ENTRY, tradable=F)
    assert r.buy.side[0] == 0 and r.buy.rejected[0] == 0


@pytest.mark.parametrize(("up_won", "pnl", "win"), [(True, 10.0 - 5.175, 1), (False, -5.175, 0)])
def test_settlement_both_ways(up_won: bool, pnl: float, win: int) -> None:
    br = long_up()
    d = br.settle_detail(np.array([True]), np.array([up_won]))
    assert close(d.pnl[0], pnl) and close(d.rewards[0], pnl) and d.payout[0] == 10.0 * up_won
    assert br.wins[0] == win and br.losses[0] == 1 - win and close(br.realized[0], pnl)
    assert br.held[0] == -1 and br.shares[0] == 0 and br.cost[0] == 0
    rows = d.trade_rows(9_000)
    assert len(rows) == 1 and rows[0]["action"] == "SETTLE" and rows[0]["avg_price"] == up_won


def test_settle_uses_the_outcome_it_is_given() -> None:
    # A tie resolves Up; the caller says so with up_won=True and the Down holder loses.
    br = PaperBroker(2)
    books = make_books([{"down_ask": [(0.5, 100)]}, {"down_ask": [(0.5, 100)]}])
    br.step(np.array([2, 2]), books, np.array([True, True]), 0)
    rewards = br.settle(np.array([True, False]), np.array([True, False]))
    assert close(rewards[0], -5.175) and rewards[1] == 0.0
    assert br.held.tolist() == [-1, 1]  # the unmasked market keeps its position
    rewards = br.settle(np.array([True, True]), np.array([True, False]))
    assert rewards[0] == 0.0 and close(rewards[1], 10.0 - 5.175)


def test_split_resolution_pays_half_a_dollar_a_share_of_either_token() -> None:
    # Gamma outcomePrices ["0.5", "0.5"]: each share of Up or Down redeems for $0.50.
    br = PaperBroker(3)
    books = make_books([{"up_ask": [(0.5, 100)]}, {"down_ask": [(0.5, 100)]}, {}])
    br.step(np.array([1, 2, 0]), books, np.array([True, True, True]), 0)
    shares, cost = br.shares.copy(), br.cost.copy()
    d = br.settle_detail(
        np.array([True, True, True]), np.array([True, True, True]), np.array([True, True, True])
    )
    assert d.settled.tolist() == [True, True, False]
    assert np.allclose(d.payout, [0.5 * shares[0], 0.5 * shares[1], 0.0])
    assert np.allclose(d.pnl[:2], 0.5 * shares[:2] - cost[:2]) and d.pnl[2] == 0.0
    assert [r["avg_price"] for r in d.trade_rows(1)] == [0.5, 0.5]
    assert br.held.tolist() == [-1, -1, -1]
    # Without split the same call pays the Up holder $1 a share and the Down holder nothing.
    br.step(np.array([1, 2, 0]), books, np.array([True, True, True]), 0)
    d = br.settle_detail(np.array([True, True, True]), np.array([True, True, True]))
    assert np.allclose(d.payout[:2], [shares[0], 0.0])


def test_position_features() -> None:
    br = PaperBroker(3)
    books = make_books(
        [
            {"up_ask": [(0.50, 100)], "up_bid": [(0.60, 100)]},
            {"down_ask": [(0.50, 100)]},  # Down bought, no Down bid
            {"up_bid": [(0.60, 100)]},
        ]
    )
    br.step(np.array([1, 2, 0]), books, np.array([True, True, True]), 0)
    f = br.position_features(books)
    assert f.dtype == np.float32 and f.shape == (3, 3)
    np.testing.assert_array_equal(f[:, 0], [1, 1, 0])
    np.testing.assert_array_equal(f[:, 1], [1, -1, 0])
    assert f[0, 2] == np.float32((10 * 0.60 - 5.175) / 5.175)
    assert f[1, 2] == 0.0 and f[2, 2] == 0.0


def test_not_tradable_markets_ignore_actions() -> None:
    br = long_up()
    before = br.state_dict()
    for action in (0, 1, 2):
        r = act(br, action, LATER, tradable=F)
        assert r.rewards[0] == 0 and not r.sell.filled[0] and not r.buy.filled[0]
    assert r.sell.rejected[0] == 1 and r.sell.side[0] == -1  # the close it would have sent
    for key, value in br.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    flat = PaperBroker(1)
    r = act(flat, 1, ENTRY, tradable=F)
    assert r.buy.rejected[0] == 1 and flat.held[0] == -1
    r = act(flat, 0, ENTRY, tradable=F)
    assert r.buy.rejected[0] == 0 and r.buy.side[0] == 0
    assert len(r.trade_rows(include_rejected=True)) == 0


def test_shaped_reward_telescopes() -> None:
    cfg = BrokerConfig(reward="shaped", shaping_unrealized_coef=0.5, shaping_trade_penalty=0.01)
    br = PaperBroker(1, cfg)
    r1 = act(br, 1, ENTRY)  # U = 10 * 0.48 - 5.175 = -0.375
    assert close(r1.rewards[0], 0.5 * -0.375 - 0.01)
    r2 = act(br, 0, make_books([{"up_bid": [(0.55, 100)]}]))  # U = 0.325
    assert close(r2.rewards[0], 0.5 * 0.7)
    r3 = act(br, 0, Books.empty(1, 5), tradable=F)  # no usable book: U keeps its mark
    assert r3.rewards[0] == 0.0 and close(br.unrealized[0], 0.325)
    r4 = act(br, 0, Books.empty(1, 5))  # tradable, no bid: still marked at 0.55
    assert r4.rewards[0] == 0.0
    final = br.settle(np.array([True]), np.array([True]))
    assert close(final[0], 4.825 - 0.5 * 0.325)
    total = r1.rewards[0] + r2.rewards[0] + final[0]
    assert close(total, 4.825 - 0.01)  # shaping moved credit, only the penalty remains


def test_shaped_reward_on_a_closing_step() -> None:
    cfg = BrokerConfig(reward="shaped", shaping_unrealized_coef=0.5, shaping_trade_penalty=0.01)
    br = PaperBroker(1, cfg)
    r1 = act(br, 1, ENTRY)  # U = -0.375 after the buy
    r2 = act(br, 2, LATER)  # close: U goes back to 0
    pnl = 5.88 - 0.16951 - 5.175
    assert close(r2.realized[0], pnl)
    assert close(r2.rewards[0], pnl + 0.5 * 0.375 - 0.01)
    assert close(r1.rewards[0] + r2.rewards[0], pnl - 0.02)


def test_trade_rows_include_rejected() -> None:
    br = PaperBroker(2, BrokerConfig(capital=2.0))
    books = make_books([{"up_ask": [(0.5, 100)]}, {"up_ask": [(0.1, 100)]}])
    r = br.step(np.array([1, 1]), books, np.array([True, True]), 123)
    assert r.trade_rows() == [
        {
            "t_ns": 123,
            "market": 1,
            "action": "BUY",
            "token": 0,
            "side": 1,
            "shares": 10.0,
            "avg_price": 0.1,
            "notional": 1.0,
            "fee": 0.063,
            "realized_pnl": None,
            "levels": 1,
            "partial": False,
            "reject": 0,
        }
    ]
    rows = r.trade_rows(include_rejected=True)
    assert [(row["market"], row["reject"], row["shares"]) for row in rows] == [
        (0, 2, 0.0),
        (1, 0, 10.0),
    ]


def test_reset_and_set_rules_by_mask() -> None:
    br = PaperBroker(2)
    books = make_books([{"up_ask": [(0.5, 100)]}, {"up_ask": [(0.5, 100)]}])
    br.step(np.array([1, 1]), books, np.array([True, True]), 0)
    br.reset(np.array([True, False]))
    assert br.held.tolist() == [-1, 0] and br.cost[0] == 0 and br.trades.tolist() == [1, 1]
    br.reset(np.array([True, False]), stats=True)
    assert br.trades.tolist() == [0, 1] and br.fees[0] == 0 and br.fees[1] > 0
    br.set_rules(MarketRules.uniform(2, fees_enabled=False), np.array([False, True]))
    assert br.rules.fees_enabled.tolist() == [True, False]
    br.reset()
    r = br.step(np.array([1, 1]), books, np.array([True, True]), 0)
    assert r.buy.fee[0] == 0.175 and r.buy.fee[1] == 0.0


def test_bad_inputs_are_named() -> None:
    br = PaperBroker(2)
    books = Books.empty(2, 3)
    with pytest.raises(ValueError, match="actions must be 0"):
        br.step(np.array([0, 3]), books, np.array([True, True]), 0)
    with pytest.raises(ValueError, match="actions must be an integer array"):
        br.step(np.array([0.0, 1.0]), books, np.array([True, True]), 0)
    with pytest.raises(ValueError, match="tradable"):
        br.step(np.array([0, 1]), books, np.array([1, 1]), 0)
    with pytest.raises(ValueError, match="books has 3 markets"):
        br.step(np.array([0, 1]), Books.empty(3, 3), np.array([True, True]), 0)
    with pytest.raises(ValueError, match="rules has 1 markets"):
        br.set_rules(MarketRules.uniform(1))
    with pytest.raises(ValueError, match="n \\(market slots\\)"):
        PaperBroker(0)
    checked = PaperBroker(1, BrokerConfig(check_books=True))
    with pytest.raises(ValueError, match="strictly"):
        act(checked, 0, make_books([{"up_bid": [(0.4, 1), (0.5, 1)]}]))


def test_split_off_moves_a_position_and_settles_it_identically() -> None:
    """The Engine parks a position whose window ended in a split-off broker; settling it
    there pays exactly what settling it in place would have."""
    import numpy as np

    from polyrl.broker import Books, PaperBroker

    px = np.full((2, 2, 2, 2), np.nan)
    size = np.zeros((2, 2, 2, 2))
    px[:, 0, 1, 0], size[:, 0, 1, 0] = 0.40, 100.0  # Up asks
    px[:, 1, 1, 0], size[:, 1, 1, 0] = 0.62, 100.0  # Down asks
    books = Books(px, size)
    a = PaperBroker(2)
    a.step(np.array([1, 2]), books, np.array([True, True]), 5)
    b = PaperBroker(2)
    b.step(np.array([1, 2]), books, np.array([True, True]), 5)
    parked = a.split_off([1])
    assert a.held.tolist() == [0, -1] and a.shares[1] == 0.0
    assert parked.held.tolist() == [1]
    got = parked.settle_detail(np.array([True]), np.array([False]))
    want = b.settle_detail(np.array([False, True]), np.array([False, False]))
    assert got.pnl[0] == want.pnl[1]
    assert got.payout[0] == want.payout[1] > 0


def test_step_takes_time_as_scalar_or_array_and_any_integer_actions() -> None:
    books = make_books([{"up_ask": [(0.5, 100)]}] * 3)
    tr = np.ones(3, dtype=bool)
    for t in (7, np.int64(7), np.array([7, 7, 7]), np.array([7])):
        r = PaperBroker(3).step(np.array([1, 0, 1], dtype=np.uint8), books, tr, t)
        assert r.t_ns.dtype == np.int64
        np.testing.assert_array_equal(r.t_ns, [7, 7, 7])
        assert [row["t_ns"] for row in r.trade_rows()] == [7, 7]
    times = np.array([1, 2, 3])
    r = PaperBroker(3).step(np.array([1, 1, 1]), books, tr, times)
    times[:] = 0  # the result holds its own copy
    np.testing.assert_array_equal(r.t_ns, [1, 2, 3])
    with pytest.raises(ValueError):
        PaperBroker(3).step(np.array([1, 1, 1]), books, tr, np.array([1, 2]))
    with pytest.raises(ValueError, match="integer array"):
        PaperBroker(3).step(np.array([True, False, True]), books, tr, 0)


def test_fills_none_hands_out_fresh_arrays() -> None:
    a = Fills.none(4)
    a.avg_price[:] = 1.0
    a.token[:] = 1
    b = Fills.none(4)
    assert np.isnan(b.avg_price).all() and (b.token == -1).all()
    assert b.avg_price.dtype == np.float64 and b.token.dtype == np.int8


def _reference_trade_rows(r: StepResult, include_rejected: bool) -> list[dict[str, object]]:
    """StepResult.trade_rows written out market by market from numpy scalars."""
    rows = []
    for i in range(r.actions.shape[0]):
        for leg, pnl in ((r.sell, float(r.realized[i])), (r.buy, None)):
            if leg.shares[i] > 0 or (include_rejected and leg.rejected[i] > 0):
                rows.append({
                    "t_ns": int(r.t_ns[i]), "market": i,
                    "action": ("HOLD", "BUY", "SELL")[int(r.actions[i])],
                    "token": int(leg.token[i]), "side": int(leg.side[i]),
                    "shares": float(leg.shares[i]), "avg_price": float(leg.avg_price[i]),
                    "notional": float(leg.notional[i]), "fee": float(leg.fee[i]),
                    "realized_pnl": pnl if leg.shares[i] > 0 else None,
                    "levels": int(leg.levels[i]), "partial": bool(leg.partial[i]),
                    "reject": int(leg.rejected[i]),
                })  # fmt: skip
    return rows


def test_trade_rows_equal_a_row_by_row_reference() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        legs = []
        for _side in (-1, 1):
            f = Fills.none(n)
            sent = rng.random(n) < 0.6
            filled = sent & (rng.random(n) < 0.7)
            f.side[sent] = _side
            f.token[sent] = rng.integers(0, 2, n)[sent]
            f.shares[filled] = rng.uniform(0.1, 20, n)[filled]
            f.notional[filled] = rng.uniform(0.1, 10, n)[filled]
            f.avg_price[filled] = f.notional[filled] / f.shares[filled]
            f.fee[filled] = rng.uniform(0, 0.1, n)[filled]
            f.levels[filled] = rng.integers(1, 5, n)[filled]
            f.partial[filled] = rng.random(n)[filled] < 0.3
            f.rejected[sent & ~filled] = rng.integers(1, 5, n)[sent & ~filled]
            legs.append(f)
        r = StepResult(
            rewards=rng.random(n), realized=rng.normal(size=n), sell=legs[0], buy=legs[1],
            actions=rng.integers(0, 3, n).astype(np.int8), t_ns=rng.integers(0, 2**62, n),
        )  # fmt: skip
        for inc in (False, True):
            got, want = r.trade_rows(include_rejected=inc), _reference_trade_rows(r, inc)
            assert repr(got) == repr(want)  # repr: NaN prices compare equal
            assert len(got) > 0 or not (r.sell.shares.any() or r.buy.shares.any())
            assert [type(v) for row in got for v in row.values()] == [
                type(v) for row in want for v in row.values()
            ]
