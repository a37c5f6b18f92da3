"""`polyrl train` end to end through the real CLI: the README's main job on the sample."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from .conftest import run_cli

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_train_on_the_sample_then_resume_and_backtest_the_checkpoint(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    res = run_cli("train", "--replay", "sample", "--updates", "3", "--runs", str(runs),
                  "--name", "t", timeout=900)  # fmt: skip
    assert res.returncode == 0, res.stderr
    run = runs / "t"
    # The held-out day, side by side with every baseline.
    for name in ("ppo", "momentum", "mean_revert", "fade_spike", "random", "gating"):
        assert f"\n{name:<12} total" in res.stdout, name
    assert "held-out evaluation (2024-06-02)" in res.stdout
    m = pl.read_parquet(run / "metrics.parquet")
    assert m["update"].to_list() == [1, 2, 3]
    for col in ("losses/policy", "losses/value", "losses/entropy", "losses/approx_kl",
                "losses/clip_frac", "losses/explained_variance", "charts/learning_rate",
                "charts/episodes", "charts/fills", "charts/win_rate", "pnl/realized"):  # fmt: skip
        assert col in m.columns, col
    assert "charts/sps" in pl.read_parquet(run / "timing.parquet").columns
    summary = json.loads((run / "summary.json").read_text())
    assert summary["eval_stats"]["ppo"]["total"]["windows"] > 0
    for ck in ("last", "best"):
        assert (run / "checkpoints" / ck / "weights.safetensors").exists()
    # Resume continues the same run to more updates.
    res = run_cli("train", "--replay", "sample", "--updates", "4", "--resume",
                  str(run / "checkpoints" / "last"), timeout=900)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert pl.read_parquet(run / "metrics.parquet")["update"].to_list() == [1, 2, 3, 4]


def test_train_errors_are_clear(tmp_path: Path) -> None:
    res = run_cli("train", "--replay", "sample", "--updates", "2", "--steps", "100")
    assert res.returncode == 1 and "--updates and --steps" in res.stderr
    res = run_cli("train", "--replay", "1999-*", "--root", str(tmp_path))
    assert res.returncode == 1 and "1999-*" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("train", "--replay", "sample", "--set", "ppo.lr_actr=0.1")
    assert res.returncode == 1 and "ppo.lr_actr" in res.stderr and "Traceback" not in res.stderr
    bad = tmp_path / "ckpt"
    bad.mkdir()
    res = run_cli("train", "--replay", "sample", "--resume", str(bad))
    assert res.returncode == 1 and str(bad) in res.stderr and "Traceback" not in res.stderr
