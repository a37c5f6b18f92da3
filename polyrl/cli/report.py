"""``polyrl report``: a run's figures as PNG and its tables in ``report.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from polyrl.cli.apps import app
from polyrl.cli.common import BlockOpt, err_console, progress_bar


@app.command("report")
def report_cmd(
    run: Annotated[
        Path,
        typer.Argument(
            help="Run directory (runs/<name>) of a training run, a backtest or a live session, "
            "or a polyrl sweep folder (its table of configurations as sweep.png).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Directory to write into (default: RUN/report)."),
    ] = None,
    against: Annotated[
        list[Path] | None,
        typer.Option(
            "--against",
            help="A run, or a directory of runs (polyrl backtest --strategy all writes one), "
            "to compare with on the same windows (repeatable). A training run is compared "
            "with the baselines of its held-out evaluation without it.",
        ),
    ] = None,
    siblings: Annotated[
        bool,
        typer.Option(
            "--siblings/--no-siblings",
            help="Compare a backtest with its sibling runs: the backtests in the same directory "
            "over the same recorded days (by digest) with the same config but another strategy, "
            "as polyrl backtest --strategy all writes them.",
        ),
    ] = True,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap intervals.")] = 0,
    block: BlockOpt = "start",
) -> None:
    """Write a run's report: report.md with PnL, ROI, win rate, average win and loss, profit
    factor, fees, max drawdown, Sharpe and PnL per window (every eligible window, untraded
    ones as 0; per traded window beside it) with cluster-bootstrap 95% intervals and their
    number of clusters (per asset and in total), positions by time left in the window at
    entry, and the paired per-window difference against each other strategy on the same
    windows and clusters, with Holm-corrected verdicts (a backtest's sibling runs, a training
    run's held-out baselines, any --against run), entry price vs
    outcome per price bin with n and a Wilson 95% interval; beside it the figures as PNG:
    equity curve and drawdown (a panel per strategy), PnL by asset, entry price vs outcome,
    PnL per position, PnL by time left, the comparison, and for a training run its PPO
    curves. Prints on stderr (stdout is the path of report.md), for the run and each run it
    is compared with, a line naming the data that made it (simulated with its seed and
    non-default simulator settings, recorded, imported, or unknown), also in report.md."""
    from polyrl.analysis.bootstrap import BLOCKS
    from polyrl.analysis.report import data_text, load_against, write_report
    from polyrl.analysis.runs import load_run, sibling_runs
    from polyrl.errors import ConfigError

    if block not in BLOCKS:
        raise ConfigError(f"--block: {block!r} is not one of {', '.join(BLOCKS)}")
    from polyrl.analysis.report import is_sweep, write_sweep_report

    if is_sweep(run):  # a polyrl sweep folder: its table of configurations
        path = write_sweep_report(run, out)
        err_console.print(f"wrote {path.parent}")
        typer.echo(str(path))
        return

    r = load_run(run)  # bad input fails here, before any output
    others = load_against(against or (), exclude=r)
    with progress_bar("report", total=None) as advance:
        path = write_report(
            r, out, against=others, siblings=siblings, seed=seed, block=block,
            progress=lambda done, total, what: advance(done, what),
        )  # fmt: skip
    err_console.print(f"wrote {path.parent}")
    shown = load_against([*(sibling_runs(r) if siblings else []), *others])
    for x in [r, *(o for o in shown if o.path.resolve() != r.path.resolve())]:
        err_console.print(f"data of {x.name}: {data_text(x)}", markup=False, highlight=False)
    typer.echo(str(path))
