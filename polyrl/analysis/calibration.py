"""Entry price vs outcome: how often the tokens bought at a price went on to win (pure).

The price paid for a token is the market's probability that it wins. Binning a run's
settled positions by that price and counting the wins in each bin gives the realized
frequency per bin; with few positions per bin that frequency is noisy, so each bin carries
its count and the Wilson score interval of the frequency (which stays inside [0, 1] and
behaves at 0 and n wins, unlike the normal approximation).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import polars as pl

CALIBRATION = {
    "bin": pl.String, "price_low": pl.Float64, "price_high": pl.Float64,
    "positions": pl.Int64, "wins": pl.Int64, "mean_price": pl.Float64,
    "win_rate": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
}  # fmt: skip
"""Columns of :func:`calibration_table` (see its doc)."""


def wilson_interval(wins: int, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``wins / n`` at ``level`` (NaNs when
    ``n`` is 0)."""
    if n <= 0:
        return float("nan"), float("nan")
    if not 0 <= wins <= n:
        raise ValueError(f"wins must be in [0, n]: {wins} of {n}")
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    p = wins / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # The interval holds p and lies in [0, 1]; clamp the rounding at the exact ends (0 wins
    # -> 0, n wins -> 1) so that it does so in floating point too.
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


def calibration_table(pos: pl.DataFrame, *, bins: int = 10, level: float = 0.95) -> pl.DataFrame:
    """Settled positions (from :func:`~polyrl.analysis.trades.positions` with episodes) by
    the entry price of the token bought, in ``bins`` bins of equal width over [0, 1] (a
    price on an inner edge goes to the bin above; 1.0 to the last bin).

    One row per bin, empty ones too, in price order (schema :data:`CALIBRATION`): ``bin``
    (``"0.00-0.10"``), its edges ``price_low``/``price_high``, ``positions`` (n), ``wins``
    (the held token was the outcome), ``mean_price`` paid, ``win_rate`` (wins / n) and its
    Wilson interval ``ci_low``/``ci_high`` at ``level``; NaN where n is 0. Positions whose
    window has no outcome (still open, voided) are left out.
    """
    s = pos.filter(pl.col("won").is_not_null())
    price = s["entry_price"].to_numpy().astype(float)
    won = s["won"].cast(pl.Float64).to_numpy()
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(price, edges) - 1, 0, bins - 1)
    n = np.bincount(idx, minlength=bins)
    k = np.bincount(idx, weights=won, minlength=bins).round().astype(int)
    paid = np.bincount(idx, weights=price, minlength=bins)
    rows = []
    for i in range(bins):
        lo, hi = wilson_interval(int(k[i]), int(n[i]), level=level)
        rows.append({
            "bin": f"{edges[i]:.2f}-{edges[i + 1]:.2f}",
            "price_low": float(edges[i]), "price_high": float(edges[i + 1]),
            "positions": int(n[i]), "wins": int(k[i]),
            "mean_price": float(paid[i] / n[i]) if n[i] else float("nan"),
            "win_rate": float(k[i] / n[i]) if n[i] else float("nan"),
            "ci_low": lo, "ci_high": hi,
        })  # fmt: skip
    return pl.DataFrame(rows, schema=CALIBRATION)
