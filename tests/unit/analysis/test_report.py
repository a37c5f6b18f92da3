"""Report tables, figures and report.md of small runs."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from polyrl.analysis import load_run, results_tables, run_figures, run_tables, write_report
from polyrl.analysis.bootstrap import holm
from polyrl.analysis.calibration import wilson_interval
from polyrl.analysis.report import markdown_table
from polyrl.analysis.runs import RunError, sibling_runs
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
    # One equity panel per strategy of the evaluation.
    titles = [ax.get_title(loc="left") for ax in figs["equity"].axes]
    assert [x.split(":")[0] for x in titles] == list(t.results)
    # Calibration per price bin: the market's (random's entries) and the policy's, n and wins
    # over every settled position.
    cal = t.calibration
    assert cal["strategy"].unique(maintain_order=True).to_list() == ["random (the market)", "ppo"]
    for name, key in (("random (the market)", "random"), ("ppo", "ppo")):
        settled = t.positions[key].filter(pl.col("won").is_not_null())
        c = cal.filter(pl.col("strategy") == name)
        assert c.height == 10 and c["positions"].sum() == settled.height
        assert c["wins"].sum() == settled["won"].sum()


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
    # Without its siblings (which it finds on its own: see below), a run stands alone.
    steps: list[tuple[int, int, str]] = []
    write_report(small_runs / "backtests" / "random", out, siblings=False,
                 progress=lambda d, n, w: steps.append((d, n, w)))  # fmt: skip
    assert steps[-1] == (6, 6, "report.md") and "## Against each baseline" not in md.read_text()
    assert "sibling" not in md.read_text()


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}\n")[1].split("\n## ")[0]


def test_report_of_a_backtest_compares_it_with_its_siblings(
    small_runs: Path, tmp_path: Path
) -> None:
    """`polyrl backtest --strategy all` writes a run per baseline; the report of one of them
    compares it with the others, found from their own files, in its tables and figures."""
    group = small_runs / "backtests"
    out = tmp_path / "rep"
    text = write_report(group / "momentum", out).read_text()
    others = sorted(b for b in BASELINES if b != "momentum")
    line = next(x for x in text.splitlines() if "sibling run(s)" in x)
    names = ", ".join(f"`{b}`" for b in others)
    assert line == ("- compared with its 4 sibling run(s) in `backtests/` (the same recorded "
                    f"days and config, another strategy): {names}")  # fmt: skip
    # Every sibling has its total row, its rows by asset and its paired comparison.
    total = _section(text, "Summary").split("### By asset")[0]
    by_asset = _section(text, "Summary").split("### By asset")[1]
    cmp = _section(text, "Against each baseline")
    for b in ["momentum", *others]:
        assert f"| {b} | " in total, b
        assert sum(x.startswith(f"| {b} | ") for x in by_asset.splitlines()) == 4, b
    assert "| momentum |" not in cmp and all(f"| {b} |" in cmp for b in others)
    # ... and its figures: a panel of its own in the equity curve, a bar per asset, a row in
    # the comparison.
    run = load_run(group / "momentum")
    t = run_tables(run, against=sibling_runs(run))
    figs = run_figures(run, t)
    eq = [ax.get_title(loc="left").split(":")[0] for ax in figs["equity"].axes]
    assert eq == ["momentum", *others]
    assert len(figs["pnl_by_asset"].axes[0].patches) == 4 * 5
    assert [x.get_text() for x in figs["comparison"].axes[0].get_yticklabels()] == others
    for stem in ("equity", "pnl_by_asset", "comparison", "calibration", "time_left"):
        assert (out / f"{stem}.png").read_bytes()[:4] == b"\x89PNG" and f"]({stem}.png)" in text
    # The siblings given again with --against are not counted twice.
    again = write_report(group / "momentum", tmp_path / "again", against=[group]).read_text()
    assert again == text


def test_report_intervals_name_their_clusters_and_holm(small_runs: Path, tmp_path: Path) -> None:
    """Every interval of the report has its number of clusters beside it; the comparison says
    its verdicts are Holm-corrected; --block day resamples days instead of start times."""
    run = load_run(small_runs / "backtests" / "momentum")
    t = run_tables(run, against=sibling_runs(run))
    ep = run.episodes.filter(pl.col("outcome_source") != "missing")
    total = t.summary.filter((pl.col("strategy") == "momentum") & (pl.col("asset") == "total"))
    assert total["clusters"].item() == ep["start_ns"].n_unique()
    assert total["windows"].item() == ep.height
    assert t.comparison["clusters"].to_list() == [ep["start_ns"].n_unique()] * 4
    assert t.comparison["p_holm"].to_list() == pytest.approx(
        list(holm(t.comparison["p_value"].to_numpy()))
    )
    assert "clusters" in t.time_left.columns
    text = write_report(run, tmp_path / "rep").read_text()
    cmp = _section(text, "Against each baseline")
    assert "corrected for multiple comparisons (Holm, over the 4 comparison(s)" in cmp
    assert "| strategy | windows | clusters | reference_pnl |" in cmp
    assert "p_holm" in cmp and "clusters" in _section(text, "Summary")
    days = run_tables(run, against=sibling_runs(run), block="day")
    day_total = days.summary.filter(pl.col("asset") == "total")["clusters"].to_list()
    n_days = (ep["start_ns"] // 86_400_000_000_000).n_unique()
    assert day_total == [n_days] * 5


def test_report_shows_n_per_bucket_and_price_bin(small_runs: Path, tmp_path: Path) -> None:
    run = load_run(small_runs / "backtests" / "random")
    t = run_tables(run)
    text = write_report(run, tmp_path, siblings=False).read_text()
    # Every bucket's row, its n (positions) beside it, counted by hand from the positions.
    rows = [x for x in _section(text, "By time left in the window at entry").splitlines()
            if x.startswith("| random |")]  # fmt: skip
    left = t.positions["random"]["minutes_left"].drop_nulls().to_numpy()
    edges = [0, 3, 6, 9, 12, float("inf")]
    n = [int(((left >= a) & (left < b)).sum()) for a, b in zip(edges, edges[1:], strict=False)]
    assert sum(n) > 0
    assert [r.split(" | ")[1:3] for r in rows] == [
        [label, str(k)] for label, k in zip(t.time_left["bucket"].to_list(), n, strict=True)
    ]
    ticks = [x.get_text() for x in run_figures(run, t)["time_left"].axes[0].get_xticklabels(
        minor=True)]  # fmt: skip
    assert ticks == [f"n={k}" for k in n]
    # Calibration: a row per non-empty price bin with n, wins and the Wilson interval.
    cal = _section(text, "Entry price vs outcome").splitlines()
    assert "| strategy | bin | positions | wins | mean_price | won | wilson_95 |" in cal
    c = t.calibration.filter(pl.col("positions") > 0).row(0, named=True)
    lo, hi = wilson_interval(c["wins"], c["positions"])
    assert (f"| random | {c['bin']} | {c['positions']} | {c['wins']} | {c['mean_price']:.3f} | "
            f"{c['wins'] / c['positions']:.1%} | [{lo:.1%}, {hi:.1%}] |") in cal  # fmt: skip


def test_write_report_errors_name_the_path(small_runs: Path, tmp_path: Path) -> None:
    with pytest.raises(RunError, match=str(tmp_path / "missing")):
        write_report(tmp_path / "missing")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunError, match=f"cannot write the report to {blocker / 'sub'}"):
        write_report(small_runs / "backtests" / "random", blocker / "sub")


def test_runs_on_different_windows_are_labelled() -> None:
    from polyrl.analysis.report import window_set_notes

    ep = episodes()
    same = {"a": (trades(), ep), "b": (trades(), ep)}
    assert window_set_notes(same, "a") == []
    # `c` played one window fewer (as a run evaluated without a gap window would).
    other = {**same, "c": (trades(), ep.filter(pl.col("condition_id") != "w4"))}
    (line,) = window_set_notes(other, "a")
    assert "`c` was evaluated on 3 window(s), `a` on 4, 3 shared" in line
    t = results_tables(other, assets=("btc", "eth"), capital_per_slot=10.0, reference="a")
    from polyrl.analysis.report import _notes

    assert line in _notes(t)
