"""Training learns a planted edge, and claims none where there is none.

Simulated BTC markets whose Polymarket book follows the fair probability of Up with a
30-second lag (the planted edge) or with none. PPO trains on one simulated day (six hours,
24 windows) and is judged on the next (four hours, 16 windows) against the random baseline
by a paired bootstrap over windows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from polyrl.analysis.paired import paired_difference_ci
from polyrl.analysis.stats import bootstrap_mean_ci
from polyrl.config import Config
from polyrl.events import NS_PER_S, iso_to_ns
from polyrl.features.engine import FeatureConfig
from polyrl.recording.writer import RecordingConfig
from polyrl.rl.ppo import PPOConfig
from polyrl.rl.train import TrainConfig, train
from polyrl.sim.config import SimConfig
from polyrl.sim.record import simulate_to_recording

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PPO = PPOConfig(ent_coef=0.01, lr_actor=3e-4, lr_critic=1e-3, buffer_steps=256,
                minibatch_size=1024, n_epochs=4)  # fmt: skip


def _market(tmp: Path, lag_s: float) -> tuple[Path, Config]:
    # Binance message rates are cut to save simulation time; the Polymarket book, the
    # reference feed and the features are as usual.
    sim = SimConfig(book_lag_s=lag_s, book_noise=0.003, spot_trade_rate=(3.0,) * 4,
                    futures_trade_rate=(4.0,) * 4, book_ticker_rate=(4.0,) * 4)  # fmt: skip
    cfg = Config(assets=("btc",), sim=sim, recording=RecordingConfig(fsync=False),
                 features=FeatureConfig(feature_set="full"))  # fmt: skip
    root = tmp / f"lag{lag_s:g}"
    start = iso_to_ns("2024-06-01T18:00:00Z")
    simulate_to_recording(root, start_ns=start, end_ns=start + 10 * 3600 * NS_PER_S, seed=11,
                          config=cfg)  # fmt: skip
    return root, cfg


def _train_and_judge(tmp: Path, lag_s: float) -> tuple[tuple[float, float], tuple[float, ...]]:
    root, cfg = _market(tmp, lag_s)
    res = train(root=root, dates="2024-06-01", eval_dates="2024-06-02", config=cfg,
                tc=TrainConfig(envs=16, updates=30, seed=1), ppo_config=PPO,
                run_dir=tmp / f"run-{lag_s:g}")  # fmt: skip
    import polars as pl

    ppo = pl.read_parquet(res.run_dir / "eval" / "ppo-episodes.parquet")
    rnd = pl.read_parquet(res.run_dir / "eval" / "random-episodes.parquet")
    assert ppo.height == 16
    own = bootstrap_mean_ci(ppo["pnl"].to_numpy(), seed=1)
    diff = paired_difference_ci(ppo, rnd, seed=1)
    return own, diff


def test_training_finds_a_planted_edge(tmp_path: Path) -> None:
    (lo, hi), (d, dlo, dhi) = _train_and_judge(tmp_path, 30.0)
    assert dlo > 0, f"PPO - random per window: {d:+.2f} [{dlo:+.2f}, {dhi:+.2f}]"
    assert lo > 0, f"PPO per window: [{lo:+.2f}, {hi:+.2f}]: no edge claimed on an edged market"


def test_training_claims_no_edge_where_there_is_none(tmp_path: Path) -> None:
    (lo, hi), _ = _train_and_judge(tmp_path, 0.0)
    assert lo <= 0 <= hi or hi < 0, f"PPO per window [{lo:+.2f}, {hi:+.2f}] claims an edge"
