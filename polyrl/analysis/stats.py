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
  replacement (seeded), the mean PnL per window of each resample;
- ``sharpe_per_window``: mean / standard deviation (ddof 1) of the PnL of the windows
  traded: per window, not annualised (NaN with fewer than two windows or no spread).

Beyond one run's summary: :func:`summary_table` (runs x assets as one frame),
:func:`by_time_left` (positions bucketed by the minutes left in the window at entry) and
:func:`compare` (each strategy against a reference on the same windows, with the bootstrap
interval of the paired per-window difference). Every bootstrap is seeded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from polyrl.analysis.trades import CLOSING, closed_pnl, positions, without_no_outcome


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


def payoff(pnl: np.ndarray) -> dict[str, float]:
    """Win rate, mean win, mean loss and profit factor of position PnLs ``[positions]``.

    A win is PnL > 0, a loss PnL <= 0 (the PaperBroker's rule); the profit factor is gross
    wins over gross losses. NaN where undefined (no positions, no wins, no losses).
    """
    wins = pnl[pnl > 0]
    losses = pnl[pnl <= 0]
    gross_loss = float(-losses.sum())
    return {
        "win_rate": float(wins.shape[0] / pnl.shape[0]) if pnl.shape[0] else float("nan"),
        "avg_win": float(wins.mean()) if wins.shape[0] else float("nan"),
        "avg_loss": float(losses.mean()) if losses.shape[0] else float("nan"),
        "profit_factor": float(wins.sum() / gross_loss) if gross_loss > 0 else float("nan"),
    }


def sharpe(x: np.ndarray) -> float:
    """Mean over standard deviation (ddof 1) of ``x``; NaN with < 2 values or no spread."""
    if x.shape[0] < 2:
        return float("nan")
    sd = float(x.std(ddof=1))
    return float(x.mean() / sd) if sd > 0 else float("nan")


def _block(
    trades: pl.DataFrame, episodes: pl.DataFrame, capital: float, seed: int
) -> dict[str, Any]:
    trades, episodes, no_outcome = without_no_outcome(trades, episodes)
    closed = trades.filter(pl.col("kind").is_in(CLOSING))
    pnl_pos = closed["realized_pnl"].to_numpy()
    fills = trades.filter(pl.col("kind") != "settle").filter(pl.col("rejected") == 0)
    traded = episodes.filter(pl.col("fills") > 0)
    per_window = traded["pnl"].to_numpy()
    lo, hi = bootstrap_mean_ci(per_window, seed=seed)
    pnl = float(episodes["pnl"].sum()) if episodes.height else 0.0
    return {
        "pnl": pnl,
        "roi": pnl / capital if capital > 0 else float("nan"),
        "fills": int(fills.height),
        "positions": int(closed.height),
        **payoff(pnl_pos),
        "fees": float(fills["fee"].sum()) if fills.height else 0.0,
        # Per instant: positions settled together are one step of the equity curve.
        "max_drawdown": max_drawdown(closed_pnl(trades)["pnl"].to_numpy()),
        "windows": int(episodes.height),
        "windows_traded": int(traded.height),
        "pnl_per_window": float(per_window.mean()) if per_window.shape[0] else float("nan"),
        "pnl_per_window_ci95": [lo, hi],
        "sharpe_per_window": sharpe(per_window),
        "flagged_gap": int(episodes.filter(pl.col("gap")).height),
        "settled_from_reference": int(
            episodes.filter(pl.col("outcome_source") == "reference").height
        ),
        "missing_resolution": no_outcome,
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


SUMMARY_COLUMNS = (
    "pnl", "roi", "fills", "positions", "win_rate", "avg_win", "avg_loss", "profit_factor",
    "fees", "max_drawdown", "windows", "windows_traded", "pnl_per_window", "ci_low", "ci_high",
    "sharpe_per_window",
)  # fmt: skip


def summary_frame(summaries: Mapping[str, Mapping[str, Any]]) -> pl.DataFrame:
    """:func:`summarize` outputs ``{strategy: summary}`` as one frame: a row per strategy and
    asset, then the strategy's ``total`` row; columns ``strategy``, ``asset`` and
    :data:`SUMMARY_COLUMNS` (the 95% interval of PnL per window as ``ci_low``/``ci_high``)."""
    rows = []
    for name, s in summaries.items():
        for asset, b in [*s["by_asset"].items(), ("total", s["total"])]:
            lo, hi = b["pnl_per_window_ci95"]
            row = {"strategy": name, "asset": asset, "ci_low": lo, "ci_high": hi}
            row.update({c: b.get(c, float("nan")) for c in SUMMARY_COLUMNS if c not in row})
            rows.append(row)
    schema = {"strategy": pl.String, "asset": pl.String}
    schema.update({c: pl.Int64 if c in ("fills", "positions", "windows", "windows_traded")
                   else pl.Float64 for c in SUMMARY_COLUMNS})  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def summary_table(
    results: Mapping[str, tuple[pl.DataFrame, pl.DataFrame]],
    *,
    assets: Sequence[str],
    capital_per_slot: float,
    seed: int = 0,
) -> pl.DataFrame:
    """:func:`summarize` each ``{strategy: (trades, episodes)}`` and stack them with
    :func:`summary_frame`."""
    return summary_frame(
        {
            name: summarize(
                tr, ep, assets=tuple(assets), capital_per_slot=capital_per_slot, seed=seed
            )
            for name, (tr, ep) in results.items()
        }
    )


def _bucket_labels(edges: Sequence[float]) -> list[str]:
    bounds = [0.0, *edges]
    labels = [f"{_g(a)}-{_g(b)} min" for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return [*labels, f">={_g(bounds[-1])} min"]


def _g(x: float) -> str:
    return f"{x:g}"


def by_time_left(
    pos: pl.DataFrame, *, edges_min: Sequence[float] = (3, 6, 9, 12), seed: int = 0
) -> pl.DataFrame:
    """Positions (from :func:`~polyrl.analysis.trades.positions`, with episodes) grouped
    by the minutes left in the window at entry: ``[0, e1)``, ``[e1, e2)``, ... ``[e_last,
    inf)`` labelled ``"0-3 min"`` ... ``">=12 min"``.

    One row per bucket (empty ones too, in order): ``bucket``, ``positions``, ``pnl``,
    ``mean_pnl`` per position with its bootstrap 95% interval ``ci_low``/``ci_high``
    (positions resampled, seeded), ``win_rate``, ``avg_win``, ``avg_loss``,
    ``profit_factor``, ``fees``. Positions without an entry time in a known window are left
    out.
    """
    labels = _bucket_labels(edges_min)
    p = pos.filter(pl.col("minutes_left").is_not_null())
    left = p["minutes_left"].to_numpy()
    idx = np.searchsorted(np.asarray(edges_min, dtype=float), left, side="right")
    pnl_all = p["pnl"].to_numpy()
    fees_all = p["fees"].to_numpy()
    rows = []
    for i, label in enumerate(labels):
        x = pnl_all[idx == i]
        lo, hi = bootstrap_mean_ci(x, seed=seed)
        rows.append({
            "bucket": label, "positions": int(x.shape[0]), "pnl": float(x.sum()),
            "mean_pnl": float(x.mean()) if x.shape[0] else float("nan"),
            "ci_low": lo, "ci_high": hi, **payoff(x),
            "fees": float(fees_all[idx == i].sum()),
        })  # fmt: skip
    return pl.DataFrame(rows)


def time_left_table(
    results: Mapping[str, tuple[pl.DataFrame, pl.DataFrame]],
    *,
    edges_min: Sequence[float] = (3, 6, 9, 12),
    seed: int = 0,
) -> pl.DataFrame:
    """:func:`by_time_left` for each ``{strategy: (trades, episodes)}``, stacked with a
    leading ``strategy`` column."""
    frames = [
        by_time_left(positions(tr, ep), edges_min=edges_min, seed=seed).select(
            pl.lit(name).alias("strategy"), pl.all()
        )
        for name, (tr, ep) in results.items()
    ]
    return pl.concat(frames) if frames else pl.DataFrame(schema={"strategy": pl.String})


def compare(
    results: Mapping[str, pl.DataFrame | tuple[pl.DataFrame, pl.DataFrame]],
    *,
    reference: str,
    n: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pl.DataFrame:
    """``reference`` against every other strategy of ``{strategy: episodes}`` (or ``{strategy:
    (trades, episodes)}``) on the windows both played, traded in or not (joined on
    ``condition_id``).

    One row per other strategy: ``strategy``, ``windows`` paired, ``reference_pnl`` and
    ``other_pnl`` (mean PnL per paired window), ``mean_diff`` (reference minus other) with its
    paired bootstrap interval ``ci_low``/``ci_high`` (seeded), and ``verdict``: ``better`` or
    ``worse`` when the interval excludes 0, else ``no clear difference``.
    """
    episodes = {k: v[1] if isinstance(v, tuple) else v for k, v in results.items()}
    if reference not in episodes:
        raise KeyError(f"reference {reference!r} is not among {', '.join(episodes)}")
    ref = episodes[reference]
    rows = []
    for name, other in episodes.items():
        if name == reference:
            continue
        j = ref.select("condition_id", "pnl").join(
            other.select("condition_id", pl.col("pnl").alias("pnl_b")), on="condition_id"
        )
        d, lo, hi = paired_difference_ci(ref, other, n=n, seed=seed, level=level)
        verdict = "better" if lo > 0 else "worse" if hi < 0 else "no clear difference"
        rows.append({
            "strategy": name, "windows": j.height,
            "reference_pnl": float(j["pnl"].mean()) if j.height else float("nan"),
            "other_pnl": float(j["pnl_b"].mean()) if j.height else float("nan"),
            "mean_diff": d, "ci_low": lo, "ci_high": hi,
            "verdict": verdict if j.height else "no shared windows",
        })  # fmt: skip
    schema = {"strategy": pl.String, "windows": pl.Int64, "reference_pnl": pl.Float64,
              "other_pnl": pl.Float64, "mean_diff": pl.Float64, "ci_low": pl.Float64,
              "ci_high": pl.Float64, "verdict": pl.String}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)
