"""`polyrl backtest --strategy module:Name` / `file.py:Name`: a user's class through the real
CLI, beside a baseline, and a bad spec refused in one line."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import polars as pl
import pytest

import polyrl.sections  # noqa: F401 - the small_recording fixture builds a Config

from .conftest import REPO, run_cli

pytestmark = pytest.mark.integration

ALWAYS_UP = """
import numpy as np

class AlwaysUp:
    name = "always_up"

    def act(self, obs, tradable):
        return np.where(tradable, 1, 0)
"""


def _readme_example(path: Path) -> Path:
    m = re.search(
        r"<!-- strategy-example -->\n```python\n(.*?)```", (REPO / "README.md").read_text(), re.S
    )
    assert m, "README lost its strategy example"
    path.write_text(m.group(1))
    return path


def test_user_classes_run_beside_a_baseline(
    small_recording: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "user_up.py").write_text(ALWAYS_UP)
    monkeypatch.setenv("PYTHONPATH", str(pkg))  # run_cli hands its environment on
    trend = _readme_example(tmp_path / "trend.py")
    runs = tmp_path / "runs"
    res = run_cli(
        "backtest", "--strategy", f"user_up:AlwaysUp,{trend}:Trend,momentum",
        "--replay", "2024-06-01", "--root", str(small_recording), "--runs", str(runs),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    base = runs / "backtest-AlwaysUp+Trend+momentum"
    assert json.loads((base / "comparison.json").read_text()).keys() == {
        "AlwaysUp",
        "Trend",
        "momentum",
    }
    for row in ("AlwaysUp", "Trend", "momentum"):
        assert re.search(rf"^{row}\s+total\s", res.stdout, re.M), res.stdout
    dec = {n: pl.read_parquet(base / n / "decisions.parquet") for n in ("AlwaysUp", "Trend")}
    # The module's class: BUY on every tradable market, HOLD elsewhere, so it trades.
    up = dec["AlwaysUp"]
    assert up.filter(pl.col("tradable"))["action"].unique().to_list() == [1]
    assert up.filter(~pl.col("tradable"))["action"].unique().to_list() == [0]
    s_up = json.loads((base / "AlwaysUp" / "summary.json").read_text())
    assert s_up["strategy"] == "user_up:AlwaysUp" and s_up["stats"]["total"]["fills"] > 0
    assert s_up["strategy_source"]["file"] == str((pkg / "user_up.py").resolve())
    # The README's class by path: both directions, and not what the baseline decided.
    s_tr = json.loads((base / "Trend" / "summary.json").read_text())
    assert s_tr["strategy"] == f"{trend.resolve()}:Trend"
    assert s_tr["strategy_source"]["sha256"] == hashlib.sha256(trend.read_bytes()).hexdigest()
    assert s_tr["data"] == s_up["data"] and s_tr["data"]["text"]
    assert {1, 2} <= set(dec["Trend"]["action"].unique().to_list())
    mom = pl.read_parquet(base / "momentum" / "decisions.parquet")
    assert not dec["Trend"]["action"].equals(mom["action"])
    assert s_tr["stats"]["total"]["fills"] != s_up["stats"]["total"]["fills"]
    cfg = json.loads((base / "Trend" / "config.json").read_text())
    assert cfg["strategy"] == f"{trend.resolve()}:Trend"


def test_a_bad_spec_is_one_line_and_loads_nothing(tmp_path: Path) -> None:
    no_act = tmp_path / "no_act.py"
    no_act.write_text("class Lazy:\n    name = 'lazy'\n")
    runs = tmp_path / "runs"
    cases = [
        ("no_such_user_module:X", "module 'no_such_user_module' not found"),
        (f"{no_act}:Lazy", "class Lazy has no method `act`"),
        ("not a spec:X", "expected package.module:Name or path/to/file.py:Name"),
    ]
    for spec, needle in cases:
        res = run_cli("backtest", "--strategy", spec, "--replay", "sample", "--runs", str(runs))
        assert res.returncode == 1, (spec, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], (spec, res.stderr)
        assert "Traceback" not in res.stderr
    assert not runs.exists()
