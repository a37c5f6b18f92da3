"""The broker's configuration (``[broker]``) and the per-market venue rules it trades under.

:class:`BrokerConfig` holds the research choices (sizing, position rules, reward) and is
the same for every market. :class:`MarketRules` holds what the venue publishes per market
(fee schedule, minimum order size, minimum notional): arrays [N], one entry per market slot,
replaced slot by slot as windows roll (:meth:`polyrl.broker.PaperBroker.set_rules`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from polyrl.broker.fees import FEE_ROUNDINGS, FeeRounding, check_fee_schedule

OnOpposite = Literal["close", "flip", "ignore"]
OnSame = Literal["hold", "add"]
RewardKind = Literal["pnl", "shaped"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerConfig:
    """Sizing, position rules and reward of the PaperBroker (defaults = the seed's)."""

    capital: float = 10.0
    """Base capital per market slot, USDC; fixed (no compounding), so slots are independent."""
    size_fraction: float = 0.5
    """Fraction of ``capital`` one BUY/SELL order spends on shares (fees on top), (0, 1]."""
    on_opposite: OnOpposite = "close"
    """Opposite signal while holding: close it; flip (close, then open if fully closed); ignore."""
    on_same: OnSame = "hold"
    """Same signal while holding: hold (no pyramiding) or add (buy more, average cost)."""
    reward: RewardKind = "pnl"
    """pnl: realized PnL on close/settle only; shaped: pnl plus the shaping terms below."""
    shaping_unrealized_coef: float = 0.1
    """Shaped reward: weight of the per-step change in unrealized PnL (USDC), >= 0."""
    shaping_trade_penalty: float = 0.01
    """Shaped reward: USDC subtracted per fill (each executed order leg), >= 0."""
    fee_rounding: FeeRounding = "floor"
    """Per-level fee rounding to 0.00001 USDC: floor (venue) or half_up."""
    check_books: bool = False
    """Run the full Books.validate() on every step (slow; for debugging feeds)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.capital) and self.capital > 0):
            raise ValueError(f"capital must be a finite number > 0 USDC, got {self.capital!r}")
        if not (0 < self.size_fraction <= 1):
            raise ValueError(f"size_fraction must be in (0, 1], got {self.size_fraction!r}")
        _choice("on_opposite", self.on_opposite, ("close", "flip", "ignore"))
        _choice("on_same", self.on_same, ("hold", "add"))
        _choice("reward", self.reward, ("pnl", "shaped"))
        _choice("fee_rounding", self.fee_rounding, FEE_ROUNDINGS)
        for name in ("shaping_unrealized_coef", "shaping_trade_penalty"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")

    @property
    def order_usdc(self) -> float:
        """USDC one opening order spends on shares: ``capital * size_fraction``."""
        return self.capital * self.size_fraction


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketRules:
    """Venue rules per market slot, arrays [N] (float64 unless noted).

    Read them per market from the venue (Gamma ``feeSchedule``, CLOB ``fd``/``mos``); never
    hard-code a fee rate. Defaults of :meth:`uniform` are the current 15-minute crypto ones.
    """

    fee_rate: np.ndarray
    """Taker fee rate r (0.07 now; 0.25 under the Jan-Mar 2026 schedule)."""
    fee_exponent: np.ndarray
    """Fee schedule: 1 = r*C*p*(1-p), 2 = C*p*r*(p*(1-p))**2; nothing else."""
    fees_enabled: np.ndarray
    """bool: False charges no fee at all (for what-if runs and fee-free markets)."""
    min_size: np.ndarray
    """Smallest order, shares; a smaller order is rejected (code 2)."""
    min_notional: np.ndarray
    """Smallest marketable order, USDC at the touch; a smaller one is rejected (code 3)."""

    def __post_init__(self) -> None:
        arrays = {
            "fee_rate": np.array(self.fee_rate, dtype=np.float64, ndmin=1),
            "fee_exponent": np.array(self.fee_exponent, dtype=np.float64, ndmin=1),
            "fees_enabled": np.array(self.fees_enabled, dtype=bool, ndmin=1),
            "min_size": np.array(self.min_size, dtype=np.float64, ndmin=1),
            "min_notional": np.array(self.min_notional, dtype=np.float64, ndmin=1),
        }
        n = arrays["fee_rate"].shape
        for name, a in arrays.items():
            if a.ndim != 1 or a.shape != n:
                raise ValueError(f"{name} must have shape [N] = {n}, got {a.shape}")
            object.__setattr__(self, name, a)
        check_fee_schedule(arrays["fee_rate"], arrays["fee_exponent"])
        for name in ("min_size", "min_notional"):
            a = arrays[name]
            bad = ~np.isfinite(a) | (a < 0)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"{name} must be finite and >= 0, got {a[i]!r} for market {i}")

    @property
    def n(self) -> int:
        """Number of market slots N."""
        return int(self.fee_rate.shape[0])

    @classmethod
    def uniform(
        cls,
        n: int,
        *,
        fee_rate: float = 0.07,
        fee_exponent: float = 1.0,
        fees_enabled: bool = True,
        min_size: float = 5.0,
        min_notional: float = 1.0,
    ) -> MarketRules:
        """The same rules for all N slots (defaults: 15-minute crypto markets since 2026-03)."""
        return cls(
            fee_rate=np.full(n, fee_rate),
            fee_exponent=np.full(n, fee_exponent),
            fees_enabled=np.full(n, fees_enabled),
            min_size=np.full(n, min_size),
            min_notional=np.full(n, min_notional),
        )

    def select(self, idx: np.ndarray | slice | list[int]) -> MarketRules:
        """The rules of a subset of slots."""
        return MarketRules(
            fee_rate=self.fee_rate[idx],
            fee_exponent=self.fee_exponent[idx],
            fees_enabled=self.fees_enabled[idx],
            min_size=self.min_size[idx],
            min_notional=self.min_notional[idx],
        )
