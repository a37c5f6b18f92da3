"""Named feature sets: which features an observation holds, in which order, and what each means.

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

A set's ``version`` changes whenever its list or any feature's definition changes (it is a
digest of the list and of :data:`FEATURE_CODE_VERSION`, which must be bumped with any change
to the computations): checkpoints and caches built for another version are refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from polyrl.errors import ConfigError

FEATURE_CODE_VERSION = 3
"""Bump whenever a feature's computation changes (invalidates caches and checkpoints).

2: a token book silent longer than ``book_stale_s`` is not tradable; outages are dated
from the recorder's ``gap_start_ns`` in the windows' gap flags.
3: ``ref_move`` (and ``fair_up``, ``fair_gap``) read only reference ticks received by the
tick, and take the open and the current price by stamp, so a tick arriving out of stamp
order no longer moves them (a cache built from such a recording differs); the minute grid
resamples every kline-based minute when klines arrive, so it does not depend on batching;
``ref_move`` reads only the feed its market settles on (its Chainlink TWAP, else the
instantaneous price), and the windows table carries the reference flags."""

POSITION_FEATURES = ("has_position", "position_side", "position_pnl")


@dataclass(frozen=True, slots=True)
class FeatureDef:
    """One feature: name, definition, units, window and source."""

    name: str
    definition: str
    units: str
    window: str
    source: str


_DEFS = (
    FeatureDef(
        "returns_1m",
        "ln(P(t) / P(t - 60 s)), P = Binance spot mid (b+a)/2",
        "log return",
        "60 s",
        "binance.spot.book_ticker (+ kline closes before live data)",
    ),
    FeatureDef(
        "returns_5m",
        "ln(P(t) / P(t - 5 min))",
        "log return",
        "5 min",
        "binance.spot.book_ticker (+ kline closes)",
    ),
    FeatureDef(
        "returns_10m",
        "ln(P(t) / P(t - 10 min))",
        "log return",
        "10 min",
        "binance.spot.book_ticker (+ kline closes)",
    ),
    FeatureDef(
        "ob_imbalance_l1",
        "(bid qty - ask qty) / (bid qty + ask qty) at level 1 of the latest spot partial book",
        "-1..1",
        "latest book",
        "binance.spot.depth",
    ),
    FeatureDef(
        "ob_imbalance_l5",
        "the same over the summed quantities of levels 1-5",
        "-1..1",
        "latest book",
        "binance.spot.depth",
    ),
    FeatureDef(
        "trade_flow",
        "signed taker volume / total volume of USD-M aggTrades (+ taker buy, - taker sell)",
        "-1..1",
        "60 s",
        "binance.futures.trade",
    ),
    FeatureDef(
        "cvd_accel",
        "(CVD change over the last 30 s - CVD change over the 30 s before) "
        "/ total volume over those 60 s",
        "-2..2",
        "60 s",
        "binance.futures.trade",
    ),
    FeatureDef(
        "spread_pct",
        "(best ask - best bid) / mid of the Up token of the current window",
        "fraction of mid",
        "latest book",
        "polymarket.book + polymarket.price_change",
    ),
    FeatureDef(
        "trade_intensity",
        "ln((aggTrades in the last 60 s + 1) / (mean per 60 s over the "
        "last 30 min (or as much as is covered, at least 5 min) + 1))",
        "log ratio",
        "60 s vs 30 min",
        "binance.futures.trade",
    ),
    FeatureDef(
        "large_trade_flag",
        "1 if an aggTrade in the last 10 s had a notional >= "
        "large_trade_mult x the mean aggTrade notional of the last 30 min, else 0",
        "0/1",
        "10 s vs 30 min",
        "binance.futures.trade",
    ),
    FeatureDef(
        "vol_5m",
        "sqrt(mean of squared 1-second log returns of P over 5 min) x "
        "sqrt(60): realized volatility per sqrt(minute)",
        "log return / sqrt(min)",
        "5 min",
        "binance.spot.book_ticker",
    ),
    FeatureDef(
        "vol_expansion",
        "ln(vol_1m / vol_5m), vol_1m the same over 1 min (0 when either is 0)",
        "log ratio",
        "1 min vs 5 min",
        "binance.spot.book_ticker",
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
    ),
    FeatureDef("time_remaining", "(window end - t) / 900 s", "0..1", "window", "polymarket.market"),
    FeatureDef(
        "vol_regime",
        "ln(vol_5m / vol_30m), vol_30m from 1-minute log returns of P over "
        "30 min (per sqrt(minute)); clipped to +-3",
        "log ratio",
        "5 min vs 30 min",
        "binance.spot.book_ticker (+ kline closes)",
    ),
    FeatureDef(
        "trend_regime",
        "returns_10m / (vol_5m x sqrt(10)): the 10-minute move in units "
        "of its expected size; clipped to +-5",
        "z-score",
        "10 min",
        "binance.spot.book_ticker",
    ),
    FeatureDef(
        "up_mid",
        "(best bid + best ask) / 2 of the Up token",
        "probability",
        "latest book",
        "polymarket.book + polymarket.price_change",
    ),
    FeatureDef(
        "up_spread",
        "best ask - best bid of the Up token",
        "probability",
        "latest book",
        "polymarket.book + polymarket.price_change",
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
    ),
    FeatureDef(
        "fair_up",
        "Phi(ref_move / (sigma x sqrt(time left))), sigma = vol_5m per "
        "sqrt(minute), time left in minutes: the probability of Up under a driftless "
        "normal approximation",
        "probability",
        "window",
        "reference.price + spot",
    ),
    FeatureDef(
        "fair_gap",
        "fair_up - up_mid: how far the market's price is from that fair value",
        "probability",
        "window",
        "reference.price + polymarket book",
    ),
    FeatureDef(
        "funding_rate",
        "current USD-M funding rate x 1e4",
        "basis points per period",
        "latest",
        "binance.futures.mark",
    ),
    FeatureDef(
        "oi_change_5m",
        "ln(open interest now / 5 min ago)",
        "log ratio",
        "5 min",
        "binance.futures.open_interest",
    ),
    FeatureDef(
        "liq_intensity",
        "ln(1 + liquidated notional over 5 min / 10,000 USDT)",
        "log USDT",
        "5 min",
        "binance.futures.liquidation",
    ),
)

FEATURES: dict[str, FeatureDef] = {d.name: d for d in _DEFS}

SEED18 = (
    "returns_1m", "returns_5m", "returns_10m",
    "ob_imbalance_l1", "ob_imbalance_l5", "trade_flow", "cvd_accel",
    "spread_pct", "trade_intensity", "large_trade_flag",
    "vol_5m", "vol_expansion",
    "has_position", "position_side", "position_pnl", "time_remaining",
    "vol_regime", "trend_regime",
)  # fmt: skip

FULL = SEED18 + (
    "up_mid", "up_spread", "ref_move", "fair_up", "fair_gap",
    "funding_rate", "oi_change_5m", "liq_intensity",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """An ordered list of features with a name and a version digest."""

    name: str
    names: tuple[str, ...]

    @property
    def version(self) -> str:
        """Digest of the names and the feature code version (12 hex digits)."""
        h = hashlib.sha256(f"{FEATURE_CODE_VERSION}|{'|'.join(self.names)}".encode())
        return h.hexdigest()[:12]

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def market_names(self) -> tuple[str, ...]:
        """Features the FeatureEngine computes, in set order."""
        return tuple(n for n in self.names if n not in POSITION_FEATURES)

    @property
    def market_index(self) -> tuple[int, ...]:
        """Positions of the market features in the observation."""
        return tuple(i for i, n in enumerate(self.names) if n not in POSITION_FEATURES)

    @property
    def position_index(self) -> tuple[int, ...]:
        """Positions of has_position, position_side, position_pnl (in that order)."""
        return tuple(self.names.index(n) for n in POSITION_FEATURES)

    def index(self, name: str) -> int:
        """Position of a feature; a feature the set lacks is a ConfigError naming both."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ConfigError(f"feature set {self.name!r} has no feature {name!r}") from None


FEATURE_SETS: dict[str, FeatureSet] = {
    "seed18": FeatureSet("seed18", SEED18),
    "full": FeatureSet("full", FULL),
}


def feature_set(name: str) -> FeatureSet:
    """A named feature set; an unknown name is a ConfigError listing the known ones."""
    try:
        return FEATURE_SETS[name]
    except KeyError:
        known = ", ".join(FEATURE_SETS)
        raise ConfigError(f"unknown feature set {name!r} (known: {known})") from None
