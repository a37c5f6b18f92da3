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
- ``windows``: the eligible windows, every row of the run's episodes whose window has an
  outcome (a window the policy did not trade counts, with PnL 0; a window with no outcome at
  all, ``outcome_source == "missing"``, is left out and counted in ``missing_resolution``).
  A run's episodes hold every window its replay played to settlement, so these are the
  eligible windows of what the run saw; windows before its first or after its last tick are
  not knowable from its files;
- ``pnl_per_window``: mean PnL over the eligible windows, with its cluster-bootstrap 95%
  interval and ``clusters``, the number of clusters resampled (every window of one start
  time, all assets together; or of one UTC day with ``block="day"``; see
  :mod:`polyrl.analysis.bootstrap`); ``pnl_per_traded_window`` beside it (windows with a
  fill only, with its own interval and ``traded_clusters``), never instead of it;
- ``sharpe_per_window``: mean / standard deviation (ddof 1) of the PnL of the eligible
  windows: per window, not annualised (NaN with fewer than two windows or no spread).

Beyond one run's summary: :func:`summary_table` (runs x assets as one frame),
:func:`by_time_left` (positions bucketed by the minutes left in the window at entry);
:func:`~polyrl.analysis.paired.compare` (each strategy against a reference on the same
windows and clusters, Holm-corrected) lives in :mod:`polyrl.analysis.paired`. Every
interval is the one seeded cluster bootstrap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from polyrl.analysis.bootstrap import Interval, cluster_bootstrap, cluster_ids
from polyrl.analysis.trades import CLOSING, closed_pnl, positions, without_no_outcome


def agg_float(v: object) -> float:
    """A polars aggregate of a numeric column as a float; NaN for None (no non-null value)."""
    if v is None:
        return float("nan")
    if isinstance(v, int | float):
        return float(v)
    raise TypeError(f"expected a number, got {type(v).__name__}")


def bootstrap_mean_ci(
    x: np.ndarray,
    clusters: np.ndarray | None = None,
    *,
    n: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """(low, high) of :func:`~polyrl.analysis.bootstrap.cluster_bootstrap` of ``x``
    (``clusters=None``: each value its own cluster). NaNs with fewer than two clusters."""
    ci = cluster_bootstrap(x, clusters, n=n, seed=seed, level=level)
    return ci.low, ci.high


def eligible(episodes: pl.DataFrame) -> pl.DataFrame:
    """The episodes whose window has an outcome (see ``windows`` in the module doc)."""
    return episodes.filter(
        pl.col("outcome").is_not_null() & (pl.col("outcome_source") != "missing")
    )


def window_interval(
    episodes: pl.DataFrame, *, block: str = "start", seed: int = 0, n: int = 2000
) -> Interval:
    """Mean PnL per window of ``episodes`` with its cluster-bootstrap 95% interval (clusters
    from each window's ``start_ns`` by ``block``)."""
    return cluster_bootstrap(
        episodes["pnl"].to_numpy(),
        cluster_ids(episodes["start_ns"].to_numpy(), block),
        n=n,
        seed=seed,
    )


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
    trades: pl.DataFrame, episodes: pl.DataFrame, capital: float, seed: int, block: str
) -> dict[str, Any]:
    trades, episodes, no_outcome = without_no_outcome(trades, episodes)
    closed = trades.filter(pl.col("kind").is_in(CLOSING))
    pnl_pos = closed["realized_pnl"].to_numpy()
    fills = trades.filter(pl.col("kind") != "settle").filter(pl.col("rejected") == 0)
    played = eligible(episodes)
    traded = played.filter(pl.col("fills") > 0)
    every = window_interval(played, block=block, seed=seed)
    tw = window_interval(traded, block=block, seed=seed)
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
        "windows": int(played.height),
        "windows_traded": int(traded.height),
        "pnl_per_window": every.mean,
        "pnl_per_window_ci95": [every.low, every.high],
        "clusters": every.clusters,
        "block": block,
        "pnl_per_traded_window": tw.mean,
        "pnl_per_traded_window_ci95": [tw.low, tw.high],
        "traded_clusters": tw.clusters,
        "sharpe_per_window": sharpe(played["pnl"].to_numpy()),
        "flagged_gap": int(episodes.filter(pl.col("gap")).height),
        "settled_from_reference": int(
            episodes.filter(pl.col("outcome_source") == "reference").height
        ),
        # Flagged no_outcome (null PnL), or in tables written before that flag, an episode
        # whose outcome is missing: either way not eligible, and counted.
        "missing_resolution": no_outcome + int(episodes.height - played.height),
    }


def summarize(
    trades: pl.DataFrame,
    episodes: pl.DataFrame,
    *,
    assets: tuple[str, ...],
    capital_per_slot: float,
    seed: int = 0,
    block: str = "start",
) -> dict[str, Any]:
    """``{"total": {...}, "by_asset": {asset: {...}}}`` (see the module doc); ``block``
    clusters the windows of the intervals by start time (``"start"``) or UTC day
    (``"day"``)."""
    cluster_ids(np.zeros(0, dtype=np.int64), block)  # an unknown block fails before any work
    out: dict[str, Any] = {
        "total": _block(trades, episodes, capital_per_slot * len(assets), seed, block),
        "by_asset": {},
    }
    for a in assets:
        out["by_asset"][a] = _block(
            trades.filter(pl.col("asset") == a),
            episodes.filter(pl.col("asset") == a),
            capital_per_slot,
            seed,
            block,
        )
    return out


def format_table(summaries: dict[str, dict[str, Any]]) -> str:
    """A side-by-side text table: one block of rows per strategy, per asset and total.

    ``PnL/window`` is over every eligible window (untraded ones count 0) with its 95%
    interval and, in ``clust``, the number of clusters resampled; ``PnL/traded window``
    beside it is over the windows traded (its own interval and clusters)."""
    head = (
        f"{'strategy':<12} {'asset':<6} {'PnL $':>9} {'ROI':>8} {'fills':>6} {'win%':>6} "
        f"{'avg win':>8} {'avg loss':>9} {'fees $':>8} {'max DD':>8} {'windows':>7} "
        f"{'PnL/window [95% CI]':>28} {'clust':>5} {'traded':>6} "
        f"{'PnL/traded window [95% CI]':>28} {'clust':>5}"
    )
    lines = [head, "-" * len(head)]
    for name, s in summaries.items():
        rows = [*s["by_asset"].items(), ("total", s["total"])]
        for asset, b in rows:
            lines.append(
                f"{name:<12} {asset:<6} {b['pnl']:>+9.2f} {b['roi']:>+8.1%} {b['fills']:>6} "
                f"{_pct(b['win_rate']):>6} {_num(b['avg_win']):>8} {_num(b['avg_loss']):>9} "
                f"{b['fees']:>8.3f} {b['max_drawdown']:>8.2f} {b['windows']:>7} "
                f"{_ci(b['pnl_per_window'], b['pnl_per_window_ci95']):>28} "
                f"{b['clusters']:>5} {b['windows_traded']:>6} "
                f"{_ci(b['pnl_per_traded_window'], b['pnl_per_traded_window_ci95']):>28} "
                f"{b['traded_clusters']:>5}"
            )
    block = next(iter(summaries.values()))["total"]["block"] if summaries else "start"
    what = "start time (all assets)" if block == "start" else "UTC day"
    lines.append(f"95% intervals: cluster bootstrap, a cluster is every window of one {what}.")
    return "\n".join(lines)


def format_latency_table(rows: Sequence[tuple[str, int, Mapping[str, Any]]]) -> str:
    """PnL against fill latency: one row per ``(strategy, latency_ms, total summary)``, with
    PnL per eligible window (untraded ones count 0), its cluster-bootstrap 95% interval and
    number of clusters, the fills, and PnL per traded window beside it."""
    head = (
        f"{'strategy':<12} {'latency':>8} {'PnL $':>9} {'fills':>6} {'windows':>7} "
        f"{'PnL/window [95% CI]':>28} {'clust':>5} {'traded':>6} "
        f"{'PnL/traded window [95% CI]':>28}"
    )
    lines = [head, "-" * len(head)]
    for name, ms, b in rows:
        lines.append(
            f"{name:<12} {f'{ms}ms':>8} {b['pnl']:>+9.2f} {b['fills']:>6} {b['windows']:>7} "
            f"{_ci(b['pnl_per_window'], b['pnl_per_window_ci95']):>28} {b['clusters']:>5} "
            f"{b['windows_traded']:>6} "
            f"{_ci(b['pnl_per_traded_window'], b['pnl_per_traded_window_ci95']):>28}"
        )
    block = rows[0][2]["block"] if rows else "start"
    what = "start time (all assets)" if block == "start" else "UTC day"
    lines.append(f"95% intervals: cluster bootstrap, a cluster is every window of one {what}.")
    return "\n".join(lines)


def _ci(mean: float, ci: Sequence[float]) -> str:
    lo, hi = ci
    return f"{_num(mean)} [{_num(lo)}, {_num(hi)}]"


def _pct(x: float) -> str:
    return "-" if x != x else f"{x:.0%}"


def _num(x: float) -> str:
    return "-" if x != x else f"{x:+.3f}"


SUMMARY_COLUMNS = (
    "pnl", "roi", "fills", "positions", "win_rate", "avg_win", "avg_loss", "profit_factor",
    "fees", "max_drawdown", "windows", "windows_traded", "pnl_per_window", "ci_low", "ci_high",
    "clusters", "pnl_per_traded_window", "traded_ci_low", "traded_ci_high", "traded_clusters",
    "sharpe_per_window",
)  # fmt: skip
_INT_COLUMNS = ("fills", "positions", "windows", "windows_traded", "clusters", "traded_clusters")


def summary_frame(summaries: Mapping[str, Mapping[str, Any]]) -> pl.DataFrame:
    """:func:`summarize` outputs ``{strategy: summary}`` as one frame: a row per strategy and
    asset, then the strategy's ``total`` row; columns ``strategy``, ``asset`` and
    :data:`SUMMARY_COLUMNS` (the 95% interval of PnL per eligible window as
    ``ci_low``/``ci_high`` over ``clusters`` clusters; per traded window as
    ``traded_ci_low``/``traded_ci_high`` over ``traded_clusters``)."""
    rows = []
    for name, s in summaries.items():
        for asset, b in [*s["by_asset"].items(), ("total", s["total"])]:
            lo, hi = b["pnl_per_window_ci95"]
            tlo, thi = b.get("pnl_per_traded_window_ci95", (float("nan"), float("nan")))
            row = {"strategy": name, "asset": asset, "ci_low": lo, "ci_high": hi,
                   "traded_ci_low": tlo, "traded_ci_high": thi}  # fmt: skip
            row.update({c: b.get(c, float("nan")) for c in SUMMARY_COLUMNS if c not in row})
            rows.append(row)
    schema: dict[str, type[pl.DataType]] = {"strategy": pl.String, "asset": pl.String}
    schema.update({c: pl.Int64 if c in _INT_COLUMNS else pl.Float64
                   for c in SUMMARY_COLUMNS})  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def summary_table(
    results: Mapping[str, tuple[pl.DataFrame, pl.DataFrame]],
    *,
    assets: Sequence[str],
    capital_per_slot: float,
    seed: int = 0,
    block: str = "start",
) -> pl.DataFrame:
    """:func:`summarize` each ``{strategy: (trades, episodes)}`` and stack them with
    :func:`summary_frame`."""
    return summary_frame(
        {
            name: summarize(
                tr,
                ep,
                assets=tuple(assets),
                capital_per_slot=capital_per_slot,
                seed=seed,
                block=block,
            )  # fmt: skip
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
    pos: pl.DataFrame,
    *,
    edges_min: Sequence[float] = (3, 6, 9, 12),
    seed: int = 0,
    block: str = "start",
) -> pl.DataFrame:
    """Positions (from :func:`~polyrl.analysis.trades.positions`, with episodes) grouped
    by the minutes left in the window at entry: ``[0, e1)``, ``[e1, e2)``, ... ``[e_last,
    inf)`` labelled ``"0-3 min"`` ... ``">=12 min"``.

    One row per bucket (empty ones too, in order): ``bucket``, ``positions``, ``pnl``,
    ``mean_pnl`` per position with its cluster-bootstrap 95% interval ``ci_low``/``ci_high``
    over ``clusters`` clusters (positions of windows with the same start time, or UTC day
    with ``block="day"``, resampled together), ``win_rate``, ``avg_win``, ``avg_loss``,
    ``profit_factor``, ``fees``. Positions without an entry time in a known window are left
    out.
    """
    labels = _bucket_labels(edges_min)
    p = pos.filter(pl.col("minutes_left").is_not_null())
    left = p["minutes_left"].to_numpy()
    idx = np.searchsorted(np.asarray(edges_min, dtype=float), left, side="right")
    pnl_all = p["pnl"].to_numpy()
    fees_all = p["fees"].to_numpy()
    clusters = cluster_ids(p["start_ns"].to_numpy(), block)
    rows = []
    for i, label in enumerate(labels):
        x = pnl_all[idx == i]
        ci = cluster_bootstrap(x, clusters[idx == i], seed=seed)
        rows.append({
            "bucket": label, "positions": int(x.shape[0]), "pnl": float(x.sum()),
            "mean_pnl": float(x.mean()) if x.shape[0] else float("nan"),
            "ci_low": ci.low, "ci_high": ci.high, "clusters": ci.clusters, **payoff(x),
            "fees": float(fees_all[idx == i].sum()),
        })  # fmt: skip
    return pl.DataFrame(rows)


def time_left_table(
    results: Mapping[str, tuple[pl.DataFrame, pl.DataFrame]],
    *,
    edges_min: Sequence[float] = (3, 6, 9, 12),
    seed: int = 0,
    block: str = "start",
) -> pl.DataFrame:
    """:func:`by_time_left` for each ``{strategy: (trades, episodes)}``, stacked with a
    leading ``strategy`` column."""
    frames = [
        by_time_left(positions(tr, ep), edges_min=edges_min, seed=seed, block=block).select(
            pl.lit(name).alias("strategy"), pl.all()
        )
        for name, (tr, ep) in results.items()
    ]
    return pl.concat(frames) if frames else pl.DataFrame(schema={"strategy": pl.String})
