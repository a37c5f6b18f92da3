"""``polyrl backtest --workers 2`` builds the day caches in worker processes and gives the
same run as a one-by-one build; bad ``--workers``/``--ray`` are one-line errors."""

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
