"""The sweep's table: one row per configuration (pure: frames in, a frame out).

Each trial (one configuration, one seed) contributes the PnL of every eligible validation
window its policy played (``checkpoints/best``, chosen on the validation days). A
configuration's figure is the mean PnL per window over all its seeds' windows, with the
project's cluster bootstrap (:mod:`polyrl.analysis.bootstrap`): a cluster is one seed's
windows of one start time (``block="start"``, every asset together) or UTC day
(``block="day"``), so a resample draws seeds x windows, keeping each seed's same-instant
windows together. The chosen configuration is the one with the highest validation mean; only
it carries test figures (the test days choose nothing).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from polyrl.analysis.bootstrap import Interval, cluster_bootstrap, cluster_ids
from polyrl.analysis.stats import eligible

TABLE_SCHEMA = {
    "config_id": pl.String, "params": pl.String, "seeds": pl.Int64, "trials_done": pl.Int64,
    "val_windows": pl.Int64, "val_pnl_per_window": pl.Float64, "val_ci_low": pl.Float64,
    "val_ci_high": pl.Float64, "val_clusters": pl.Int64, "chosen": pl.Boolean,
    "test_windows": pl.Int64, "test_pnl_per_window": pl.Float64, "test_ci_low": pl.Float64,
    "test_ci_high": pl.Float64, "test_clusters": pl.Int64,
}  # fmt: skip
"""table.parquet's columns; the ``test_*`` ones are null except in the chosen row."""


def seeds_interval(
    episodes_by_seed: Mapping[int, pl.DataFrame], *, block: str = "start", seed: int = 0
) -> Interval:
    """Mean PnL per eligible window over every seed's episodes with the cluster-bootstrap 95%
    interval, a cluster being one seed's windows of one start time (or day, ``block``)."""
    vals, seed_ix, starts = [], [], []
    for i, s in enumerate(sorted(episodes_by_seed)):
        ep = eligible(episodes_by_seed[s])
        vals.append(ep["pnl"].to_numpy().astype(np.float64))
        starts.append(cluster_ids(ep["start_ns"].to_numpy(), block))
        seed_ix.append(np.full(ep.height, i, dtype=np.int64))
    if not vals:
        return cluster_bootstrap(np.zeros(0), seed=seed)
    x = np.concatenate(vals)
    pairs = np.stack([np.concatenate(seed_ix), np.concatenate(starts)], axis=1)
    labels = (np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1)
              if x.shape[0] else np.zeros(0, dtype=np.int64))  # fmt: skip
    return cluster_bootstrap(x, labels, seed=seed)


def sweep_table(
    configs: Sequence[tuple[str, dict[str, Any], int]],
    val: Mapping[str, Mapping[int, pl.DataFrame]],
    test: Mapping[int, pl.DataFrame] | None = None,
    *,
    block: str = "start",
    seed: int = 0,
) -> pl.DataFrame:
    """``configs``: (config id, searched values, number of seeds) in sweep order; ``val``:
    ``{config id: {seed: validation episodes}}`` of the finished trials; ``test``: the chosen
    configuration's ``{seed: test episodes}`` (see :func:`chosen`). One row per configuration
    (:data:`TABLE_SCHEMA`)."""
    rows = []
    for cid, params, n_seeds in configs:
        eps = val.get(cid, {})
        iv = seeds_interval(eps, block=block, seed=seed)
        rows.append({"config_id": cid, "params": json.dumps(params, sort_keys=True),
                     "seeds": n_seeds, "trials_done": len(eps), "val_windows": iv.windows,
                     "val_pnl_per_window": iv.mean, "val_ci_low": iv.low, "val_ci_high": iv.high,
                     "val_clusters": iv.clusters, "chosen": False, "test_windows": None,
                     "test_pnl_per_window": None, "test_ci_low": None, "test_ci_high": None,
                     "test_clusters": None})  # fmt: skip
    best = chosen(rows)
    if best is not None:
        rows[best]["chosen"] = True
        if test:
            t = seeds_interval(test, block=block, seed=seed)
            rows[best].update(test_windows=t.windows, test_pnl_per_window=t.mean,
                              test_ci_low=t.low, test_ci_high=t.high,
                              test_clusters=t.clusters)  # fmt: skip
    return pl.DataFrame(rows, schema=TABLE_SCHEMA)


def chosen(rows: Sequence[Mapping[str, Any]]) -> int | None:
    """Index of the row with the highest validation mean (the first on a tie); None when no
    configuration has a validation figure."""
    best, best_v = None, -np.inf
    for i, r in enumerate(rows):
        v = r["val_pnl_per_window"]
        if v is not None and not np.isnan(v) and v > best_v:
            best, best_v = i, v
    return best


def format_sweep_table(table: pl.DataFrame) -> str:
    """The table as text: per configuration its searched values, validation PnL per window
    with the 95% interval and clusters; the chosen one marked, with its test row."""

    def ci(m: Any, lo: Any, hi: Any) -> str:
        if m is None or np.isnan(m):
            return "n/a"
        if lo is None or np.isnan(lo):
            return f"{m:+.4f} [n/a]"
        return f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}]"

    lines = [f"{'':1} {'config':<14} {'seeds':>5} {'windows':>7} {'val PnL/window [95% CI]':>34} "
             f"{'clust':>5}  params"]  # fmt: skip
    for r in table.iter_rows(named=True):
        mark = "*" if r["chosen"] else " "
        lines.append(
            f"{mark} {r['config_id']:<14} {r['trials_done']:>2}/{r['seeds']:<2} "
            f"{r['val_windows']:>7} "
            f"{ci(r['val_pnl_per_window'], r['val_ci_low'], r['val_ci_high']):>34} "
            f"{r['val_clusters']:>5}  {r['params']}"
        )
    for r in table.filter(pl.col("chosen")).iter_rows(named=True):
        if r["test_windows"] is not None:
            lines.append(
                f"test of the chosen {r['config_id']}: {r['test_windows']} windows, PnL/window "
                f"{ci(r['test_pnl_per_window'], r['test_ci_low'], r['test_ci_high'])}, "
                f"{r['test_clusters']} clusters"
            )
        else:
            lines.append(f"chosen {r['config_id']} (no test days: no test figures)")
    lines.append("95% intervals: cluster bootstrap over seeds x windows (a cluster is one "
                 "seed's windows of one start time); * = chosen on validation.")  # fmt: skip
    return "\n".join(lines)
