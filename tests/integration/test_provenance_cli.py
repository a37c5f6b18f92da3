"""Every run says what data made it: `polyrl simulate` -> `backtest`, `train` -> `report`
through the real CLI, and a recording without provenance is unknown."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from polyrl.sim.config import SimConfig

from .conftest import run_cli

pytestmark = pytest.mark.integration

# Whatever the simulator's defaults become, this differs from them.
LAG = SimConfig().book_lag_s + 1.5
SEED = 31


def _summary(run: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((run / "summary.json").read_text())


def test_runs_on_simulated_data_name_the_settings_in_summary_and_report(tmp_path: Path) -> None:
    cfg = tmp_path / "lag.toml"
    cfg.write_text(f"[sim]\nbook_lag_s = {LAG}\n")
    rec = tmp_path / "rec"
    res = run_cli("simulate", "--out", str(rec), "--start", "2024-06-01T23:50", "--hours",
                  "0.3", "--seed", str(SEED), "--assets", "btc", "--config", str(cfg))  # fmt: skip
    assert res.returncode == 0, res.stderr
    want = f"simulated, seed {SEED}, book_lag_s={LAG}"
    res = run_cli("inspect", str(rec))
    assert res.returncode == 0, res.stderr
    assert f"  2024-06-01  {want}\n  2024-06-02  {want}" in res.stdout
    runs = tmp_path / "runs"
    common = ("--root", str(rec), "--runs", str(runs))

    res = run_cli("backtest", "--strategy", "random", "--replay", "2024-06-*", "--name", "b",
                  *common)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"data: {want}" in res.stdout
    data = _summary(runs / "b")["data"]
    assert data["text"] == want and data["kinds"] == ["simulated"]
    assert sorted(data["days"]) == ["2024-06-01", "2024-06-02"]
    assert data["days"]["2024-06-02"] == {
        "kind": "simulated", "text": want, "sources": [0], "seed": SEED,
        "changed": {"book_lag_s": LAG},
    }  # fmt: skip
    (full,) = data["sources"]  # the full settings, once
    assert full["sim"] == {**json.loads(json.dumps(_defaults())), "book_lag_s": LAG}

    res = run_cli("train", "--replay", "2024-06-01", "--eval", "2024-06-02", "--updates", "1",
                  "--name", "t", *common)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"data: {want}" in res.stdout
    assert _summary(runs / "t")["data"]["text"] == want

    # A recording that says nothing about what made it: unknown, never guessed.
    old = tmp_path / "old"
    shutil.copytree(rec, old, ignore=shutil.ignore_patterns(".cache", "provenance"))
    res = run_cli("backtest", "--strategy", "random", "--replay", "2024-06-*", "--root",
                  str(old), "--runs", str(runs), "--name", "u")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert _summary(runs / "u")["data"]["kinds"] == ["unknown"]
    assert "data: unknown (no provenance file" in res.stdout

    # The report says it for the run and for each run it is compared with.
    res = run_cli("report", str(runs / "b"), "--against", str(runs / "u"))
    assert res.returncode == 0, res.stderr
    md = runs / "b" / "report" / "report.md"
    assert res.stdout.strip() == str(md)
    assert f"data of b: {want}" in res.stderr
    assert "data of u: unknown (no provenance file" in res.stderr
    text = md.read_text()
    assert f"- data: {want}\n" in text
    assert "  - data of `u`: unknown (no provenance file" in text


def _defaults() -> dict:  # type: ignore[type-arg]
    from polyrl.config import to_dict

    return to_dict(SimConfig())
