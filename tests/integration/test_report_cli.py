"""`polyrl report` end to end through the real CLI, on a training run of the sample and on
the runs of `polyrl backtest --strategy all`."""

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
    # The embedded sample is simulated: the report names its seed and settings.
    assert "- data: simulated, seed 20240601, " in text
    assert "data of t: simulated, seed 20240601, " in res.stderr
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


@pytest.mark.slow
def test_report_of_a_backtest_of_every_strategy(sim_hour: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    res = run_cli("backtest", "--strategy", "all", "--replay", "*", "--root", str(sim_hour),
                  "--runs", str(runs), "--name", "every")  # fmt: skip
    assert res.returncode == 0, res.stderr
    run = runs / "every" / "fade_spike"
    res = run_cli("report", str(run))
    assert res.returncode == 0, res.stderr
    text = (run / "report" / "report.md").read_text()
    others = ["gating", "mean_revert", "momentum", "random"]
    names = ", ".join(f"`{b}`" for b in others)
    assert ("- compared with its 4 sibling run(s) in `every/` (the same recorded days and "
            f"config, another strategy): {names}") in text  # fmt: skip
    summary = text.split("## Summary")[1].split("### By asset")[0]
    cmp = text.split("## Against each baseline")[1].split("\n## ")[0]
    for b in others:
        assert f"| {b} | " in summary and f"| {b} | " in cmp, b
    assert (run / "report" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    # --no-siblings: the run alone.
    res = run_cli("report", str(run), "--no-siblings", "--out", str(tmp_path / "alone"))
    assert res.returncode == 0, res.stderr
    alone = (tmp_path / "alone" / "report.md").read_text()
    assert "sibling" not in alone and "## Against each baseline" not in alone
    assert not (tmp_path / "alone" / "comparison.png").exists()
    assert all(f"| {b} | " not in alone for b in others)


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
    for opt in ("--out", "--against", "--siblings", "--no-siblings", "--seed", "--block"):
        assert opt in res.stdout
