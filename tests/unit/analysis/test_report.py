"""Report tables, figures and report.md of small runs."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from polyrl.analysis import load_run, results_tables, run_figures, run_tables, write_report
from polyrl.analysis.report import markdown_table
from polyrl.analysis.runs import RunError
from polyrl.policies.baselines import BASELINES

from .frames import episodes, trades


def test_tables_of_a_train_run(small_runs: Path) -> None:
    run = load_run(small_runs / "train")
    t = run_tables(run)
    assert t.reference == "ppo" and list(t.results)[0] == "ppo"
    assert t.comparison["strategy"].to_list() == sorted(BASELINES)
    assert t.summary.height == len(t.results) * 5  # four assets and the total
    assert t.time_left["strategy"].unique().to_list() == ["ppo"]
    assert set(t.positions) == set(t.results)
    total = t.summary.filter((pl.col("strategy") == "ppo") & (pl.col("asset") == "total"))
    assert total["pnl"][0] == pytest.approx(run.summary["eval_stats"]["ppo"]["total"]["pnl"])
    figs = run_figures(run, t)
    assert list(figs) == ["training", "equity", "pnl_by_asset", "calibration", "trade_pnl",
                          "time_left", "comparison"]  # fmt: skip
    legend = [x.get_text() for x in figs["calibration"].axes[0].get_legend().get_texts()]
    assert legend == ["price = probability", "random (the market)", "ppo"]


def test_results_tables_choose_the_reference() -> None:
    res = {"a": (trades(), episodes()), "b": (trades(), episodes())}
    t = results_tables(res, assets=("btc", "eth"), capital_per_slot=10.0, reference="b")
    assert t.reference == "b" and list(t.results) == ["b", "a"]
    assert t.comparison.row(0, named=True)["mean_diff"] == 0.0
    with pytest.raises(KeyError, match="'c'"):
        results_tables(res, assets=("btc",), capital_per_slot=10.0, reference="c")


def test_markdown_table_formats() -> None:
    df = pl.DataFrame({"strategy": ["a"], "pnl": [1.23456], "roi": [0.5], "win_rate": [0.25],
                       "fills": [1234], "fees": [0.5], "avg_loss": [float("nan")]})  # fmt: skip
    md = markdown_table(df).splitlines()
    assert md[0] == "| strategy | pnl | roi | win_rate | fills | fees | avg_loss |"
    assert md[2] == "| a | +1.235 | +50.0% | 25.0% | 1,234 | 0.500 | – |"
    assert markdown_table(df.clear()) == "(none)"


def test_write_report_of_a_backtest_against_its_siblings(small_runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    md = write_report(small_runs / "backtests" / "momentum", out,
                      against=[small_runs / "backtests"])  # fmt: skip
    assert md == out / "report.md"
    text = md.read_text()
    assert text.startswith("# Run report: momentum")
    for section in (
        "## Summary",
        "### By asset",
        "## Against each baseline",
        "## By time left in the window at entry",
        "## Figures",
        "## Definitions",
    ):
        assert section in text, section
    # The run itself is not compared with itself; its four siblings are.
    cmp = text.split("## Against each baseline")[1].split("##")[0]
    assert "| momentum |" not in cmp and all(f"| {b} |" in cmp for b in BASELINES if
                                              b != "momentum")  # fmt: skip
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["calibration.png", "comparison.png", "equity.png", "pnl_by_asset.png",
                    "time_left.png", "trade_pnl.png"]  # fmt: skip
    for p in pngs:
        assert f"]({p})" in text
        assert (out / p).read_bytes()[:4] == b"\x89PNG"
    steps: list[tuple[int, int, str]] = []
    write_report(small_runs / "backtests" / "random", out,
                 progress=lambda d, n, w: steps.append((d, n, w)))  # fmt: skip
    assert steps[-1] == (6, 6, "report.md") and "## Against each baseline" not in md.read_text()


def test_write_report_errors_name_the_path(small_runs: Path, tmp_path: Path) -> None:
    with pytest.raises(RunError, match=str(tmp_path / "missing")):
        write_report(tmp_path / "missing")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunError, match=f"cannot write the report to {blocker / 'sub'}"):
        write_report(small_runs / "backtests" / "random", blocker / "sub")
