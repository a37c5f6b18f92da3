"""A strategy against others on the same windows: paired differences over the same clusters,
with verdicts corrected for multiple comparisons (pure; polars in, a frame out).

A pair is a window both runs played with an outcome (joined on ``condition_id``); its
difference is the reference's PnL minus the other's, a window not traded counting 0. The
interval resamples the clusters one run's interval resamples (:mod:`polyrl.analysis.bootstrap`:
windows of one start time, all assets together, or of one UTC day), and the verdicts of a
table of several comparisons are Holm-corrected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from polyrl.analysis.bootstrap import Interval, cluster_bootstrap, cluster_ids, holm
from polyrl.analysis.stats import agg_float, eligible


def _paired(a: pl.DataFrame, b: pl.DataFrame) -> pl.DataFrame:
    """The eligible windows both episodes tables played (joined on ``condition_id``):
    ``start_ns`` (of ``a``), ``pnl`` (of ``a``) and ``pnl_b``."""
    return (
        eligible(a)
        .select("condition_id", "start_ns", "pnl")
        .join(eligible(b).select("condition_id", pl.col("pnl").alias("pnl_b")), on="condition_id")
    )


def paired_difference(
    a: pl.DataFrame,
    b: pl.DataFrame,
    *,
    n: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    block: str = "start",
) -> Interval:
    """Mean PnL-per-window difference of run ``a`` over run ``b`` on the same eligible
    windows (episodes tables joined on ``condition_id``; windows only one of them has are
    left out), with the cluster-bootstrap interval of the paired differences (the clusters
    of the windows' start times by ``block``, as for one run's interval)."""
    j = _paired(a, b)
    d = (j["pnl"] - j["pnl_b"]).to_numpy()
    clusters = cluster_ids(j["start_ns"].to_numpy(), block)
    return cluster_bootstrap(d, clusters, n=n, seed=seed, level=level)


def paired_difference_ci(
    a: pl.DataFrame, b: pl.DataFrame, *, n: int = 2000, seed: int = 0, level: float = 0.95,
    block: str = "start",
) -> tuple[float, float, float]:  # fmt: skip
    """(mean difference, low, high) of :func:`paired_difference`."""
    ci = paired_difference(a, b, n=n, seed=seed, level=level, block=block)
    return ci.mean, ci.low, ci.high


def compare(
    results: Mapping[str, pl.DataFrame | tuple[pl.DataFrame, pl.DataFrame]],
    *,
    reference: str,
    n: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    block: str = "start",
) -> pl.DataFrame:
    """``reference`` against every other strategy of ``{strategy: episodes}`` (or ``{strategy:
    (trades, episodes)}``) on the eligible windows both played, traded in or not (joined on
    ``condition_id``).

    One row per other strategy: ``strategy``, ``windows`` paired, ``clusters`` resampled (the
    same clusters as one run's interval: start times, or UTC days with ``block="day"``),
    ``reference_pnl`` and ``other_pnl`` (mean PnL per paired window), ``mean_diff``
    (reference minus other) with its paired cluster-bootstrap interval ``ci_low``/``ci_high``
    (seeded, not adjusted), ``p_value`` (two-sided, from the same resamples), ``p_holm``
    (Holm-adjusted over every comparison of the table), and ``verdict``: ``better`` or
    ``worse`` when ``p_holm`` is below ``1 - level``, else ``no clear difference``.
    """
    episodes = {k: v[1] if isinstance(v, tuple) else v for k, v in results.items()}
    if reference not in episodes:
        raise KeyError(f"reference {reference!r} is not among {', '.join(episodes)}")
    ref = episodes[reference]
    rows: list[dict[str, Any]] = []
    for name, other in episodes.items():
        if name == reference:
            continue
        j = _paired(ref, other)
        ci = paired_difference(ref, other, n=n, seed=seed, level=level, block=block)
        rows.append({
            "strategy": name, "windows": j.height, "clusters": ci.clusters,
            "reference_pnl": agg_float(j["pnl"].mean()) if j.height else float("nan"),
            "other_pnl": agg_float(j["pnl_b"].mean()) if j.height else float("nan"),
            "mean_diff": ci.mean, "ci_low": ci.low, "ci_high": ci.high, "p_value": ci.p_value,
        })  # fmt: skip
    adjusted = holm(np.array([r["p_value"] for r in rows], dtype=np.float64))
    for r, p in zip(rows, adjusted, strict=True):
        r["p_holm"] = float(p)
        if not r["windows"]:
            r["verdict"] = "no shared windows"
        elif p != p:
            r["verdict"] = "too few clusters"
        elif p < 1 - level:
            r["verdict"] = "better" if r["mean_diff"] > 0 else "worse"
        else:
            r["verdict"] = "no clear difference"
    schema = {"strategy": pl.String, "windows": pl.Int64, "clusters": pl.Int64,
              "reference_pnl": pl.Float64, "other_pnl": pl.Float64, "mean_diff": pl.Float64,
              "ci_low": pl.Float64, "ci_high": pl.Float64, "p_value": pl.Float64,
              "p_holm": pl.Float64, "verdict": pl.String}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)
