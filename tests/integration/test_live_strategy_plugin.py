"""`polyrl live --strategy file.py:Name` on the loopback venues: the user's class decides,
the run names it, and `polyrl parity` rebuilds it from the run's saved spec."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from polyrl.clock import LiveClock
from polyrl.events import NS_PER_S, iso_to_ns
from polyrl.sections import Config
from polyrl.sim.serve import ServeConfig, ServersThread, SimContent, VenueServers
from polyrl.sim.serve.configfile import serve_toml

from .conftest import REPO, run_cli

pytestmark = pytest.mark.integration

T0 = iso_to_ns("2024-06-01T00:09:00Z")  # five minutes of warm-up, then the 00:15 roll
SPEED = 30.0

ALWAYS_UP = """
import numpy as np

class AlwaysUp:
    name = "always_up"

    def act(self, obs, tradable):
        return np.where(tradable, 1, 0)
"""


@pytest.mark.slow
def test_live_paper_trades_a_user_class_and_parity_rebuilds_it(tmp_path: Path) -> None:
    strat = tmp_path / "up.py"
    strat.write_text(ALWAYS_UP)
    cfg = Config(assets=("btc",))
    clock = LiveClock(speed=SPEED, start_ns=T0)
    content = SimContent(cfg, start_ns=T0, end_ns=T0 + 20 * 60 * NS_PER_S, seed=5)
    runs = tmp_path / "runs"
    with ServersThread(VenueServers(content, clock=clock, config=ServeConfig())) as v:
        sources = dataclasses.replace(v.sources_config(cfg.sources), watchdog_s=6.0)
        text = serve_toml(cfg, sources, speed=SPEED, start_ns=T0, anchor_ns=clock.anchor_real_ns)
        cfg_path = tmp_path / "loop.toml"
        cfg_path.write_text(text + "\n[recording]\nfsync = false\ncheckpoint_s = 0.5\n")
        proc = subprocess.run(
            [sys.executable, "-m", "polyrl", "live", "--strategy", f"{strat}:AlwaysUp",
             "--config", str(cfg_path), "--out", str(tmp_path / "rec"), "--runs", str(runs),
             "--duration", "7m"],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run = runs / "live-AlwaysUp"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["policy"] == "always_up"
    conf = json.loads((run / "config.json").read_text())
    assert conf["strategy"] == f"{strat.resolve()}:AlwaysUp"
    assert conf["strategy_source"]["class"] == "AlwaysUp"
    dec = pl.read_parquet(run / "decisions.parquet")
    tradable = dec.filter(pl.col("tradable"))
    assert tradable.height > 0 and tradable["action"].unique().to_list() == [1]
    assert dec.filter(~pl.col("tradable"))["action"].unique().to_list() == [0]
    par = run_cli("parity", str(run))
    assert par.returncode == 0 and "parity: identical" in par.stdout, par.stderr


def test_live_refuses_a_bad_spec_before_connecting(tmp_path: Path) -> None:
    no_name = tmp_path / "anon.py"
    no_name.write_text("class Anon:\n    def act(self, obs, tradable):\n        return tradable\n")
    for spec, needle in (
        (f"{no_name}:Anon", "class Anon has no attribute `name`"),
        ("no_such_live_module:X", "module 'no_such_live_module' not found"),
    ):
        res = run_cli("live", "--strategy", spec, "--runs", str(tmp_path / "runs"),
                      "--out", str(tmp_path / "rec"), timeout=60)  # fmt: skip
        assert res.returncode == 1, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], res.stderr
    assert not (tmp_path / "rec").exists() and not (tmp_path / "runs").exists()
    help_text = run_cli("live", "--help").stdout
    assert "package.module:Name" in " ".join(help_text.split())
