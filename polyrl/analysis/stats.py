"""Run statistics from a run's trades and episodes (pure; polars in, plain numbers out).

Definitions (per asset and in total):

- ``pnl``: realized PnL in USDC (closes and settlements, fees included);
- ``roi``: pnl / capital at risk (capital per market slot x slots);
- ``fills``: executed order legs; ``positions``: positions closed or settled;
- ``win_rate``: share of closed/settled positions with realized PnL > 0; ``avg_win`` and
  ``avg_loss`` their mean PnL (the payoff asymmetry); ``profit_factor`` gross wins / gross
  losses;
- ``fees``: USDC paid in taker fees;
- ``max_drawdown``: the largest fall of cumulative realized PnL from its running peak;
- ``pnl_per_window`` with a bootstrap 95% interval: windows traded, resampled with
  replacement (seeded), the mean PnL per window of each resample.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

CLOSING = ("close", "settle")


def bootstrap_mean_ci(
    x: np.ndarray, *, n: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``x`` (NaNs when ``x`` is empty)."""
    if x.shape[0] == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.shape[0], size=(n, x.shape[0]))
    means = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def max_drawdown(pnl_steps: np.ndarray) -> float:
    """Largest drop of the cumulative sum from its running peak (>= 0)."""
    if pnl_steps.shape[0] == 0:
        return 0.0
    cum = np.concatenate([[0.0], np.cumsum(pnl_steps)])
    return float(np.max(np.maximum.accumulate(cum) - cum))


def _block(
    trades: pl.DataFrame, episodes: pl.DataFrame, capital: float, seed: int
) -> dict[str, Any]:
    closed = trades.filter(pl.col("kind").is_in(CLOSING))
    pnl_pos = closed["realized_pnl"].to_numpy()
    wins = pnl_pos[pnl_pos > 0]
    losses = pnl_pos[pnl_pos <= 0]
    fills = trades.filter(pl.col("kind") != "settle").filter(pl.col("rejected") == 0)
    traded = episodes.filter(pl.col("fills") > 0)
    per_window = traded["pnl"].to_numpy()
    lo, hi = bootstrap_mean_ci(per_window, seed=seed)
    pnl = float(episodes["pnl"].sum()) if episodes.height else 0.0
    gross_loss = float(-losses.sum())
    return {
        "pnl": pnl,
        "roi": pnl / capital if capital > 0 else float("nan"),
        "fills": int(fills.height),
        "positions": int(closed.height),
        "win_rate": float(wins.shape[0] / pnl_pos.shape[0]) if pnl_pos.shape[0] else float("nan"),
        "avg_win": float(wins.mean()) if wins.shape[0] else float("nan"),
        "avg_loss": float(losses.mean()) if losses.shape[0] else float("nan"),
        "profit_factor": float(wins.sum() / gross_loss) if gross_loss > 0 else float("nan"),
        "fees": float(fills["fee"].sum()) if fills.height else 0.0,
        "max_drawdown": max_drawdown(closed.sort("t_ns")["realized_pnl"].to_numpy()),
        "windows": int(episodes.height),
        "windows_traded": int(traded.height),
        "pnl_per_window": float(per_window.mean()) if per_window.shape[0] else float("nan"),
        "pnl_per_window_ci95": [lo, hi],
        "flagged_gap": int(episodes.filter(pl.col("gap")).height),
        "settled_from_reference": int(
            episodes.filter(pl.col("outcome_source") == "reference").height
        ),
        "missing_resolution": int(episodes.filter(pl.col("outcome_source") == "missing").height),
    }


def summarize(
    trades: pl.DataFrame,
    episodes: pl.DataFrame,
    *,
    assets: tuple[str, ...],
    capital_per_slot: float,
    seed: int = 0,
) -> dict[str, Any]:
    """``{"total": {...}, "by_asset": {asset: {...}}}`` (see the module doc)."""
    out: dict[str, Any] = {
        "total": _block(trades, episodes, capital_per_slot * len(assets), seed),
        "by_asset": {},
    }
    for a in assets:
        out["by_asset"][a] = _block(
            trades.filter(pl.col("asset") == a),
            episodes.filter(pl.col("asset") == a),
            capital_per_slot,
            seed,
        )
    return out


def format_table(summaries: dict[str, dict[str, Any]]) -> str:
    """A side-by-side text table: one block of rows per strategy, per asset and total."""
    head = (
        f"{'strategy':<12} {'asset':<6} {'PnL $':>9} {'ROI':>8} {'fills':>6} {'win%':>6} "
        f"{'avg win':>8} {'avg loss':>9} {'fees $':>8} {'max DD':>8} {'PnL/window [95% CI]':>28}"
    )
    lines = [head, "-" * len(head)]
    for name, s in summaries.items():
        rows = [*s["by_asset"].items(), ("total", s["total"])]
        for asset, b in rows:
            lo, hi = b["pnl_per_window_ci95"]
            ci = f"{b['pnl_per_window']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            lines.append(
                f"{name:<12} {asset:<6} {b['pnl']:>+9.2f} {b['roi']:>+8.1%} {b['fills']:>6} "
                f"{_pct(b['win_rate']):>6} {_num(b['avg_win']):>8} {_num(b['avg_loss']):>9} "
                f"{b['fees']:>8.3f} {b['max_drawdown']:>8.2f} {ci:>28}"
            )
    return "\n".join(lines)


def _pct(x: float) -> str:
    return "-" if x != x else f"{x:.0%}"


def _num(x: float) -> str:
    return "-" if x != x else f"{x:+.3f}"


def paired_difference_ci(
    a: pl.DataFrame, b: pl.DataFrame, *, n: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean PnL-per-window difference of run ``a`` over run ``b`` on the same windows, with
    a percentile bootstrap interval (windows resampled in pairs).

    ``a`` and ``b`` are episodes tables; they are joined on ``condition_id`` (windows only
    one of them has are left out). Returns (mean difference, low, high).
    """
    j = a.select("condition_id", "pnl").join(
        b.select("condition_id", pl.col("pnl").alias("pnl_b")), on="condition_id"
    )
    d = (j["pnl"] - j["pnl_b"]).to_numpy()
    if d.shape[0] == 0:
        return float("nan"), float("nan"), float("nan")
    lo, hi = bootstrap_mean_ci(d, n=n, seed=seed, level=level)
    return float(d.mean()), lo, hi
