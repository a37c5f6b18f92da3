"""Polymarket taker fees for the 15-minute crypto Up/Down markets (pure numpy).

Only takers pay; every paper fill is a taker fill. A fill of ``C`` shares at price ``p``
(USDC per share) with the market's fee rate ``r`` pays, in USDC:

* exponent 1 (the schedule since ~2026-03-30): ``fee = r * C * p * (1 - p)``;
  100 shares at 0.50 with ``r = 0.07`` pay 1.75, at 0.10 they pay 0.63.
* exponent 2 (the Jan-Mar 2026 crypto schedule): ``fee = C * p * r * (p * (1 - p))**2``;
  100 shares at 0.50 with ``r = 0.25`` pay 0.78125, at 0.10 they pay 0.02025.

The two are *not* one formula with a different exponent (the current one has no leading
``p``); they are written out as published. Any other exponent is a ``ValueError``.

**Rounding.** Each book level a taker order matches is a separate match, so the fee is
computed and rounded per level, then summed. Fees are whole multiples of 0.00001 USDC
(5 decimals). ``"floor"`` (the default) truncates to that grid, so any raw fee below the
0.00001 minimum is 0 — the venue's "minimum 0.00001, smaller fees are 0", and the rounding
direction the nautilus_trader Polymarket adapter documents as the venue's. ``"half_up"``
rounds to the nearest 0.00001 (half a quantum goes up), so a raw fee in
[0.000005, 0.00001) becomes 0.00001. Before either, the raw fee in quanta is rounded to 1e-6
quanta: 100 shares at 0.80 with ``r = 0.07`` pay exactly 1.12, which binary floating point
computes as 111999.99999999999 quanta, and that must not floor to 1.11999.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

FEE_DECIMALS = 5
"""Fees are charged in whole multiples of 10**-FEE_DECIMALS USDC."""
FEE_QUANTA_PER_USDC = 10.0**FEE_DECIMALS
"""Fee quanta per USDC (1e5): one quantum, 0.00001 USDC, is the smallest non-zero fee."""
FEE_EXPONENTS: tuple[float, ...] = (1.0, 2.0)
"""The fee schedules we know: 1 = current (``r C p (1-p)``), 2 = Jan-Mar 2026."""
FeeRounding = Literal["floor", "half_up"]
FEE_ROUNDINGS: tuple[str, ...] = ("floor", "half_up")


def check_fee_schedule(fee_rate: np.ndarray, fee_exponent: np.ndarray) -> None:
    """Raise ``ValueError`` naming the field and first bad market if a schedule is unusable.

    ``fee_rate`` [N] must be finite and >= 0; ``fee_exponent`` [N] must be 1 or 2.
    """
    rate = np.asarray(fee_rate, dtype=np.float64)
    expo = np.asarray(fee_exponent, dtype=np.float64)
    bad = ~np.isfinite(rate) | (rate < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"fee_rate must be finite and >= 0, got {rate[i]!r} for market {i}")
    bad = ~np.isin(expo, FEE_EXPONENTS)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"fee_exponent must be 1 (fee = rate*C*p*(1-p)) or 2 "
            f"(fee = C*p*rate*(p*(1-p))**2), got {expo[i]!r} for market {i}"
        )


def raw_taker_fee(
    shares: np.ndarray, price: np.ndarray, fee_rate: np.ndarray, fee_exponent: np.ndarray
) -> np.ndarray:
    """Unrounded taker fee in USDC of ``shares`` at ``price`` (arrays broadcast together).

    Typical shapes: ``shares``/``price`` [M, L] (one fill per level), ``fee_rate`` and
    ``fee_exponent`` [M, 1]. The exponent must already be checked (1 or 2).
    """
    pq = price * (1.0 - price)
    current = fee_rate * shares * pq
    jan_mar = shares * price * fee_rate * (pq * pq)
    return np.where(fee_exponent == 2.0, jan_mar, current)


def round_fee(raw: np.ndarray, rounding: FeeRounding = "floor") -> np.ndarray:
    """Raw fees (USDC) -> charged fees on the 0.00001 USDC grid (see the module docstring)."""
    # Strip binary representation error first (1e-6 of a quantum), then snap to the grid.
    quanta = np.round(np.asarray(raw, dtype=np.float64) * FEE_QUANTA_PER_USDC, 6)
    if rounding == "floor":
        snapped = np.floor(quanta)
    elif rounding == "half_up":
        snapped = np.floor(quanta + 0.5)
    else:
        raise ValueError(f"fee_rounding must be one of {FEE_ROUNDINGS}, got {rounding!r}")
    # Division (not * 1e-5) gives the double nearest to the 5-decimal value.
    return snapped / FEE_QUANTA_PER_USDC


def taker_fee(
    shares: np.ndarray,
    price: np.ndarray,
    fee_rate: np.ndarray,
    fee_exponent: np.ndarray,
    rounding: FeeRounding = "floor",
) -> np.ndarray:
    """Charged taker fee in USDC of one match of ``shares`` at ``price``, rounded per match."""
    return round_fee(raw_taker_fee(shares, price, fee_rate, fee_exponent), rounding)
