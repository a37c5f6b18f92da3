"""Loading runs of every kind, stacking several, and clear errors naming the path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from polyrl.analysis import RunError, find_runs, load_run, load_runs
from polyrl.analysis.runs import sibling_runs
from polyrl.policies.baselines import BASELINES
from polyrl.runlog import DECISIONS, EPISODES, TRADES, RunLog


def test_a_backtest_run(small_runs: Path) -> None:
    r = load_run(small_runs / "backtests" / "momentum")
    assert (r.kind, r.strategy, r.name) == ("backtest", "momentum", "momentum")
    assert dict(r.trades.schema) == TRADES and dict(r.episodes.schema) == EPISODES
    assert dict(r.decisions.schema) == DECISIONS and r.decisions.height > 0
    assert r.metrics.is_empty() and r.eval_episodes.is_empty() and r.policies == []
    assert r.summary["kind"] == "backtest" and r.config["strategy"] == "momentum"
    assert r.assets == ("btc", "eth", "sol", "xrp") and r.capital_per_slot == 10.0
    res = r.results()
    assert list(res) == ["momentum"]
    assert res["momentum"][0].equals(r.trades) and res["momentum"][1].equals(r.episodes)


def test_a_train_run_and_its_held_out_evaluation(small_runs: Path) -> None:
    r = load_run(small_runs / "train")
    assert (r.kind, r.strategy) == ("train", "ppo")
    assert r.metrics["update"].to_list() == [1, 2]
    assert {"losses/policy", "losses/entropy", "pnl/realized"} <= set(r.metrics.columns)
    assert "charts/sps" in r.timing.columns
    assert r.trades.is_empty() and dict(r.trades.schema) == TRADES  # training writes none
    assert r.policies == ["ppo", *sorted(BASELINES)]
    assert r.eval_trades.columns[-1] == "policy" and r.eval_episodes.height > 0
    res = r.results()
    assert list(res) == r.policies
    tr, ep = res["random"]
    assert "policy" not in tr.columns and tr.height > 0
    assert ep.height == r.eval_episodes.filter(pl.col("policy") == "random").height


def test_load_runs_stacks_with_a_run_column(small_runs: Path) -> None:
    rs = load_runs(small_runs / "backtests")  # a directory of runs
    assert list(rs.runs) == sorted(BASELINES)
    assert rs.trades.columns[0] == "run" and rs.episodes.columns[0] == "run"
    per_run = dict(rs.episodes.group_by("run").len().iter_rows())
    assert per_run == {n: rs[n].episodes.height for n in rs.runs}
    assert list(rs.results()) == sorted(BASELINES)
    # Runs of different kinds stack too; columns one lacks are null in its rows.
    both = load_runs([small_runs / "train", small_runs / "backtests" / "random"])
    assert list(both.runs) == ["train", "random"]
    assert both.metrics["run"].unique().to_list() == ["train"]
    assert set(both.eval_episodes["run"].unique()) == {"train"}
    # The train run brings its held-out "random" first; the backtest's is named by its run.
    assert "ppo" in both.results() and "random/random" in both.results()


def test_runs_with_the_same_name_are_told_apart(small_runs: Path, tmp_path: Path) -> None:
    for d in ("a", "b"):
        shutil.copytree(small_runs / "backtests" / "random", tmp_path / d / "random")
    rs = load_runs([tmp_path / "a" / "random", tmp_path / "b" / "random"])
    assert list(rs.runs) == ["a/random", "b/random"]
    assert set(rs.trades["run"].unique()) == {"a/random", "b/random"}


def test_a_live_run_in_progress(tmp_path: Path) -> None:
    # What a live session has written before its first stop: no summary yet.
    log = RunLog(tmp_path / "live", config={"strategy": "momentum", "broker": {"capital": 5.0}})
    log.metric({"t_ns": 1, "ticks": 120, "latency/p50_ms": 0.4, "pnl/realized": 0.0})
    log.flush()
    r = load_run(tmp_path / "live")
    assert (r.kind, r.strategy, r.capital_per_slot) == ("live", "momentum", 5.0)
    assert r.summary == {} and r.metrics["ticks"].to_list() == [120]
    assert r.trades.is_empty() and list(r.results()) == ["momentum"]


def test_errors_name_the_path(small_runs: Path, tmp_path: Path) -> None:
    with pytest.raises(RunError, match=f"{tmp_path / 'nope'} does not exist"):
        load_run(tmp_path / "nope")
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(RunError, match="is a file"):
        load_run(f)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match=f"{tmp_path / 'empty'} is not a run directory"):
        load_run(tmp_path / "empty")
    with pytest.raises(RunError, match="holds several runs .*momentum.*random"):
        load_run(small_runs / "backtests")
    bad = tmp_path / "bad"
    shutil.copytree(small_runs / "backtests" / "random", bad)
    (bad / "trades.parquet").write_bytes(b"not parquet")
    with pytest.raises(RunError, match=f"unreadable run file {bad / 'trades.parquet'}"):
        load_run(bad)
    (bad / "trades.parquet").unlink()
    (bad / "summary.json").write_text(json.dumps([1, 2]))
    with pytest.raises(RunError, match="summary.json does not hold a JSON object"):
        load_run(bad)
    with pytest.raises(RunError, match="no run directory"):
        load_runs(tmp_path / "empty")
    assert find_runs(tmp_path / "nope") == []


def _edit_json(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_sibling_runs_are_told_from_config_and_summary(small_runs: Path, tmp_path: Path) -> None:
    """Siblings are the backtests beside a run over the same recorded days with the same config
    but another strategy, whatever the directories are called."""
    group = tmp_path / "any-name"
    shutil.copytree(small_runs / "backtests", group)
    # Names say nothing: the run of `random` is renamed, and one looks like a sibling by name.
    (group / "random").rename(group / "r1")
    shutil.copytree(group / "gating", group / "momentum-copy")  # a run of gating
    run = load_run(group / "momentum")
    got = {r.name: r.strategy for r in sibling_runs(run)}
    assert got == {"fade_spike": "fade_spike", "gating": "gating", "mean_revert": "mean_revert",
                   "momentum-copy": "gating", "r1": "random"}  # fmt: skip
    # Another config, other recorded data, another day list, an unfinished run (no summary),
    # a train run, a neighbour whose JSON cannot be read, and a run of the same strategy are not.
    _edit_json(group / "gating" / "config.json", lambda c: c["broker"].update(capital=20.0))
    _edit_json(group / "fade_spike" / "summary.json",
               lambda s: s["recording_digests"].update({"2024-06-02": "0" * 32}))  # fmt: skip
    _edit_json(group / "mean_revert" / "summary.json", lambda s: s.update(days=["2024-06-03"]))
    (group / "momentum-copy" / "summary.json").unlink()
    shutil.copytree(small_runs / "train", group / "train")
    (group / "r1" / "config.json").write_text("{not json")
    shutil.copytree(group / "momentum", group / "momentum-again")
    assert sibling_runs(run) == []
    # A run that is not a backtest has none; nor has a backtest alone in its directory.
    assert sibling_runs(load_run(group / "train")) == []
    alone = tmp_path / "alone"
    shutil.copytree(small_runs / "backtests" / "momentum", alone / "momentum")
    assert sibling_runs(load_run(alone / "momentum")) == []
