"""Split and missing outcomes: the env and the Engine settle them alike.

A split (50-50) resolution pays $0.50 a share of either token; a window with no outcome is
flagged ``no_outcome`` with PnL null (never a refund booked as PnL 0), and the statistics
leave it out and count it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from polyrl.analysis.report import results_tables
from polyrl.analysis.stats import summarize
from polyrl.features.sets import feature_set
from polyrl.policies.baselines import make_baseline
from polyrl.replay import load_days, replay_engine
from polyrl.rl.env import evaluate
from polyrl.rl.episodes import EpisodeStore
from polyrl.runlog import RunLog
from polyrl.sections import Config

CFG = Config()
FSET = feature_set(CFG.features.feature_set)
CMP = ["slot", "asset", "condition_id", "kind", "action", "token", "side", "shares",
       "avg_price", "notional", "fee", "levels", "partial", "rejected", "realized_pnl"]  # fmt: skip


@pytest.fixture(scope="module")
def caches(small_recording: Path):  # type: ignore[no-untyped-def]
    """The small recording with its decided windows relabelled: every third a split, every
    third after it without any outcome (as finalize_outcomes marks one)."""
    out = []
    for c in load_days(small_recording, "*", CFG):
        w = c.windows
        decided = w["outcome"].is_in(["Up", "Down"])
        kind = pl.when(~decided).then(pl.lit(-1)).otherwise(pl.col("index") % 3)
        w = w.with_columns(
            outcome=pl.when(kind == 0).then(pl.lit("split"))
            .when(kind == 1).then(pl.lit("missing")).otherwise(pl.col("outcome")),
            outcome_source=pl.when(kind == 1).then(pl.lit("missing"))
            .otherwise(pl.col("outcome_source")),
        )  # fmt: skip
        out.append(dataclasses.replace(c, windows=w))
    return out


def _runs(caches, tmp_path: Path):  # type: ignore[no-untyped-def]
    log = RunLog(tmp_path / "engine", config={}, overwrite=True)
    replay_engine(caches, make_baseline("momentum", FSET, CFG.baselines), CFG, log)
    log.flush()
    store = EpisodeStore.build(caches, exclude_gap=False, exclude_missing=False)
    tr_env, ep_env = evaluate(
        store, make_baseline("momentum", FSET, CFG.baselines), fset=FSET, broker=CFG.broker
    )
    ep_eng = log.frame("episodes").filter(
        pl.col("condition_id").is_in(ep_env["condition_id"].implode())
    )
    return log.frame("trades"), ep_eng, tr_env, ep_env


def test_split_and_missing_outcomes_agree_between_env_and_engine(caches, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tr_eng, ep_eng, tr_env, ep_env = _runs(caches, tmp_path)
    key = ["condition_id"]
    a = tr_env.filter(pl.col("kind") == "settle").select(CMP).sort(key)
    b = tr_eng.filter(pl.col("kind") == "settle").select(CMP).sort(key)
    assert a.equals(b)
    cols = ["condition_id", "outcome", "no_outcome", "orders", "fills", "pnl", "fees"]
    assert ep_env.select(cols).sort(key).equals(ep_eng.select(cols).sort(key))

    # A split pays $0.50 a share, whichever token is held: PnL = 0.5 * shares - cost.
    split_ids = ep_eng.filter(pl.col("outcome") == "split")["condition_id"].implode()
    split_settles = b.filter(pl.col("condition_id").is_in(split_ids))
    assert split_settles.height > 0
    assert (split_settles["avg_price"] == 0.5).all()
    assert np.allclose(split_settles["notional"], 0.5 * split_settles["shares"])
    assert ep_eng.filter(pl.col("outcome") == "split")["pnl"].is_not_null().all()

    # No outcome: no settlement row, PnL null (not 0), flagged; decided windows are not.
    none = ep_eng.filter(pl.col("outcome") == "missing")
    assert none.height > 0 and none["no_outcome"].all() and none["pnl"].is_null().all()
    assert none.filter(pl.col("fills") > 0).height > 0, "a traded window had no outcome"
    none_ids = none["condition_id"].implode()
    assert b.filter(pl.col("condition_id").is_in(none_ids)).is_empty()
    assert not ep_eng.filter(pl.col("outcome") != "missing")["no_outcome"].any()


def test_statistics_leave_out_and_count_windows_without_outcome(caches, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tr, ep, tr_env, ep_env = _runs(caches, tmp_path)
    s = summarize(tr, ep, assets=tuple(CFG.assets), capital_per_slot=CFG.broker.capital)["total"]
    decided = ep.filter(~pl.col("no_outcome"))
    assert s["missing_resolution"] == ep.filter(pl.col("no_outcome")).height > 0
    assert s["windows"] == decided.height
    assert s["pnl"] == pytest.approx(float(decided["pnl"].sum()))
    traded = decided.filter(pl.col("fills") > 0)
    assert s["windows_traded"] == traded.height
    # Per window over every window with an outcome (untraded count 0), traded ones beside it.
    assert s["pnl_per_window"] == pytest.approx(float(decided["pnl"].mean()))
    assert s["pnl_per_traded_window"] == pytest.approx(float(traded["pnl"].mean()))
    assert np.isfinite(s["pnl_per_window_ci95"]).all()

    # The report's paired comparison pairs only windows with an outcome.
    tables = results_tables(
        {"engine": (tr, ep), "env": (tr_env, ep_env)},
        assets=tuple(CFG.assets),
        capital_per_slot=CFG.broker.capital,
    )
    row = tables.comparison.row(0, named=True)
    assert row["windows"] == ep_env.filter(~pl.col("no_outcome")).height
    assert row["mean_diff"] == 0.0 and np.isfinite([row["ci_low"], row["ci_high"]]).all()
