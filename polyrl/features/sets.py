"""Named feature sets: which features an observation holds, in which order, and their version.

An observation is the set's features in the set's order. The FeatureEngine computes the
*market* features (everything that does not depend on the agent); the three *position*
features come from the PaperBroker. Every feature is defined in
:mod:`polyrl.features.definitions` (listed by ``polyrl features [--set NAME]``); the streams
a set needs, and the refusal of days that lack one, are :mod:`polyrl.features.streams`.

A set's ``version`` changes whenever its list or any feature's definition changes (it is a
digest of the list and of :data:`FEATURE_CODE_VERSION`, which must be bumped with any change
to the computations): checkpoints and caches built for another version are refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from polyrl.errors import ConfigError
from polyrl.features.definitions import (
    BOOK_TICKER,
    FEATURES,
    SPOT_TRADE,
    TRADE_PRICE_DEFS,
    FeatureDef,
)

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

MARKET_STREAMS = ("polymarket.market", "polymarket.book", "polymarket.price_change")
"""Streams every set needs: the windows traded (``polymarket.market``) and their books."""
SPOT_PRICES = (BOOK_TICKER, SPOT_TRADE)
"""Where a set's spot price P comes from: the book ticker's mid or the last aggTrade price."""


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
