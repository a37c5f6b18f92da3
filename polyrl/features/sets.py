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

**Streams a set needs.** Each feature names the streams it ``needs`` (without them it cannot
be computed) and those it reads only if present (``optional``: the 1 m kline warm-up); every
set also needs :data:`MARKET_STREAMS` (the windows traded and their books). ``train``,
``backtest`` and ``live`` refuse, before any work, days that lack a needed stream
(:func:`missing_streams`, :func:`refusal`): a feature computed from nothing would be NaN on
every tick and the market never ready, which looks like a quiet day rather than an error.

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

BOOK_TICKER = "binance.spot.book_ticker"
SPOT_TRADE = "binance.spot.trade"
SPOT_KLINE = "binance.spot.kline"
SPOT_DEPTH = "binance.spot.depth"
FUT_TRADE = "binance.futures.trade"
PM_BOOK = ("polymarket.book", "polymarket.price_change")
REFERENCE = "reference.price"
MARKET_STREAMS = ("polymarket.market", "polymarket.book", "polymarket.price_change")
"""Streams every set needs: the windows traded (``polymarket.market``) and their books."""
SPARSE_STREAMS = ("binance.futures.liquidation",)
"""Streams with rows only when something happens: a day the recorder or the simulator made
(both always subscribe them) has them even without a partition; an imported day only with
one (:func:`polyrl.replay.day_streams`)."""
SPOT_PRICES = (BOOK_TICKER, SPOT_TRADE)
"""Where a set's spot price P comes from: the book ticker's mid or the last aggTrade price."""


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

HISTORY = tuple(
    {"ob_imbalance_l1": "up_imbalance_l1", "ob_imbalance_l5": "up_imbalance_l5"}.get(n, n)
    for n in SEED18
)
"""The seed's 18 ideas from archive streams: P from spot trades, imbalance from the Up book."""


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """An ordered list of features with a name and a version digest; ``spot_price`` is the
    stream P is read from (:data:`SPOT_PRICES`)."""

    name: str
    names: tuple[str, ...]
    spot_price: str = BOOK_TICKER

    def __post_init__(self) -> None:
        if self.spot_price not in SPOT_PRICES:
            raise ConfigError(f"feature set {self.name!r}: spot_price must be one of "
                              f"{', '.join(SPOT_PRICES)}, not {self.spot_price!r}")  # fmt: skip

    @property
    def version(self) -> str:
        """Digest of the names, the spot price's stream (when not the book ticker, so the
        sets that read it keep their digests) and the feature code version (12 hex digits)."""
        text = f"{FEATURE_CODE_VERSION}|{'|'.join(self.names)}"
        if self.spot_price != BOOK_TICKER:
            text += f"|spot_price={self.spot_price}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

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

    def definition(self, name: str) -> FeatureDef:
        """The feature as this set computes it (its spot price decides P)."""
        if self.spot_price == SPOT_TRADE and name in TRADE_PRICE_DEFS:
            return TRADE_PRICE_DEFS[name]
        return FEATURES[name]

    def needs(self) -> dict[str, tuple[str, ...]]:
        """``{stream: the features that need it}``; :data:`MARKET_STREAMS` are needed by
        every set (their entry also names ``markets traded``)."""
        out: dict[str, list[str]] = {s: ["markets traded"] for s in MARKET_STREAMS}
        for n in self.names:
            for s in self.definition(n).needs:
                out.setdefault(s, []).append(n)
        return {s: tuple(dict.fromkeys(v)) for s, v in out.items()}

    def optional(self) -> tuple[str, ...]:
        """Streams read when present, never required (the 1 m kline warm-up)."""
        got = [s for n in self.names for s in self.definition(n).optional]
        return tuple(s for s in dict.fromkeys(got) if s not in self.needs())


FEATURE_SETS: dict[str, FeatureSet] = {
    "seed18": FeatureSet("seed18", SEED18),
    "full": FeatureSet("full", FULL),
    "history": FeatureSet("history", HISTORY, spot_price=SPOT_TRADE),
}


def feature_set(name: str) -> FeatureSet:
    """A named feature set; an unknown name is a ConfigError listing the known ones."""
    try:
        return FEATURE_SETS[name]
    except KeyError:
        known = ", ".join(FEATURE_SETS)
        raise ConfigError(f"unknown feature set {name!r} (known: {known})") from None


def missing_streams(fset: FeatureSet, present: dict[str, set[str]]) -> dict[str, list[str]]:
    """``{stream: the days lacking it}`` for every stream ``fset`` needs that some day of
    ``present`` (``{day: the streams it has}``) lacks; empty when every day has them all."""
    out: dict[str, list[str]] = {}
    for stream in fset.needs():
        days = [d for d in sorted(present) if stream not in present[d]]
        if days:
            out[stream] = days
    return out


def _days_text(days: list[str]) -> str:
    return ", ".join(days) if len(days) <= 4 else f"{', '.join(days[:3])} and {len(days) - 3} more"


def refusal(fset: FeatureSet, present: dict[str, set[str]], where: str) -> str | None:
    """The one-line reason ``fset`` cannot run on the days of ``present`` (recorded at
    ``where``), naming each missing stream, the features that need it and the days that lack
    it, and the built-in sets that would work; None when nothing is missing."""
    missing = missing_streams(fset, present)
    if not missing:
        return None
    needs = fset.needs()
    parts = [
        f"{s} (needed by {', '.join(needs[s])}) is missing from {_days_text(days)}"
        for s, days in missing.items()
    ]
    fits = [
        n for n, fs in FEATURE_SETS.items() if n != fset.name and not missing_streams(fs, present)
    ]
    hint = (
        "use " + " or ".join(f"--feature-set {n}" for n in fits)
        if fits
        else "no built-in feature set has every stream it needs there"
    )
    return f"feature set {fset.name} cannot run on {where}: {'; '.join(parts)}; {hint}"
