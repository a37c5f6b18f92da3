"""Small real runs for the analysis tests, made once per session on the small recording."""

from __future__ import annotations

from pathlib import Path

import pytest

from polyrl.cli import run as polyrl


@pytest.fixture(scope="session")
def small_runs(three_day_recording: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<dir>/train`` (2 PPO updates on the first day of the three-day recording, validated on
    its third, evaluated with every baseline on its second: the splits must not overlap) and
    ``<dir>/backtests/<baseline>`` (every baseline through the Engine on that second day)."""
    runs = tmp_path_factory.mktemp("analysis-runs")
    day = "2024-06-02"
    code = polyrl(["train", "--replay", "2024-06-01", "--val", "2024-06-03", "--eval", day,
                   "--root", str(three_day_recording),
                   "--updates", "2", "--envs", "4", "--set", "ppo.buffer_steps=128",
                   "--set", "ppo.minibatch_size=256", "--set", "ppo.n_epochs=2",
                   "--runs", str(runs), "--name", "train"])  # fmt: skip
    assert code == 0
    code = polyrl(["backtest", "--strategy", "all", "--replay", day,
                   "--root", str(three_day_recording),
                   "--runs", str(runs), "--name", "backtests"])  # fmt: skip
    assert code == 0
    return runs
