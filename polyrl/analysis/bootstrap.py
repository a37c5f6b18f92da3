"""The one interval every statistic of a run uses: a seeded cluster bootstrap (pure numpy).

Windows that open at the same instant are not independent: the four assets' 15-minute
windows start together and move with one market, so their PnLs are correlated. Resampling
windows one by one treats them as independent and gives intervals that are too narrow (with
4 assets and a correlation of 0.45, a nominal 95% interval covers the truth about 80% of the
time). :func:`cluster_bootstrap` resamples whole clusters instead, with replacement:

- ``block="start"`` (the default): a cluster is every window of one start time, all assets
  together (:func:`cluster_ids` of the windows' ``start_ns``);
- ``block="day"``: a cluster is every window that starts on one UTC day, for dependence
  that lasts longer than a window.

The statistic of a resample is the mean over every window of the clusters drawn (sum of
their values over the number of their windows); the interval is the percentile interval of
those means. Its two-sided p-value against a mean of 0 is read off the same resamples
(twice the share of resampled means on the far side of 0). :func:`holm` adjusts the p-values
of several comparisons (Holm's step-down, family-wise error at most ``alpha``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polyrl.events import NS_PER_S

BLOCKS = ("start", "day")
"""The clusterings :func:`cluster_ids` knows: by window start time, or by UTC day."""

NS_PER_DAY = 86_400 * NS_PER_S
_CHUNK = 2_000_000  # indices drawn at a time: bounds memory for long runs, same stream


@dataclass(frozen=True, slots=True, kw_only=True)
class Interval:
    """A mean with its cluster-bootstrap interval.

    ``mean`` over the ``windows`` values; ``low``/``high`` the percentile interval at the
    level asked (NaN with fewer than two clusters: one cluster says nothing about its own
    spread); ``clusters`` how many clusters were resampled; ``p_value`` two-sided against a
    mean of 0 (NaN where the interval is).
    """

    mean: float
    low: float
    high: float
    clusters: int
    windows: int
    p_value: float


def cluster_ids(start_ns: np.ndarray, block: str = "start") -> np.ndarray:
    """Cluster label ``[windows]`` of each window from its start time ``start_ns`` [windows]
    (ns): the start time itself (``block="start"``) or its UTC day (``block="day"``)."""
    start = np.asarray(start_ns, dtype=np.int64)
    if block == "start":
        return start
    if block == "day":
        return start // NS_PER_DAY
    raise ValueError(f"block must be one of {', '.join(BLOCKS)}, not {block!r}")


def cluster_bootstrap(
    values: np.ndarray,
    clusters: np.ndarray | None = None,
    *,
    n: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Mean of ``values`` [windows] with the percentile interval of ``n`` resamples of its
    clusters (``clusters`` [windows]: any labels, equal labels = one cluster; ``None``: each
    value its own cluster, the naive per-window bootstrap). Seeded: the same inputs and seed
    give the same interval. Empty ``values``: every figure NaN, 0 clusters."""
    x = np.asarray(values, dtype=np.float64)
    if x.shape[0] == 0:
        nan = float("nan")
        return Interval(mean=nan, low=nan, high=nan, clusters=0, windows=0, p_value=nan)
    if clusters is None:
        labels = np.arange(x.shape[0])
    else:
        c = np.asarray(clusters)
        if c.shape != x.shape:
            raise ValueError(f"clusters has shape {c.shape}, values {x.shape}")
        labels = np.unique(c, return_inverse=True)[1].reshape(-1)
    k = int(labels.max()) + 1
    sums = np.bincount(labels, weights=x, minlength=k)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    mean = float(x.mean())
    if k < 2:
        nan = float("nan")
        return Interval(mean=mean, low=nan, high=nan, clusters=k, windows=x.shape[0],
                        p_value=nan)  # fmt: skip
    rng = np.random.default_rng(seed)
    means = np.empty(n)
    step = max(1, _CHUNK // k)
    for s in range(0, n, step):
        idx = rng.integers(0, k, size=(min(step, n - s), k))
        means[s : s + idx.shape[0]] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    p = min(1.0, 2.0 * min(float(np.mean(means <= 0)), float(np.mean(means >= 0))))
    return Interval(mean=mean, low=float(lo), high=float(hi), clusters=k, windows=x.shape[0],
                    p_value=p)  # fmt: skip


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values ``[tests]`` of ``p_values`` [tests] (in the same order): the
    i-th smallest p times (m - i + 1), made non-decreasing, capped at 1. Rejecting where the
    adjusted p is below alpha keeps the chance of any false rejection at most alpha. NaNs
    stay NaN and do not count as tests."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.shape[0]
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out
