"""The dashboard's state model: one definition of fills and PnL, the run's state, positions."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from polyrl.dashboard.state import (
    pnl_steps,
    positions_from_trades,
    rl_metrics,
    run_snapshot,
    totals,
)
from polyrl.events import NS_PER_S
from polyrl.features.sets import feature_set
from polyrl.policies.baselines import make_baseline
from polyrl.replay import load_days, replay_engine
from polyrl.runlog import EPISODES, TRADES, RunLog
from polyrl.sections import Config

T = 1_717_200_000 * NS_PER_S


def _trade(**kw: Any) -> dict[str, Any]:
    row = {"t_ns": T, "slot": 0, "asset": "btc", "condition_id": "c1", "slug": "s", "kind": "open",
           "action": 1, "token": "Up", "side": 1, "shares": 10.0, "avg_price": 0.4,
           "notional": 4.0, "fee": 0.1, "levels": 1, "partial": False, "rejected": 0,
           "realized_pnl": 0.0}  # fmt: skip
    row.update(kw)
    return row


def _frame(rows: list[dict[str, Any]], schema: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def _episode(**kw: Any) -> dict[str, Any]:
    row = {c: None for c in EPISODES}
    row.update(slot=0, asset="btc", condition_id="c0", slug="s0", start_ns=T, end_ns=T,
               outcome="Up", outcome_source="gamma", gap=False, settled_ns=T, orders=1,
               fills=2, pnl=1.5, fees=0.2)  # fmt: skip
    row.update(kw)
    return row


def test_totals_are_the_engines_totals(small_recording: Path, tmp_path: Path) -> None:
    """Fills, realized PnL and fees computed from trades.parquet equal what the Engine
    counted as it traded, overall and per market."""
    cfg = Config()
    log = RunLog(tmp_path / "run", config={}, overwrite=True)
    fset = feature_set(cfg.features.feature_set)
    res = replay_engine(load_days(small_recording, "*", cfg),
                        make_baseline("random", fset, cfg.baselines, seed=2), cfg, log)  # fmt: skip
    log.finish({"kind": "backtest"})
    trades = pl.read_parquet(tmp_path / "run" / "trades.parquet")
    episodes = pl.read_parquet(tmp_path / "run" / "episodes.parquet")
    tot = totals(trades, episodes)
    e = res.engine.totals
    assert tot["source"] == "trades"
    assert tot["fills"] == e.fills > 0
    assert tot["realized"] == pytest.approx(e.realized, abs=1e-9)
    assert tot["fees"] == pytest.approx(e.fees, abs=1e-9)
    assert tot["settled"] == e.settled == episodes.height
    for asset, pnl in e.pnl_by_asset.items():
        assert tot["by_asset"].get(asset, {"realized": 0.0})["realized"] == pytest.approx(pnl)
    assert sum(a["fills"] for a in tot["by_asset"].values()) == tot["fills"]
    steps = pnl_steps(trades, int(trades["t_ns"].min()))
    assert steps[-1][1] == pytest.approx(e.realized)
    assert all(a[0] < b[0] for a, b in zip(steps, steps[1:], strict=False))


def test_a_training_run_counts_its_episodes() -> None:
    eps = _frame([_episode(), _episode(asset="eth", condition_id="c9", fills=3, pnl=-0.5)],
                 EPISODES)  # fmt: skip
    tot = totals(_frame([], TRADES), eps)
    assert tot["source"] == "episodes"
    assert (tot["fills"], tot["realized"], tot["settled"]) == (5, 1.0, 2)
    assert tot["by_asset"]["eth"] == {"realized": -0.5, "fills": 3}


def test_pnl_steps_start_flat_and_sum_rows_of_one_instant() -> None:
    trades = _frame([
        _trade(t_ns=T + 5, kind="close", side=-1, realized_pnl=1.0),
        _trade(t_ns=T + 5, kind="settle", side=-1, realized_pnl=-3.0),
        _trade(t_ns=T + 2),
        _trade(t_ns=T + 9, kind="close", side=-1, realized_pnl=0.5),
    ], TRADES)  # fmt: skip
    assert pnl_steps(trades, T) == [[T, 0.0], [T + 5, -2.0], [T + 9, -1.5]]


def test_positions_left_open_by_the_trade_rows() -> None:
    """Buys add notional + fee to the cost basis, a partial sell removes its share of it;
    a window with an episode row is settled and holds nothing."""
    trades = _frame([
        _trade(), _trade(t_ns=T + 1, kind="close", side=-1, shares=4.0, notional=2.0),
        _trade(condition_id="c0", asset="eth"),  # settled below
        _trade(condition_id="c2", asset="sol", token="Down", shares=5.0, notional=2.5, fee=0.0),
        _trade(condition_id="c3", asset="xrp"),
        _trade(condition_id="c3", asset="xrp", t_ns=T + 1, kind="close", side=-1),
    ], TRADES)  # fmt: skip
    got = positions_from_trades(trades, _frame([_episode(asset="eth")], EPISODES))
    assert [(p["asset"], p["token"]) for p in got] == [("btc", "Up"), ("sol", "Down")]
    assert got[0]["shares"] == pytest.approx(6.0) and got[0]["cost"] == pytest.approx(4.1 * 0.6)
    assert got[1]["shares"] == 5.0 and got[1]["cost"] == 2.5


def test_rl_metrics_leave_the_sessions_fills_and_pnl_to_the_header() -> None:
    """A live session's per-minute rows (fills of that minute, PnL as of then) are not RL
    metrics: the panel shows the latest learning row only."""
    rows = [
        {"t_ns": 1, "charts/fills": 1, "pnl/realized": 9.77, "latency/p50_ms": 1.0},
        {"t_ns": 2, "update": 3, "losses/policy": 0.1, "charts/learning_rate": 3e-4,
         "charts/fills": None},
        {"t_ns": 3, "charts/fills": 1, "pnl/realized": 9.77, "charts/settled": 2},
    ]  # fmt: skip
    got, t = rl_metrics(rows)
    assert got == {"update": 3, "losses/policy": 0.1, "charts/learning_rate": 3e-4}
    assert t == 2
    assert rl_metrics(rows[:1]) == ({}, None)


def _write_run(run: Path, *, summary: bool) -> None:
    RunLog(run, config={}, overwrite=True).flush()
    if summary:
        (run / "summary.json").write_text(json.dumps({"kind": "backtest", "last_tick_ns": T}))


def test_run_states(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _write_run(run, summary=False)
    assert run_snapshot(run)["state"] == "running"
    _write_run(run, summary=True)
    snap = run_snapshot(run)
    assert (snap["state"], snap["finished_ns"], snap["kind"]) == ("finished", T, "backtest")
    # A live run: what its session wrote, until the file stops being rewritten.
    (run / "live.json").write_text(json.dumps({"state": "live", "t_ns": T, "totals": {}}))
    mtime = (run / "live.json").stat().st_mtime_ns
    assert run_snapshot(run, now_ns=mtime + 2 * NS_PER_S)["state"] == "live"
    stale = run_snapshot(run, now_ns=mtime + 60 * NS_PER_S)
    assert (stale["state"], stale["stale_s"]) == ("stale", 60)
    (run / "live.json").write_text(json.dumps({"state": "finished", "finished_ns": T}))
    os.utime(run / "live.json", ns=(mtime, mtime))
    assert run_snapshot(run, now_ns=mtime + 3600 * NS_PER_S)["state"] == "finished"
