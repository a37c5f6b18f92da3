"""A run's report: its tables, its figures, and ``report.md`` tying them together.

:func:`run_tables` computes what a report says about a run: the summary per strategy and
asset, positions by time left in the window at entry, and (when there is something to
compare with) the paired per-window difference against each baseline on the same windows.
For a train run the strategies are its held-out evaluation (the trained policy and every
baseline on the same days); for a backtest or live run, the run itself and any runs given
as ``against``. :func:`write_report` adds a backtest's siblings on its own: the other runs
of the same ``polyrl backtest --strategy all`` (see :func:`~polyrl.analysis.runs.sibling_runs`).
:func:`run_figures` draws the tables, and :func:`write_report` writes both as PNG and
Markdown (what ``polyrl report`` runs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from matplotlib.figure import Figure

from polyrl.analysis import plots
from polyrl.analysis.calibration import calibration_table
from polyrl.analysis.paired import compare
from polyrl.analysis.runs import (
    Run,
    RunError,
    combined_results,
    find_runs,
    load_run,
    sibling_runs,
)
from polyrl.analysis.stats import summary_table, time_left_table
from polyrl.analysis.trades import positions, without_no_outcome
from polyrl.events import ns_to_iso
from polyrl.runlog import TRADES


@dataclass(frozen=True, slots=True, kw_only=True)
class RunTables:
    """What a report says about a run (see the module doc).

    ``reference``: the strategy the report is about; ``results``: ``{strategy: (trades,
    episodes)}`` with ``reference`` first; ``positions``: ``{strategy: positions}``;
    ``summary`` [strategy x (assets, total)]; ``time_left`` [strategy x bucket];
    ``comparison`` [one row per other strategy] (empty when there is none);
    ``calibration`` [strategy x price bin] for the reference (and ``random``'s entries, the
    market's own calibration, when present).
    """

    reference: str
    results: dict[str, tuple[pl.DataFrame, pl.DataFrame]]
    positions: dict[str, pl.DataFrame]
    summary: pl.DataFrame
    time_left: pl.DataFrame
    comparison: pl.DataFrame
    calibration: pl.DataFrame


def results_tables(
    results: Mapping[str, tuple[pl.DataFrame, pl.DataFrame]],
    *,
    assets: Sequence[str],
    capital_per_slot: float,
    reference: str | None = None,
    seed: int = 0,
    block: str = "start",
) -> RunTables:
    """The tables of ``{strategy: (trades, episodes)}`` on the same days, ``reference``
    (default: the first strategy) against the others; every interval resamples clusters of
    windows by ``block`` (``"start"``: one start time, all assets; ``"day"``: one UTC day)."""
    if not results:
        raise ValueError("results is empty: nothing to tabulate")
    ref = reference if reference is not None else next(iter(results))
    if ref not in results:
        raise KeyError(f"reference {ref!r} is not among {', '.join(results)}")
    ordered = {ref: results[ref], **{k: v for k, v in results.items() if k != ref}}
    pos = {name: positions(tr, ep) for name, (tr, ep) in ordered.items()}
    return RunTables(
        reference=ref,
        results=ordered,
        positions=pos,
        summary=summary_table(
            ordered, assets=assets, capital_per_slot=capital_per_slot, seed=seed, block=block
        ),
        time_left=time_left_table({ref: ordered[ref]}, seed=seed, block=block),
        # Paired on windows with an outcome only (a no_outcome window has PnL null).
        comparison=compare(
            {k: without_no_outcome(*v)[:2] for k, v in ordered.items()},
            reference=ref,
            seed=seed,
            block=block,
        ),
        calibration=pl.concat(
            calibration_table(p).select(pl.lit(n).alias("strategy"), pl.all())
            for n, p in _calibration_runs(ref, pos).items()
        ),
    )


def run_tables(
    run: Run, *, against: Iterable[Run] = (), seed: int = 0, block: str = "start"
) -> RunTables:
    """The tables of a report on ``run`` (compared with the runs in ``against``)."""
    results = run.results()
    if not results:  # a train run without held-out evaluation: its training episodes
        results = {"ppo (training)": (pl.DataFrame(schema=TRADES), run.episodes)}
    reference = next(iter(results))
    results = combined_results(against, into=results)
    return results_tables(results, assets=run.assets, capital_per_slot=run.capital_per_slot,
                          reference=reference, seed=seed, block=block)  # fmt: skip


def _calibration_runs(ref: str, pos: Mapping[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    runs = {ref: pos[ref]}
    if "random" in pos and ref != "random":
        runs = {"random (the market)": pos["random"], **runs}
    return runs


def results_figures(tables: RunTables, *, name: str = "") -> dict[str, Figure]:
    """``{file stem: Figure}`` of :func:`results_tables`: equity, PnL by asset, calibration
    (with ``random``'s entries as the market's own, when present), PnL per position and by
    time left for the reference, and the comparison when there is one. ``name`` goes into
    the titles."""
    ref = tables.reference
    res = tables.results
    of = f": {name}" if name else ""
    title = f"{name} ({ref})" if name and name != ref else ref
    figs: dict[str, Figure] = {
        "equity": plots.plot_equity({n: tr for n, (tr, _) in res.items()},
                                    title=f"Equity curve{of}"),
        "pnl_by_asset": plots.plot_pnl_by_asset({n: ep for n, (_, ep) in res.items()},
                                                title=f"PnL by asset{of}"),
        "calibration": plots.plot_calibration(_calibration_runs(ref, tables.positions),
                                              title=f"Entry price vs outcome: {title}"),
        "trade_pnl": plots.plot_trade_pnl({ref: tables.positions[ref]},
                                          title=f"PnL per position: {title}"),
        "time_left": plots.plot_pnl_by_time_left(tables.time_left,
                                                 title=f"PnL by time left at entry: {title}"),
    }  # fmt: skip
    if tables.comparison.height:
        figs["comparison"] = plots.plot_comparison(tables.comparison, reference=ref)
    return figs


def run_figures(run: Run, tables: RunTables) -> dict[str, Figure]:
    """The figures of a report on ``run``: its PPO training curves when it logged PPO
    losses, then :func:`results_figures`."""
    figs: dict[str, Figure] = {}
    if any(c.startswith("losses/") for c in run.metrics.columns):
        figs["training"] = plots.plot_training(run.metrics, title=f"{run.name}: training")
    return {**figs, **results_figures(tables, name=run.name)}


_PCT = {"roi", "win_rate"}
_UNSIGNED = {"fees", "max_drawdown", "profit_factor"}


def _cell(col: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool) or isinstance(v, str):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if col in _PCT:
        return f"{v:+.1%}" if col == "roi" else f"{v:.1%}"
    if isinstance(v, float):
        return f"{v:.3f}" if col in _UNSIGNED else f"{v:+.3f}"
    return str(v)


def markdown_table(df: pl.DataFrame) -> str:
    """A frame as a GitHub Markdown table (floats to 3 decimals, ROI and win rate in %)."""
    if df.is_empty():
        return "(none)"
    head = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = [
        "| " + " | ".join(_cell(c, v) for c, v in zip(df.columns, r, strict=True)) + " |"
        for r in df.iter_rows()
    ]
    return "\n".join([head, rule, *rows])


def data_text(run: Run) -> str:
    """What data made ``run``, in a few words: its summary's ``data`` line (simulated with
    the seed and the simulator settings that differ from the defaults, recorded, imported),
    or ``unknown`` and why. Never guessed."""
    data = run.summary.get("data")
    if isinstance(data, dict) and data.get("text"):
        return str(data["text"])
    if not run.summary:
        return "unknown (no summary.json yet: said when the run finishes)"
    return "unknown (its summary does not say: made before runs recorded their data)"


def _about(run: Run) -> list[str]:
    s, c = run.summary, run.config
    lines = [f"- kind: **{run.kind}**; strategy: **{run.strategy}**",
             f"- data: {data_text(run)}"]  # fmt: skip
    if run.kind == "train":
        lines.append(f"- trained on `{s.get('replay', c.get('replay'))}`: {s.get('updates', '?')} "
                     f"updates, {s.get('steps', '?'):,} steps, feature set "
                     f"`{s.get('feature_set', '?')}`")  # fmt: skip
        ev = s.get("eval", c.get("eval"))
        lines.append(f"- held out: `{ev}`" if ev else "- no held-out evaluation")
    elif run.kind == "backtest":
        lines.append(f"- days: {', '.join(s.get('days', [])) or '?'}; "
                     f"{s.get('ticks', 0):,} ticks over {s.get('events', 0):,} events")  # fmt: skip
    else:
        for k in ("first_tick_ns", "last_tick_ns"):
            if s.get(k) is not None:
                lines.append(f"- {k[:-3].replace('_', ' ')}: {ns_to_iso(int(s[k]))}")
        if not s:
            lines.append("- still running (no summary.json yet): tables as of the last flush")
    broker = c.get("broker", {})
    if broker:
        lines.append(f"- capital ${broker.get('capital', '?')} per market, "
                     f"{broker.get('size_fraction', '?')} of it per trade")  # fmt: skip
    return lines


def _notes(t: RunTables) -> list[str]:
    ep = t.results[t.reference][1]
    out = []
    n_gap = ep.filter(pl.col("gap")).height if "gap" in ep.columns else 0
    by_src = dict(ep.group_by("outcome_source").len().iter_rows()) if ep.height else {}
    if by_src.get("reference"):
        out.append(f"- {by_src['reference']} window(s) had no recorded resolution and were "
                   "settled from the reference feed")  # fmt: skip
    if by_src.get("missing"):
        out.append(f"- {by_src['missing']} window(s) had no outcome: left out of PnL per "
                   "window and its interval")  # fmt: skip
    if n_gap:
        out.append(f"- {n_gap} window(s) overlapped a recording gap")
    return out + window_set_notes(t.results, t.reference)


def window_set_notes(
    results: Mapping[str, tuple[pl.DataFrame, pl.DataFrame]], reference: str
) -> list[str]:
    """One line per strategy whose episodes cover other windows than ``reference``'s: side by
    side, their per-window figures are over different window sets (the paired comparison
    uses only the windows both played)."""
    ref = set(results[reference][1]["condition_id"].to_list())
    out = []
    for name, (_, ep) in results.items():
        got = set(ep["condition_id"].to_list())
        if name != reference and got != ref:
            out.append(f"- different windows: `{name}` was evaluated on {len(got)} window(s), "
                       f"`{reference}` on {len(ref)}, {len(got & ref)} shared; their summary "
                       "rows are not like for like")  # fmt: skip
    return out


_DEFINITIONS = """\
PnL is realized (closes and settlements, fees included), in USDC; ROI is PnL over the capital
at risk (capital per market times markets); a win is a position with PnL > 0; profit factor is
gross wins over gross losses; max drawdown is the largest fall of cumulative realized PnL from
its running peak. PnL per window is over every eligible window (every window played that has
an outcome; one not traded counts 0), PnL per traded window beside it over the windows with a
fill; Sharpe is per eligible window, not annualised. Every 95% interval is a seeded cluster
bootstrap: the windows of one start time (all assets together; or of one UTC day, with
`--block day`) are resampled as one cluster, because windows that open together are
correlated; `clusters` is the number of clusters, and fewer than two give no interval. A
comparison pairs the same windows (by condition id) and resamples the same clusters; its
p-value is two-sided, from the same resamples, and its verdict is Holm-corrected over all
the comparisons of the table (`p_holm` below 0.05 is a difference). Calibration
counts settled positions per bin of entry price; the interval of the share that won is the
Wilson score 95% interval of that binomial share (n = positions in the bin)."""


def load_against(paths: Iterable[Path | str | Run], *, exclude: Run | None = None) -> list[Run]:
    """Runs to compare with: each path a run or a directory of runs (loaded), ``exclude``
    (the run being reported) and runs given twice left out."""
    out: list[Run] = []
    seen = {exclude.path.resolve()} if exclude is not None else set()
    for a in paths:
        found = [a] if isinstance(a, Run) else [load_run(p) for p in find_runs(a) or [Path(a)]]
        for r in found:
            if r.path.resolve() not in seen:
                seen.add(r.path.resolve())
                out.append(r)
    return out


def write_report(
    run: Run | Path | str,
    out: Path | str | None = None,
    *,
    against: Iterable[Run | Path | str] = (),
    siblings: bool = True,
    seed: int = 0,
    block: str = "start",
    progress: Callable[[int, int, str], None] | None = None,
) -> Path:
    """Write the report of ``run`` (a :class:`Run` or its directory) into ``out`` (default
    ``<run>/report``): one PNG per figure of :func:`run_figures` and ``report.md``.
    ``against``: runs, or directories of runs, to compare with on the same windows; with
    ``siblings`` a backtest is also compared with its sibling runs (the other strategies of
    the same ``polyrl backtest --strategy all``, :func:`~polyrl.analysis.runs.sibling_runs`).
    ``block`` clusters the intervals' windows (:func:`results_tables`).
    ``progress(done, total, what)`` is called as it goes. Returns the path of
    ``report.md``; errors (not a run, an unreadable file, an output that cannot be written)
    are :class:`RunError` naming the path."""
    r = run if isinstance(run, Run) else load_run(run)
    found = sibling_runs(r) if siblings else []
    others = load_against([*found, *against], exclude=r)
    out_dir = Path(out) if out is not None else r.path / "report"
    tables = run_tables(r, against=others, seed=seed, block=block)
    figs = run_figures(r, tables)
    total = len(figs) + 1
    names: list[str] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, (stem, fig) in enumerate(figs.items()):
            if progress is not None:
                progress(i, total, f"{stem}.png")
            fig.savefig(out_dir / f"{stem}.png", dpi=100)
            names.append(stem)
        (out_dir / "report.md").write_text(_markdown(r, tables, names, others, len(found)))
    except OSError as e:
        raise RunError(f"cannot write the report to {out_dir}: {e}") from None
    if progress is not None:
        progress(total, total, "report.md")
    return out_dir / "report.md"


_CAPTIONS = {
    "training": "Training curves",
    "equity": "Equity curve and drawdown",
    "pnl_by_asset": "PnL by asset",
    "comparison": "Against each baseline (paired per-window difference)",
    "calibration": "Entry price vs outcome (calibration)",
    "trade_pnl": "PnL per position",
    "time_left": "PnL by time left in the window at entry",
}


def _names(rs: Sequence[Run]) -> str:
    return ", ".join(f"`{o.name}`" + (f" ({o.strategy})" if o.name != o.strategy else "")
                     for o in rs)  # fmt: skip


def _compared(run: Run, others: Sequence[Run], n_siblings: int) -> list[str]:
    out = []
    if n_siblings:
        out.append(f"- compared with its {n_siblings} sibling run(s) in `{run.path.parent.name}/` "
                   "(the same recorded days and config, another strategy): "
                   f"{_names(others[:n_siblings])}")  # fmt: skip
    if others[n_siblings:]:
        out.append(f"- compared with (`--against`): {_names(others[n_siblings:])}")
    # Each compared run's data, so runs on differently made days are never read as alike.
    mine = data_text(run)
    differ = [o for o in others if data_text(o) != mine]
    for o in differ:
        out.append(f"  - data of `{o.name}`: {data_text(o)}")
    if others and not differ:
        out.append(f"  - data of every compared run: the same ({mine})")
    return out


def _calibration_display(cal: pl.DataFrame) -> pl.DataFrame:
    """The non-empty bins of a calibration table, prices and shares written out."""
    rows = [{"strategy": r["strategy"], "bin": r["bin"], "positions": r["positions"],
             "wins": r["wins"], "mean_price": f"{r['mean_price']:.3f}",
             "won": f"{r['win_rate']:.1%}",
             "wilson_95": f"[{r['ci_low']:.1%}, {r['ci_high']:.1%}]"}
            for r in cal.filter(pl.col("positions") > 0).iter_rows(named=True)]  # fmt: skip
    return pl.DataFrame(rows, schema={"strategy": pl.String, "bin": pl.String,
                                      "positions": pl.Int64, "wins": pl.Int64,
                                      "mean_price": pl.String, "won": pl.String,
                                      "wilson_95": pl.String})  # fmt: skip


def _markdown(
    run: Run, t: RunTables, figures: list[str], others: Sequence[Run] = (), n_siblings: int = 0
) -> str:
    ref = t.reference
    parts = [f"# Run report: {run.name}", "", *_about(run), *_compared(run, others, n_siblings),
             ""]  # fmt: skip
    if run.kind == "train" and run.policies:
        what = "the held-out evaluation: the trained policy and every baseline on the same windows"
    elif len(t.results) > 1:
        what = f"`{ref}` and the runs it is compared with, on the same windows"
    else:
        what = f"`{ref}`"
    total = t.summary.filter(pl.col("asset") == "total").drop("asset")
    parts += ["## Summary", "", f"In total, for {what}.", "", markdown_table(total), "",
              "### By asset", "", markdown_table(t.summary.filter(pl.col("asset") != "total")),
              ""]  # fmt: skip
    if t.comparison.height:
        parts += ["## Against each baseline", "",
                  f"Mean PnL per window of `{ref}` minus each strategy's, on the eligible windows "
                  "both played (a window with no trade counts as 0), with the paired "
                  "cluster-bootstrap 95% interval over `clusters` clusters. Verdicts are "
                  f"corrected for multiple comparisons (Holm, over the {t.comparison.height} "
                  "comparison(s) of this table): a difference needs `p_holm` below 0.05, so "
                  "an interval that excludes 0 may still be no clear difference.", "",
                  markdown_table(t.comparison), ""]  # fmt: skip
    parts += ["## By time left in the window at entry", "",
              f"`{ref}`'s positions by the minutes left in the window when they were opened "
              "(`positions` is each bucket's n; its mean PnL has a cluster-bootstrap 95% "
              "interval over `clusters` window start times).",
              "", markdown_table(t.time_left), ""]  # fmt: skip
    parts += ["## Entry price vs outcome", "",
              "Settled positions by the entry price of the token bought: n (`positions`), "
              "how many won, and the share that won with its Wilson 95% interval"
              + (" (`random`'s entries are the market's own calibration)."
                 if t.calibration["strategy"].n_unique() > 1 else "."),
              "", markdown_table(_calibration_display(t.calibration)), ""]  # fmt: skip
    notes = _notes(t)
    if notes:
        parts += ["## Notes", "", *notes, ""]
    parts += ["## Figures", ""]
    for stem in figures:
        parts += [f"### {_CAPTIONS.get(stem, stem)}", "", f"![{stem}]({stem}.png)", ""]
    parts += ["## Definitions", "", _DEFINITIONS, ""]
    return "\n".join(parts)


def is_sweep(path: Path | str) -> bool:
    """A ``polyrl sweep`` folder: it holds ``sweep.toml``."""
    return (Path(path) / "sweep.toml").is_file()


def plot_sweep(table: pl.DataFrame, *, title: str = "Sweep") -> Figure:
    """One row per configuration of a sweep's ``table.parquet``: validation PnL per window
    with its 95% interval (the chosen one highlighted), and the chosen one's test row."""
    rows = list(table.iter_rows(named=True))
    labels, means, lows, highs, colours = [], [], [], [], []
    for r in rows:
        labels.append(f"{'* ' if r['chosen'] else ''}{r['config_id']} (val)")
        means.append(r["val_pnl_per_window"])
        lows.append(r["val_ci_low"])
        highs.append(r["val_ci_high"])
        colours.append("tab:blue" if r["chosen"] else "tab:gray")
    for r in rows:
        if r["chosen"] and r["test_pnl_per_window"] is not None:
            labels.append(f"* {r['config_id']} (test)")
            means.append(r["test_pnl_per_window"])
            lows.append(r["test_ci_low"])
            highs.append(r["test_ci_high"])
            colours.append("tab:orange")
    fig = Figure(figsize=(8, 1.2 + 0.45 * len(labels)))
    ax = fig.add_subplot()
    for i, (m, lo, hi, c) in enumerate(zip(means, lows, highs, colours, strict=True)):
        m = float("nan") if m is None else m
        ok = lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi))
        err = [[m - lo], [hi - m]] if ok else None
        ax.errorbar([m], [i], xerr=err, fmt="o", color=c, capsize=4)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("PnL per window (USDC), 95% cluster-bootstrap interval over seeds x windows")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def write_sweep_report(sweep: Path | str, out: Path | str | None = None) -> Path:
    """A sweep's report: ``sweep.png`` (:func:`plot_sweep`) and ``report.md`` with its table,
    in ``out`` (default ``<sweep>/report``). Returns the path of ``report.md``; a sweep that
    has not finished (no ``table.parquet``) or an output that cannot be written is a
    :class:`RunError` naming the path."""
    import json

    d = Path(sweep)
    try:
        table = pl.read_parquet(d / "table.parquet")
        summary = json.loads((d / "summary.json").read_text())
    except (OSError, ValueError) as e:
        raise RunError(f"{d}: the sweep has no table yet (rerun polyrl sweep to finish it): "
                       f"{e}") from None  # fmt: skip
    out_dir = Path(out) if out is not None else d / "report"
    splits = summary.get("splits", {})
    lines = [f"# Sweep {summary.get('name', d.name)}", "",
             f"Training days {', '.join(splits.get('train', []))}; validation "
             f"{', '.join(splits.get('val', []))}; test {', '.join(splits.get('eval', [])) or '-'}"
             f" (scored only for the configuration chosen on validation: "
             f"{summary.get('chosen')}).", "", "![sweep](sweep.png)", "",
             markdown_table(table), "",
             "95% intervals: cluster bootstrap, a cluster is one seed's windows of one start "
             "time.", ""]  # fmt: skip
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        plot_sweep(table, title=f"Sweep {d.name}").savefig(out_dir / "sweep.png", dpi=100)
        (out_dir / "report.md").write_text("\n".join(lines))
    except OSError as e:
        raise RunError(f"cannot write the report to {out_dir}: {e}") from None
    return out_dir / "report.md"
