"""`polyrl report` end to end through the real CLI, on a training run of the sample."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_report_of_a_sample_training_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    res = run_cli("train", "--replay", "sample", "--updates", "2", "--runs", str(runs),
                  "--name", "t", timeout=900)  # fmt: skip
    assert res.returncode == 0, res.stderr
    run = runs / "t"
    res = run_cli("report", str(run))
    assert res.returncode == 0, res.stderr
    md = run / "report" / "report.md"
    assert res.stdout.strip() == str(md)
    text = md.read_text()
    assert text.startswith("# Run report: t\n")
    assert "- kind: **train**; strategy: **ppo**" in text
    assert "trained on `2024-06-01`: 2 updates" in text and "held out: `2024-06-02`" in text
    for name in ("ppo", "momentum", "mean_revert", "fade_spike", "random", "gating"):
        assert f"| {name} |" in text, name
    for png in ("training", "equity", "pnl_by_asset", "calibration", "trade_pnl", "time_left",
                "comparison"):  # fmt: skip
        f = run / "report" / f"{png}.png"
        assert f.read_bytes()[:4] == b"\x89PNG" and f"]({png}.png)" in text, png
    # --out elsewhere, the same content.
    res = run_cli("report", str(run), "--out", str(tmp_path / "elsewhere"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "elsewhere" / "report.md").read_text() == text


def test_report_errors_are_clear(tmp_path: Path) -> None:
    res = run_cli("report", str(tmp_path / "nope"))
    assert res.returncode == 1 and f"{tmp_path / 'nope'} does not exist" in res.stderr
    assert "Traceback" not in res.stderr
    (tmp_path / "empty").mkdir()
    res = run_cli("report", str(tmp_path / "empty"))
    assert res.returncode == 1 and "is not a run directory" in res.stderr
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "episodes.parquet").write_bytes(b"garbage")
    res = run_cli("report", str(run))
    assert res.returncode == 1 and f"unreadable run file {run / 'episodes.parquet'}" in res.stderr
    assert "Traceback" not in res.stderr
    res = run_cli("report", "--help")
    assert res.returncode == 0
    for opt in ("--out", "--against", "--seed"):
        assert opt in res.stdout
