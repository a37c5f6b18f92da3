"""A market with fees enabled but no fee schedule is charged the published crypto schedule
and flagged, from the recorded market row through the day cache to the fills."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl

from polyrl.broker import taker_fee
from polyrl.features.sets import feature_set
from polyrl.policies.baselines import make_baseline
from polyrl.replay import load_days, replay_engine
from polyrl.runlog import RunLog
from polyrl.sections import Config
from polyrl.sources.polymarket.fees import crypto_fee_schedule

CFG = Config()


def _flag_btc_markets(root: Path) -> None:
    """Rewrite the btc market rows as the parser writes a Gamma market that says
    ``feesEnabled: true`` and carries no ``feeSchedule``."""
    for f in sorted(root.glob("polymarket.market/date=*/hour=*/*.parquet")):
        df = pl.read_parquet(f)
        btc = pl.col("asset") == "btc"
        sched = crypto_fee_schedule(int(df["window_start_ns"].min()))
        df = df.with_columns(
            fees_enabled=pl.when(btc).then(True).otherwise(pl.col("fees_enabled")),
            fee_rate=pl.when(btc).then(sched["fee_rate"]).otherwise(pl.col("fee_rate")),
            fee_exponent=pl.when(btc).then(sched["fee_exponent"])
            .otherwise(pl.col("fee_exponent")),
            fee_schedule_assumed=btc,
        )  # fmt: skip
        df.write_parquet(f)


def test_flagged_market_is_charged_the_published_schedule(
    small_recording: Path, tmp_path: Path
) -> None:
    root = tmp_path / "rec"
    shutil.copytree(small_recording, root, ignore=shutil.ignore_patterns(".cache"))
    _flag_btc_markets(root)
    caches = load_days(root, "*", CFG)
    w = caches[0].windows
    btc = w.filter(pl.col("asset") == "btc")
    # 2024 windows predate 2026-03-30: the Jan-Mar 2026 crypto schedule (0.25, exponent 2).
    assert btc["fee_schedule_assumed"].all() and (btc["fee_rate"] == 0.25).all()
    assert (btc["fee_exponent"] == 2.0).all()
    assert not w.filter(pl.col("asset") != "btc")["fee_schedule_assumed"].any()

    log = RunLog(tmp_path / "run", config={}, overwrite=True)
    policy = make_baseline("random", feature_set(CFG.features.feature_set), CFG.baselines, seed=1)
    replay_engine(caches, policy, CFG, log)
    fills = log.frame("trades").filter(
        (pl.col("asset") == "btc") & (pl.col("kind") != "settle") & (pl.col("rejected") == 0)
    )
    one_level = fills.filter(pl.col("levels") == 1)
    assert one_level.height > 0 and (fills["fee"] > 0).all()
    want = taker_fee(one_level["shares"].to_numpy(), one_level["avg_price"].to_numpy(), 0.25, 2.0)
    assert np.allclose(one_level["fee"].to_numpy(), want, rtol=0, atol=1e-5)


def test_crypto_schedule_by_date() -> None:
    from polyrl.events import iso_to_ns

    now = crypto_fee_schedule(iso_to_ns("2026-09-29T04:45:00Z"))
    assert (now["fee_rate"], now["fee_exponent"]) == (0.07, 1.0)
    # The venue's worked example: 100 shares at 0.50 pay $1.75.
    assert taker_fee(np.array([100.0]), np.array([0.5]), 0.07, 1.0)[0] == 1.75
    before = crypto_fee_schedule(iso_to_ns("2026-03-29T23:45:00Z"))
    assert (before["fee_rate"], before["fee_exponent"]) == (0.25, 2.0)
