"""``polyrl backtest --workers 2`` builds the day caches in worker processes and gives the
same run as a one-by-one build; ``polyrl train --workers 2`` builds all three splits' days
before training; bad ``--workers``/``--ray`` are one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_backtest_with_two_workers_is_the_same_run(three_day_recording: Path, tmp_path: Path):
    results = {}
    for label, extra in (("seq", ()), ("par", ("--workers", "2"))):
        root = tmp_path / label
        shutil.copytree(three_day_recording, root, ignore=shutil.ignore_patterns(".cache"))
        res = run_cli("backtest", "--strategy", "random", "--replay", "2024-06-*",
                      "--root", str(root), "--runs", str(tmp_path / f"runs-{label}"),
                      *extra)  # fmt: skip
        assert res.returncode == 0, res.stderr
        results[label] = (_summary(tmp_path / f"runs-{label}" / "backtest-random"), res)
    seq, par = results["seq"][0], results["par"][0]
    assert seq["outputs_digest"] == par["outputs_digest"]
    assert seq["events_digest"] == par["events_digest"] and seq["stats"] == par["stats"]
    assert len(par["days"]) == 3
    err = results["par"][1].stderr
    for k in (1, 2, 3):
        assert f"({k}/3 days, 2 workers)" in err, err
    assert "days, " not in results["seq"][1].stderr  # one by one: no per-day lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--workers", "0"), "--workers: 0 is not a whole number >= 1"),
        (("--workers", "2", "--ray", "local"), "--workers and --ray: give one or the other"),
        (("--ray", "nowhere"), "--ray: 'nowhere' is not `local`, `auto`, HOST:PORT"),
    ],
)
def test_bad_parallel_options_are_one_line(args: tuple[str, ...], message: str, tmp_path: Path):
    for cmd in (("backtest", "--strategy", "random"), ("train",)):
        res = run_cli(*cmd, "--replay", "2024-06-01", "--root", str(tmp_path),
                      "--runs", str(tmp_path / "runs"), *args)  # fmt: skip
        assert res.returncode != 0
        assert message in res.stderr, res.stderr
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_train_builds_all_three_splits_with_two_workers(three_day_recording: Path, tmp_path: Path):
    root = tmp_path / "rec"
    shutil.copytree(three_day_recording, root, ignore=shutil.ignore_patterns(".cache"))
    res = run_cli("train", "--replay", "2024-06-01", "--val", "2024-06-02", "--eval",
                  "2024-06-03", "--root", str(root), "--runs", str(tmp_path / "runs"),
                  "--name", "t", "--updates", "1", "--envs", "2",
                  "--set", "ppo.buffer_steps=64", "--set", "ppo.minibatch_size=64",
                  "--set", "ppo.n_epochs=1", "--workers", "2")  # fmt: skip
    assert res.returncode == 0, res.stderr
    # The three splits' days were built together, before training, by the two workers.
    assert [f"({k}/3 days, 2 workers)" in res.stderr for k in (1, 2, 3)] == [True] * 3
    built = sorted(p.name for p in (root / ".cache" / "features").iterdir())
    assert built == ["2024-06-01", "2024-06-02", "2024-06-03"]
    summary = json.loads((tmp_path / "runs" / "t" / "summary.json").read_text())
    assert summary["splits"] == {"train": ["2024-06-01"], "val": ["2024-06-02"],
                                 "eval": ["2024-06-03"]}  # fmt: skip
