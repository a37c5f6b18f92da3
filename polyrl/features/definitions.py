"""Feature definitions: what each feature means, in which units, over which window, from which
stream (pure data: nothing is computed here).

Every feature is documented here — definition, units, window and source stream — and
listed by ``polyrl features [--set NAME]``. The FeatureEngine computes the *market*
features (everything that does not depend on the agent); the three *position* features
come from the PaperBroker. An observation is the set's features in the set's order.

Sources, in short: momentum, volatility and regime read the Binance **spot** mid
(``binance.spot.book_ticker``, with ``binance.spot.kline`` 1m closes before live data
starts); order-book imbalance reads the Binance **spot** partial book
(``binance.spot.depth``); trade flow, CVD, intensity and large trades read Binance
**USD-M** aggTrades (``binance.futures.trade``: the deepest flow); spread and the Up token's
price read the **Polymarket** book of the market traded (``polymarket.book`` +
``polymarket.price_change``); the reference move reads ``reference.price``.

The ``history`` set keeps those ideas computable from what the public archives hold (Binance
aggTrades and klines, mark/index klines with funding, 5-minute open-interest metrics, and the
Polymarket market channel; no Binance book ticker, no partial book, no settlement reference):
the spot price P is the last Binance **spot aggTrade** price (``binance.spot.trade``), and
order-book imbalance is read from the **Polymarket Up token's** book (``up_imbalance_l1`` and
``up_imbalance_l5`` stand in for ``ob_imbalance_l1`` and ``ob_imbalance_l5``).

Why the last trade and not the closed 1 s kline: a 1 s bar's close *is* the last trade
price of its second, but it is only known once the bar has closed (recv = close time + the
import's delay), up to a second after the trade that set it; the trade itself is known from
its own receive time. So the trade price is the same number, never later, and needs no
bar-closing rule (a market is not ready while the last spot trade is older than
``[features] stale_s``, as with a silent book ticker). 1 s klines are not read by any set;
1 m klines (``interval == "1m"``, closed bars only, each from its own receive time) are the
warm-up history before the first live price.
The settlement reference move (``ref_move``, ``fair_up``, ``fair_gap``) is not in ``history``:
the archives hold no reference feed, and a Binance spot move would be a different number than
the Chainlink price the market settles on; like ``seed18``, ``history`` goes without it.

Which features a set holds, and in which order, is :mod:`polyrl.features.sets`; which streams
a set therefore needs, and the refusal of days that lack one, is
:mod:`polyrl.features.streams`.
"""

from __future__ import annotations

from dataclasses import dataclass

BOOK_TICKER = "binance.spot.book_ticker"
SPOT_TRADE = "binance.spot.trade"
SPOT_KLINE = "binance.spot.kline"
SPOT_DEPTH = "binance.spot.depth"
FUT_TRADE = "binance.futures.trade"
PM_BOOK = ("polymarket.book", "polymarket.price_change")
REFERENCE = "reference.price"


@dataclass(frozen=True, slots=True)
class FeatureDef:
    """One feature: name, definition, units, window and source."""

    name: str
    definition: str
    units: str
    window: str
    source: str
    needs: tuple[str, ...] = ()
    """Streams without which the feature cannot be computed."""
    optional: tuple[str, ...] = ()
    """Streams read when present (warm-up history), not required."""


_DEFS = (
    FeatureDef(
        "returns_1m",
        "ln(P(t) / P(t - 60 s)), P = Binance spot mid (b+a)/2",
        "log return",
        "60 s",
        "binance.spot.book_ticker (+ kline closes before live data)",
        needs=(BOOK_TICKER,),
        optional=(SPOT_KLINE,),
    ),
    FeatureDef(
        "returns_5m",
        "ln(P(t) / P(t - 5 min))",
        "log return",
        "5 min",
        "binance.spot.book_ticker (+ kline closes)",
        needs=(BOOK_TICKER,),
        optional=(SPOT_KLINE,),
    ),
    FeatureDef(
        "returns_10m",
        "ln(P(t) / P(t - 10 min))",
        "log return",
        "10 min",
        "binance.spot.book_ticker (+ kline closes)",
        needs=(BOOK_TICKER,),
        optional=(SPOT_KLINE,),
    ),
    FeatureDef(
        "ob_imbalance_l1",
        "(bid qty - ask qty) / (bid qty + ask qty) at level 1 of the latest spot partial book",
        "-1..1",
        "latest book",
        "binance.spot.depth",
        needs=(SPOT_DEPTH,),
    ),
    FeatureDef(
        "ob_imbalance_l5",
        "the same over the summed quantities of levels 1-5",
        "-1..1",
        "latest book",
        "binance.spot.depth",
        needs=(SPOT_DEPTH,),
    ),
    FeatureDef(
        "trade_flow",
        "signed taker volume / total volume of USD-M aggTrades (+ taker buy, - taker sell)",
        "-1..1",
        "60 s",
        "binance.futures.trade",
        needs=(FUT_TRADE,),
    ),
    FeatureDef(
        "cvd_accel",
        "(CVD change over the last 30 s - CVD change over the 30 s before) "
        "/ total volume over those 60 s",
        "-2..2",
        "60 s",
        "binance.futures.trade",
        needs=(FUT_TRADE,),
    ),
    FeatureDef(
        "spread_pct",
        "(best ask - best bid) / mid of the Up token of the current window",
        "fraction of mid",
        "latest book",
        "polymarket.book + polymarket.price_change",
        needs=PM_BOOK,
    ),
    FeatureDef(
        "trade_intensity",
        "ln((aggTrades in the last 60 s + 1) / (mean per 60 s over the "
        "last 30 min (or as much as is covered, at least 5 min) + 1))",
        "log ratio",
        "60 s vs 30 min",
        "binance.futures.trade",
        needs=(FUT_TRADE,),
    ),
    FeatureDef(
        "large_trade_flag",
        "1 if an aggTrade in the last 10 s had a notional >= "
        "large_trade_mult x the mean aggTrade notional of the last 30 min, else 0",
        "0/1",
        "10 s vs 30 min",
        "binance.futures.trade",
        needs=(FUT_TRADE,),
    ),
    FeatureDef(
        "vol_5m",
        "sqrt(mean of squared 1-second log returns of P over 5 min) x "
        "sqrt(60): realized volatility per sqrt(minute)",
        "log return / sqrt(min)",
        "5 min",
        "binance.spot.book_ticker",
        needs=(BOOK_TICKER,),
    ),
    FeatureDef(
        "vol_expansion",
        "ln(vol_1m / vol_5m), vol_1m the same over 1 min (0 when either is 0)",
        "log ratio",
        "1 min vs 5 min",
        "binance.spot.book_ticker",
        needs=(BOOK_TICKER,),
    ),
    FeatureDef(
        "has_position", "1 if the market has an open position, else 0", "0/1", "now", "PaperBroker"
    ),
    FeatureDef("position_side", "+1 long Up, -1 long Down, 0 flat", "-1/0/1", "now", "PaperBroker"),
    FeatureDef(
        "position_pnl",
        "(shares x best bid of the held token - cost) / cost, 0 when flat",
        "return on cost",
        "now",
        "PaperBroker + polymarket book",
        needs=PM_BOOK,
    ),
    FeatureDef(
        "time_remaining",
        "(window end - t) / 900 s",
        "0..1",
        "window",
        "polymarket.market",
        needs=("polymarket.market",),
    ),
    FeatureDef(
        "vol_regime",
        "ln(vol_5m / vol_30m), vol_30m from 1-minute log returns of P over "
        "30 min (per sqrt(minute)); clipped to +-3",
        "log ratio",
        "5 min vs 30 min",
        "binance.spot.book_ticker (+ kline closes)",
        needs=(BOOK_TICKER,),
        optional=(SPOT_KLINE,),
    ),
    FeatureDef(
        "trend_regime",
        "returns_10m / (vol_5m x sqrt(10)): the 10-minute move in units "
        "of its expected size; clipped to +-5",
        "z-score",
        "10 min",
        "binance.spot.book_ticker",
        needs=(BOOK_TICKER,),
        optional=(SPOT_KLINE,),
    ),
    FeatureDef(
        "up_mid",
        "(best bid + best ask) / 2 of the Up token",
        "probability",
        "latest book",
        "polymarket.book + polymarket.price_change",
        needs=PM_BOOK,
    ),
    FeatureDef(
        "up_spread",
        "best ask - best bid of the Up token",
        "probability",
        "latest book",
        "polymarket.book + polymarket.price_change",
        needs=PM_BOOK,
    ),
    FeatureDef(
        "ref_move",
        "ln(R(t) / R_open): R = the settlement reference price of the feed the market "
        "settles on (its Chainlink TWAP, else the instantaneous price), R_open = that "
        "feed's tick stamped at the window start (the last one at or before it); both among "
        "the ticks received by t, R(t) the one stamped last",
        "log return",
        "window so far",
        "reference.price",
        needs=(REFERENCE,),
    ),
    FeatureDef(
        "fair_up",
        "Phi(ref_move / (sigma x sqrt(time left))), sigma = vol_5m per "
        "sqrt(minute), time left in minutes: the probability of Up under a driftless "
        "normal approximation",
        "probability",
        "window",
        "reference.price + spot",
        needs=(REFERENCE, BOOK_TICKER),
    ),
    FeatureDef(
        "fair_gap",
        "fair_up - up_mid: how far the market's price is from that fair value",
        "probability",
        "window",
        "reference.price + polymarket book",
        needs=(REFERENCE, BOOK_TICKER, *PM_BOOK),
    ),
    FeatureDef(
        "funding_rate",
        "current USD-M funding rate x 1e4",
        "basis points per period",
        "latest",
        "binance.futures.mark",
        needs=("binance.futures.mark",),
    ),
    FeatureDef(
        "oi_change_5m",
        "ln(open interest now / 5 min ago)",
        "log ratio",
        "5 min",
        "binance.futures.open_interest",
        needs=("binance.futures.open_interest",),
    ),
    FeatureDef(
        "liq_intensity",
        "ln(1 + liquidated notional over 5 min / 10,000 USDT)",
        "log USDT",
        "5 min",
        "binance.futures.liquidation",
        needs=("binance.futures.liquidation",),
    ),
    FeatureDef(
        "up_imbalance_l1",
        "(bid size - ask size) / (bid size + ask size) at the best level of the Up token's "
        "Polymarket book (shares); 1 with no asks, -1 with no bids. In `history` it stands in "
        "for ob_imbalance_l1: the archives hold no Binance partial book",
        "-1..1",
        "latest book",
        "polymarket.book + polymarket.price_change",
        needs=PM_BOOK,
    ),
    FeatureDef(
        "up_imbalance_l5",
        "the same over the summed sizes of the Up token's best 5 levels per side (fewer when "
        "[features] book_levels keeps fewer); stands in for ob_imbalance_l5",
        "-1..1",
        "latest book",
        "polymarket.book + polymarket.price_change",
        needs=PM_BOOK,
    ),
)

FEATURES: dict[str, FeatureDef] = {d.name: d for d in _DEFS}

_TRADE_P = "P = the last Binance spot aggTrade price"
_TRADE_SRC = "binance.spot.trade (+ closed 1m kline closes before the first trade)"
TRADE_PRICE_DEFS: dict[str, FeatureDef] = {
    d.name: d
    for d in (
        FeatureDef(
            "returns_1m",
            f"ln(P(t) / P(t - 60 s)), {_TRADE_P} received by t",
            "log return",
            "60 s",
            _TRADE_SRC,
            needs=(SPOT_TRADE,),
            optional=(SPOT_KLINE,),
        ),
        FeatureDef(
            "returns_5m",
            f"ln(P(t) / P(t - 5 min)), {_TRADE_P}",
            "log return",
            "5 min",
            _TRADE_SRC,
            needs=(SPOT_TRADE,),
            optional=(SPOT_KLINE,),
        ),
        FeatureDef(
            "returns_10m",
            f"ln(P(t) / P(t - 10 min)), {_TRADE_P}",
            "log return",
            "10 min",
            _TRADE_SRC,
            needs=(SPOT_TRADE,),
            optional=(SPOT_KLINE,),
        ),
        FeatureDef(
            "vol_5m",
            "sqrt(mean of squared 1-second log returns of P over 5 min) x sqrt(60), "
            f"{_TRADE_P} as of each second: realized volatility per sqrt(minute)",
            "log return / sqrt(min)",
            "5 min",
            "binance.spot.trade",
            needs=(SPOT_TRADE,),
        ),
        FeatureDef(
            "vol_expansion",
            f"ln(vol_1m / vol_5m), vol_1m the same over 1 min (0 when either is 0); {_TRADE_P}",
            "log ratio",
            "1 min vs 5 min",
            "binance.spot.trade",
            needs=(SPOT_TRADE,),
        ),
        FeatureDef(
            "vol_regime",
            "ln(vol_5m / vol_30m), vol_30m from 1-minute log returns of P over 30 min (per "
            f"sqrt(minute)); clipped to +-3; {_TRADE_P}",
            "log ratio",
            "5 min vs 30 min",
            _TRADE_SRC,
            needs=(SPOT_TRADE,),
            optional=(SPOT_KLINE,),
        ),
        FeatureDef(
            "trend_regime",
            "returns_10m / (vol_5m x sqrt(10)): the 10-minute move in units of its expected "
            f"size; clipped to +-5; {_TRADE_P}",
            "z-score",
            "10 min",
            "binance.spot.trade",
            needs=(SPOT_TRADE,),
            optional=(SPOT_KLINE,),
        ),
    )
}
"""The spot-price features as a set whose P is the last spot trade computes them."""
