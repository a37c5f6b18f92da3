"""Does training learn a planted edge, and claim none where there is none? Both can fail.

Simulated BTC markets whose Polymarket book follows the fair probability of Up with a lag
of LAG_S seconds (the planted edge) or with none. Orders fill FILL_LATENCY_MS after the
decision, so only LAG_S minus that latency of the book's staleness is exploitable. The
policy sees the ``seed18`` features only: Binance returns, books and flow, no fair value
and no Polymarket price, so it must learn the edge from the underlying's moves. PPO trains
on one simulated day (six hours, 24 windows) and is judged on the next (eight hours, 32
windows), played in full. The reward is shaped (see BROKER): with realized PnL alone PPO
learned no lag of 3 to 30 s in 30 to 150 updates.

Judged per window over every held-out window, with the cluster-bootstrap interval
(clusters: windows of one start time):

- edge: PPO's interval lies above 0, i.e. PPO beats HOLD (whose PnL is 0 in every window),
  and its paired difference against the random baseline lies above 0 too;
- no edge: the policy trades (at least MIN_FILLS fills, so one that never trades fails)
  and its interval does not lie above 0.

Why a 10 s lag. The rule baselines on this market at 300 ms (momentum, the best of them,
per held-out window over the first 16 windows): 5 s +0.37 [-2.67, +3.88], 10 s +1.70
[-1.11, +4.79], 20 s +3.11 [+0.88, +5.57], 30 s +6.34 [+3.18, +10.48]; over all 32 windows
at 5 s +1.29 [-1.75, +4.77], at 10 s +2.92 [-0.10, +6.56]. PPO with this test's settings
at 5 s: +2.42 [-0.51, +6.06], no significant edge. 10 s is the smallest lag tried at which
PPO's edge is significant, on every training seed measured (seeds 1, 2, 3: +14.68 [+1.80,
+38.13], +11.02 [+2.70, +22.54], +12.48 [+4.11, +23.28]; no lag, seeds 1, 2: -0.67 [-2.28,
+1.04] with 44 fills, -0.26 [-1.93, +1.50] with 36). Windows in which the policy buys a
cheap token that then wins make the PnL heavy-tailed; the eight held-out hours keep the
interval's low end away from 0 despite them (over four hours, seed 1 at 400 updates
missed: -1.20).

Every simulator parameter the market depends on is set here, not taken from the defaults,
so recalibrating the simulator does not move this test's market; so are the broker's
sizing and reward and the PPO settings that matter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from polyrl.analysis.bootstrap import Interval, cluster_bootstrap
from polyrl.analysis.paired import paired_difference
from polyrl.analysis.stats import eligible
from polyrl.broker import BrokerConfig
from polyrl.engine import EngineConfig
from polyrl.events import NS_PER_S, iso_to_ns
from polyrl.features.engine import FeatureConfig
from polyrl.recording.writer import RecordingConfig
from polyrl.rl.ppo import PPOConfig
from polyrl.rl.train import TrainConfig, train
from polyrl.sections import Config
from polyrl.sim.config import SimConfig

from .conftest import REPO

LAG_S = 10.0
"""The planted book lag of the edge case, seconds."""
FILL_LATENCY_MS = 300
"""Decision to fill, ms: the part of the lag no order can exploit."""
MIN_FILLS = 20
"""Fewest fills over the 32 held-out windows that count as trading."""

PPO = PPOConfig(ent_coef=0.01, lr_actor=3e-4, lr_critic=1e-3, buffer_steps=256,
                minibatch_size=1024, n_epochs=4, gamma=0.99, gae_lambda=0.95,
                hidden=128)  # fmt: skip
UPDATES = 300
"""PPO updates (16 envs x 256 steps each)."""
BROKER = BrokerConfig(
    capital=10.0,
    size_fraction=0.5,
    on_opposite="close",
    on_same="hold",
    reward="shaped",
    shaping_unrealized_coef=1.0,
    shaping_trade_penalty=0.0,
)
"""Shaped reward with coefficient 1: the change in the position's mark-to-bid value each
tick, which telescopes to the realized PnL of every round trip (no penalty term), so it
moves credit to the ticks where the book catches up without changing what is optimal. With
the realized PnL alone the reward arrives at settlement, up to 1,800 ticks after the entry,
discounted to nothing by gamma 0.99 per tick."""


def _sim(lag_s: float) -> SimConfig:
    # Binance message rates are cut to save simulation time. The Polymarket book and the
    # reference feed are pinned at the values this test was calibrated on.
    return SimConfig(
        book_lag_s=lag_s, book_noise=0.003, book_noise_tau_s=10.0, fair_vol_halflife_s=300.0,
        book_wide_prob=0.3, book_levels=8, book_level_size=800.0, book_level_sigma=0.8,
        book_quote_rate=5.0, book_trade_rate=1.0, book_trade_size=40.0, book_informed=1.0,
        fees_enabled=True, fee_rate=0.07, fee_exponent=1.0, fee_taker_only=True,
        spot_trade_rate=(3.0,) * 4, futures_trade_rate=(4.0,) * 4, book_ticker_rate=(4.0,) * 4,
        annual_vol=(0.45, 0.60, 0.85, 0.75), volatile_vol_mult=2.5, jumps_per_hour=0.3,
        taker_informed=0.8, reference_lag_s=0.5, reference_noise=2e-5,
        polymarket_latency_ms=40.0, binance_latency_ms=15.0, rtds_latency_ms=290.0,
    )  # fmt: skip


def _train(tmp: Path, lag_s: float, *, seed: int = 11, train_seed: int = 1) -> Path:
    """The held-out evaluation directory of PPO trained on a market with ``lag_s``."""
    from polyrl.sim.record import simulate_to_recording

    cfg = Config(assets=("btc",), sim=_sim(lag_s), recording=RecordingConfig(fsync=False),
                 features=FeatureConfig(feature_set="seed18"),
                 engine=EngineConfig(fill_latency_ms=FILL_LATENCY_MS), broker=BROKER)  # fmt: skip
    root = tmp / f"lag{lag_s:g}"
    start = iso_to_ns("2024-06-01T18:00:00Z")
    simulate_to_recording(root, start_ns=start, end_ns=start + 14 * 3600 * NS_PER_S, seed=seed,
                          config=cfg)  # fmt: skip
    res = train(root=root, dates="2024-06-01", eval_dates="2024-06-02", config=cfg,
                tc=TrainConfig(envs=16, updates=UPDATES, seed=train_seed), ppo_config=PPO,
                run_dir=tmp / f"run-{lag_s:g}")  # fmt: skip
    return res.run_dir / "eval"


_CASES = {"test_training_finds_a_planted_edge": LAG_S,
          "test_training_trades_and_claims_no_edge_where_there_is_none": 0.0}  # fmt: skip
"""The lag each training case trains on."""


@pytest.fixture(scope="module")
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """``{lag_s: held-out evaluation directory}`` for the cases this run selected.

    Each case's simulation and training is pure, seeded computation that shares nothing with
    the other, so both run at once, each in its own interpreter (:func:`_train` as the tests
    call it), one per core: the same files as one after the other, in half the wall time."""
    names = {item.originalname for item in request.session.items}
    lags = [lag for name, lag in _CASES.items() if name in names]
    tmp = tmp_path_factory.mktemp("learning")
    procs = {}
    for lag in lags:
        code = (f"from pathlib import Path; from tests.integration.test_learning import _train; "
                f"print(_train(Path({str(tmp)!r}), {lag!r}))")  # fmt: skip
        procs[lag] = subprocess.Popen(
            [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
    out = {}
    for lag, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=3600)
        assert proc.returncode == 0, f"training at lag {lag:g} s failed:\n{stderr}"
        out[lag] = Path(stdout.strip().splitlines()[-1])
    return out


def per_window(episodes: pl.DataFrame) -> Interval:
    """PnL per held-out window with its cluster-bootstrap interval (clusters: start times)."""
    eps = eligible(episodes)
    return cluster_bootstrap(eps["pnl"].to_numpy(), eps["start_ns"].to_numpy(), seed=1)


def assert_edge(ppo: pl.DataFrame, random: pl.DataFrame) -> None:
    """PPO beats HOLD (its interval excludes 0 from above) and beats random (paired)."""
    own = per_window(ppo)
    assert own.low > 0, (
        f"PPO per window {own.mean:+.2f} [{own.low:+.2f}, {own.high:+.2f}] over "
        f"{own.clusters} clusters does not beat HOLD (0)"
    )
    d = paired_difference(ppo, random, seed=1)
    assert d.low > 0, f"PPO - random per window: {d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}]"


def assert_trades_without_edge(ppo: pl.DataFrame, min_fills: int = MIN_FILLS) -> None:
    """The policy trades (at least ``min_fills`` fills) and claims no edge."""
    fills = int(ppo["fills"].sum())
    assert fills >= min_fills, f"{fills} fills over {ppo.height} windows: the policy does not trade"
    own = per_window(ppo)
    assert not own.low > 0, (
        f"PPO per window {own.mean:+.2f} [{own.low:+.2f}, {own.high:+.2f}] claims an edge"
    )


def _hold(episodes: pl.DataFrame) -> pl.DataFrame:
    """What HOLD plays on the same windows: no order, no fill, PnL 0."""
    return episodes.with_columns(pl.lit(0.0).alias("pnl"), pl.lit(0.0).alias("fees"),
                                 pl.lit(0, pl.Int32).alias("fills"),
                                 pl.lit(0, pl.Int32).alias("orders"))  # fmt: skip


def _episodes(pnl: list[float], fills: int) -> pl.DataFrame:
    start = iso_to_ns("2024-06-02T00:00:00Z")
    n = len(pnl)
    return pl.DataFrame({
        "condition_id": [f"c{i}" for i in range(n)],
        "start_ns": [start + i * 900 * NS_PER_S for i in range(n)],
        "pnl": pnl, "fills": [fills] * n, "outcome": ["Up"] * n,
        "outcome_source": ["resolution"] * n,
    })  # fmt: skip


@pytest.mark.integration
def test_the_assertions_fail_for_hold_and_pass_for_a_clear_edge() -> None:
    """The judges themselves: HOLD (never trades) fails both; random-like losses fail the
    edge check; a clear positive PnL passes it and fails the no-edge check."""
    rng = np.random.default_rng(0)
    hold = _episodes([0.0] * 16, 0)
    losing = _episodes(list(rng.normal(-10.0, 3.0, 16)), 40)
    winning = _episodes(list(rng.normal(10.0, 3.0, 16)), 40)
    noise = _episodes([3.0, -3.0] * 8, 40)
    with pytest.raises(AssertionError, match="does not beat HOLD"):
        assert_edge(hold, losing)
    with pytest.raises(AssertionError, match="does not trade"):
        assert_trades_without_edge(hold)
    with pytest.raises(AssertionError, match="does not beat HOLD"):
        assert_edge(losing, hold)
    assert_edge(winning, losing)
    with pytest.raises(AssertionError, match="claims an edge"):
        assert_trades_without_edge(winning)
    assert_trades_without_edge(noise)
    assert_trades_without_edge(losing)


@pytest.mark.slow
@pytest.mark.integration
def test_training_finds_a_planted_edge(trained: dict[float, Path]) -> None:
    ev = trained[LAG_S]
    ppo = pl.read_parquet(ev / "ppo-episodes.parquet")
    rnd = pl.read_parquet(ev / "random-episodes.parquet")
    assert ppo.height == 32
    # The judge fails HOLD and random on these very windows, so passing it is PPO's doing.
    for other in (_hold(ppo), rnd):
        with pytest.raises(AssertionError, match="does not beat HOLD"):
            assert_edge(other, rnd)
    assert_edge(ppo, rnd)


@pytest.mark.slow
@pytest.mark.integration
def test_training_trades_and_claims_no_edge_where_there_is_none(
    trained: dict[float, Path],
) -> None:
    ev = trained[0.0]
    ppo = pl.read_parquet(ev / "ppo-episodes.parquet")
    assert ppo.height == 32
    assert_trades_without_edge(ppo)
    # A policy that never trades fails this judge on these very windows.
    with pytest.raises(AssertionError, match="does not trade"):
        assert_trades_without_edge(_hold(ppo))
