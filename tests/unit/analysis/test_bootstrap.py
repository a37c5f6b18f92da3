"""The cluster bootstrap, Holm's correction and the eligible-window mean, against cases worked
out by hand, and a Monte-Carlo coverage check with correlated assets."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from polyrl.analysis.bootstrap import NS_PER_DAY, cluster_bootstrap, cluster_ids, holm
from polyrl.analysis.paired import compare
from polyrl.analysis.stats import by_time_left, format_table, summarize
from polyrl.analysis.trades import positions
from polyrl.runlog import EPISODES

from .frames import W, episode, episodes, trades

approx = pytest.approx


def test_cluster_bootstrap_by_hand() -> None:
    # Cluster A holds three windows of 1, cluster B one window of 4. A resample of two clusters
    # is AA (mean 1), BB (mean 4) or AB/BA (mean (3 + 4) / 4 = 1.75), with chances 1/4, 1/4,
    # 1/2: the 2.5% and 97.5% quantiles are 1 and 4 exactly.
    x = np.array([1.0, 1.0, 4.0, 1.0])
    c = np.array([7, 7, 9, 7])
    ci = cluster_bootstrap(x, c)
    assert ci.mean == 1.75  # over windows, not the mean of cluster means (2.5)
    assert (ci.low, ci.high) == (1.0, 4.0)
    assert (ci.clusters, ci.windows) == (2, 4)
    assert ci.p_value == 0.0  # no resample reaches 0
    # Labels are names only, and the order of the rows does not matter.
    assert cluster_bootstrap(x[::-1], np.array(["a", "b", "a", "a"])) == ci
    # Each window its own cluster (the naive bootstrap): the mean of four draws reaches 4 only
    # when all four are the 4 (chance 1/256), so its upper end stays below the cluster one.
    naive = cluster_bootstrap(x)
    assert naive.clusters == 4 and naive.low == 1.0 and naive.high < 4.0


def test_cluster_bootstrap_is_seeded_and_says_when_it_cannot() -> None:
    x = np.array([-3.0, 0.0, 1.0, 4.0, 10.0, 2.0])
    c = np.array([0, 0, 1, 2, 2, 3])
    a, b, d = (cluster_bootstrap(x, c, seed=s) for s in (1, 1, 2))
    assert a == b and a != d
    assert x.min() <= a.low < a.mean < a.high <= x.max() and 0 < a.p_value <= 1
    one = cluster_bootstrap(x, np.zeros(6))  # a single cluster: no interval
    assert one.mean == approx(x.mean()) and one.clusters == 1
    assert math.isnan(one.low) and math.isnan(one.high) and math.isnan(one.p_value)
    empty = cluster_bootstrap(np.zeros(0), np.zeros(0))
    assert empty.clusters == 0 and math.isnan(empty.mean)
    with pytest.raises(ValueError, match="shape"):
        cluster_bootstrap(x, c[:3])


def test_cluster_ids_by_start_and_by_day() -> None:
    start = np.array([0, 0, W, NS_PER_DAY + W, NS_PER_DAY + W])
    assert np.unique(cluster_ids(start)).shape[0] == 3
    assert cluster_ids(start, "day").tolist() == [0, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="block must be one of start, day"):
        cluster_ids(start, "hour")


def test_holm_by_hand() -> None:
    # Sorted 0.01, 0.03, 0.04 times 3, 2, 1: 0.03, 0.06, 0.04 -> non-decreasing 0.03, 0.06, 0.06.
    assert holm(np.array([0.01, 0.04, 0.03])) == approx([0.03, 0.06, 0.06])
    # Capped at 1; NaN is not a test (m = 2 here).
    out = holm(np.array([0.6, np.nan, 0.5]))
    assert out[0] == 1.0 and out[2] == 1.0 and math.isnan(out[1])
    assert holm(np.zeros(0)).shape == (0,)


def _eps(rows: list[tuple[str, str, int, float]]) -> pl.DataFrame:
    return pl.DataFrame([episode(0, a, cid, start, "Up", 1, pnl, 0.0)
                         for a, cid, start, pnl in rows], schema=EPISODES)  # fmt: skip


def test_eligible_windows_count_untraded_as_zero_and_leave_out_missing_outcomes() -> None:
    missing = episode(1, "eth", "w5", 4 * W, "missing", 0, 0.0, 0.0)
    missing["outcome_source"] = "missing"
    ep = pl.concat([episodes(), pl.DataFrame([missing], schema=EPISODES)])
    t = summarize(trades(), ep, assets=("btc", "eth"), capital_per_slot=10.0)["total"]
    assert (t["windows"], t["windows_traded"], t["missing_resolution"]) == (4, 3, 1)
    assert t["pnl_per_window"] == approx(16.7 / 4) and t["clusters"] == 4
    assert t["pnl_per_traded_window"] == approx(16.7 / 3) and t["traded_clusters"] == 3


def test_block_by_day_resamples_days() -> None:
    ep = _eps([("btc", f"w{i}", i * W + (i // 3) * NS_PER_DAY, float(i)) for i in range(6)])
    by_start = summarize(trades().head(0), ep, assets=("btc",), capital_per_slot=1.0)
    by_day = summarize(trades().head(0), ep, assets=("btc",), capital_per_slot=1.0, block="day")
    assert by_start["total"]["clusters"] == 6 and by_day["total"]["clusters"] == 2
    assert by_day["total"]["block"] == "day" and by_day["total"]["pnl_per_window"] == 2.5
    with pytest.raises(ValueError, match="block"):
        summarize(trades(), episodes(), assets=("btc",), capital_per_slot=1.0, block="week")


def test_time_left_buckets_resample_windows_by_start() -> None:
    t = by_time_left(positions(trades(), episodes()))
    assert t["clusters"].to_list() == [1, 0, 0, 0, 2]  # the early bucket: w1 and w3
    assert math.isnan(t.row(0, named=True)["ci_low"])  # one cluster: no interval


def test_compare_pairs_on_start_time_clusters() -> None:
    # Two assets at each of three start times: 6 windows, 3 clusters.
    ref = _eps([(a, f"{a}{i}", i * W, 1.0 + i) for i in range(3) for a in ("btc", "eth")])
    other = ref.with_columns(pl.col("pnl") - 1.0)
    row = compare({"ref": ref, "other": other}, reference="ref").row(0, named=True)
    assert (row["windows"], row["clusters"]) == (6, 3)
    assert row["mean_diff"] == 1.0 and row["verdict"] == "better" and row["p_holm"] == 0.0


def test_compare_verdicts_are_holm_corrected() -> None:
    # 40 start times whose paired differences have a mean about 2.2 standard errors above 0:
    # alone, a difference; as one of three comparisons, not after Holm's correction.
    d = 0.35 + np.linspace(-1.7, 1.7, 40)
    ref = _eps([("btc", f"w{i}", i * W, float(v)) for i, v in enumerate(d)])
    base = ref.with_columns(pl.lit(0.0).alias("pnl"))
    one = compare({"ref": ref, "a": base}, reference="ref").row(0, named=True)
    assert one["ci_low"] > 0 and one["p_value"] < 0.05 and one["verdict"] == "better"
    three = compare({"ref": ref, "a": base, "b": base, "c": base}, reference="ref")
    assert (three["p_value"] < 0.05).all() and (three["ci_low"] > 0).all()
    assert three["p_holm"].to_list() == approx(list(holm(three["p_value"].to_numpy())))
    assert (three["p_holm"] >= 0.05).all()
    assert set(three["verdict"]) == {"no clear difference"}


def test_coverage_with_correlated_assets() -> None:
    """4 assets whose windows share a per-start-time factor (correlation 0.45): a nominal 95%
    cluster interval covers the true mean 93-97% of the time over 1,000 runs of 200 start
    times; the naive per-window interval, on the same data, about 80%."""
    rng = np.random.default_rng(7)
    runs, starts, assets, rho, mu = 1000, 200, 4, 0.45, 0.3
    common = rng.standard_normal((runs, starts, 1))
    own = rng.standard_normal((runs, starts, assets))
    x = (mu + np.sqrt(rho) * common + np.sqrt(1 - rho) * own).reshape(runs, -1)
    clusters = np.repeat(np.arange(starts), assets)
    hit = [cluster_bootstrap(x[r], clusters, n=1000, seed=r) for r in range(runs)]
    covered = np.mean([ci.low <= mu <= ci.high for ci in hit])
    assert all(ci.clusters == starts for ci in hit)
    naive = [cluster_bootstrap(x[r], None, n=1000, seed=r) for r in range(300)]
    naive_covered = np.mean([ci.low <= mu <= ci.high for ci in naive])
    assert 0.93 <= covered <= 0.97, covered
    assert naive_covered < 0.88, naive_covered


def test_the_printed_table_shows_both_figures_with_their_clusters() -> None:
    s = summarize(trades(), episodes(), assets=("btc", "eth"), capital_per_slot=10.0)
    lines = format_table({"x": s}).splitlines()
    t = s["total"]
    lo, hi = t["pnl_per_window_ci95"]
    tlo, thi = t["pnl_per_traded_window_ci95"]
    total = next(x for x in lines if x.startswith("x            total")).split()
    # windows, PnL/window [CI], clusters, windows traded, PnL/traded window [CI], clusters
    assert total[10:] == ["4", "+4.175", f"[{lo:+.3f},", f"{hi:+.3f}]", "4",
                          "3", "+5.567", f"[{tlo:+.3f},", f"{thi:+.3f}]", "3"]  # fmt: skip
    eth = next(x for x in lines if x.startswith("x            eth")).split()
    assert eth[-5:] == ["1", "+19.800", "[-,", "-]", "1"]  # one traded cluster: no interval
    assert lines[-1].startswith("95% intervals: cluster bootstrap")
