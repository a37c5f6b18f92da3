"""``polyrl train``: PPO on recorded days, faster than real time, with held-out evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from polyrl.cli.apps import app
from polyrl.cli.common import (
    ConfigOpt,
    SetOpt,
    cli_prefix,
    err_console,
    parse_sets,
    progress_bar,
    recording_location,
    recording_root,
    refuse_root_with_sample,
    resolve_config,
    run_taken,
)
from polyrl.cli.parallel import RayOpt, WorkersOpt, day_done_line, parallel_options
from polyrl.config import merge
from polyrl.errors import ConfigError

if TYPE_CHECKING:
    from polyrl.storage import Location


def _command(args: list[str]) -> str:
    import shlex

    return f"{cli_prefix()} {shlex.join(args)}"


@app.command("train")
def train_cmd(
    replay: Annotated[
        str,
        typer.Option(
            "--replay",
            help="Date glob(s) to train on (2024-06-0*), or `sample` (the "
            "embedded sample: train on its first day; --eval defaults to its other days "
            "not given to --val).",
        ),
    ],
    val_dates: Annotated[
        str | None,
        typer.Option(
            "--val",
            help="Date glob(s) for validation: the deterministic policy is scored on them "
            "every train.eval_every updates and at the end, and checkpoints/best is the "
            "update with the best validation PnL. Without --val there is no best "
            "(use checkpoints/last).",
        ),
    ] = None,
    eval_dates: Annotated[
        str | None,
        typer.Option(
            "--eval",
            help="Date glob(s) of test days, evaluated once after training (the "
            "deterministic policy of checkpoints/best, or of last without --val, beside "
            "every baseline, on every window with a tradable tick, flags counted); they "
            "choose nothing. "
            "--replay, --val and --eval must select disjoint days.",
        ),
    ] = None,
    root: Annotated[
        str | None,
        typer.Option(
            "--root",
            help="Recording root (default: [recording] root of the config): a directory or a "
            "URI (s3://bucket/prefix, gs://, file://; see [storage]); not with --replay "
            "sample, which has its own.",
        ),
    ] = None,
    feature_set: Annotated[
        str | None,
        typer.Option(
            "--feature-set",
            help="seed18 (default), full or history (days lacking a stream it needs are refused).",
        ),
    ] = None,
    updates: Annotated[
        int | None, typer.Option("--updates", help="PPO updates to run.", min=1)
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option("--steps", help="Environment steps to run (instead of --updates).", min=1),
    ] = None,
    envs: Annotated[
        int | None, typer.Option("--envs", help="Episodes stepped in lockstep.", min=1)
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Run seed.")] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Checkpoint directory to continue from exactly (runs/<run>/checkpoints/last).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Run name (default: train-<feature set>-s<seed>). A name that already "
            "holds a run is refused (continue a stopped one with --resume).",
        ),
    ] = None,
    runs: Annotated[Path, typer.Option("--runs", help="Where run directories go.")] = Path("runs"),
    sets: SetOpt = None,
    workers: WorkersOpt = 1,
    ray: RayOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Train the PPO agent (MLX) on replayed recordings through the vectorised replay
    environment: the same features, paper execution and settlement as live. Writes
    runs/<name>/ with the resolved config, metrics.parquet (one row per update),
    episodes.parquet, checkpoints (last, best by validation PnL with --val, every
    train.checkpoint_every updates) and summary.json (the days of each split and which
    split chose what); with --eval, prints the test table beside the baselines.
    Training, validation and test days must not overlap (an overlap is refused).
    PPO settings: configs/ppo.toml, or --set ppo.KEY=VALUE.
    Ctrl-C stops the run and prints the command that resumes it exactly from its last
    finished update; a name that holds a run (finished or stopped) is refused, never
    overwritten. Ends by printing the commands that report on the run and paper-trade its
    checkpoint."""
    from polyrl.analysis.stats import format_table
    from polyrl.features.cache import recording_days
    from polyrl.replay import check_streams
    from polyrl.rl.train import resolve_splits, train

    if updates is not None and steps is not None:
        raise ConfigError("--updates and --steps: give one or the other")
    workers, ray = parallel_options(workers, ray)
    refuse_root_with_sample(replay, root)
    # The options that define the run, to print the exact command that resumes it.
    same: list[str] = ["train", "--replay", replay]
    for opt, value in (("--val", val_dates), ("--eval", eval_dates), ("--root", root),
                       ("--feature-set", feature_set),
                       ("--updates", updates), ("--steps", steps), ("--envs", envs),
                       ("--seed", seed), ("--config", config)):  # fmt: skip
        if value is not None:
            same += [opt, str(value)]
    for item in sets or []:
        same += ["--set", item]
    overrides = parse_sets(sets)
    if feature_set is not None:
        overrides = merge(overrides, {"features": {"feature_set": feature_set}})
    train_over = {
        k: v for k, v in (("updates", updates), ("envs", envs), ("seed", seed)) if v is not None
    }
    if train_over:
        overrides = merge(overrides, {"train": train_over})
    cfg = resolve_config(config, overrides)
    tc = cfg.train
    if replay == "sample":
        rec: Path | Location = recording_root("sample", cfg)
        days = recording_days(rec, "*")
        dates = days[0]
        if eval_dates is None:
            taken = set(recording_days(rec, val_dates.split(","))) if val_dates else set()
            rest = [d for d in days[1:] if d not in taken]
            eval_dates = ",".join(rest) or None
    else:
        rec = recording_location(root if root is not None else Path(cfg.recording.root), cfg)
        dates = replay
    run_dir = (
        resume.parent.parent
        if resume is not None
        else runs / (name or f"train-{cfg.features.feature_set}-s{tc.seed}")
    )
    if resume is None and run_taken(run_dir):
        last = run_dir / "checkpoints" / "last"
        if (run_dir / "summary.json").exists():
            raise ConfigError(
                f"run directory {run_dir} already holds a run; use another --name or --resume"
            )
        raise ConfigError(
            f"run directory {run_dir} holds an unfinished run; continue it with --resume {last} "
            "or use another --name"
        )

    # Overlapping splits are refused here, before any cache is built.
    splits = resolve_splits(rec, dates, val_dates, eval_dates)
    n_days = sum(len(v) for v in splits.values())
    # Days lacking a stream the feature set needs: refused for every split before any build.
    check_streams(rec, [d for v in splits.values() for d in v], cfg)
    with progress_bar("features (cache)", total=None) as cache_advance:
        seen: dict[str, int] = {}

        def cache_prog(day: str, h: int, n: int) -> None:
            seen[day] = h
            cache_advance(sum(seen.values()), f"{day} {h}/{n} h of {n_days} day(s)")

        with progress_bar("training", total=tc.updates, unit="updates") as advance:

            def prog(row: dict) -> None:
                advance(
                    row["update"],
                    f"{row['charts/sps']:,.0f} steps/s  "
                    f"pnl/ep {row['pnl/per_episode']:+.3f}  "
                    f"entropy {row.get('losses/entropy', float('nan')):.3f}",
                )

            try:
                result = train(
                    root=rec,
                    dates=dates,
                    eval_dates=eval_dates,
                    val_dates=val_dates,
                    config=cfg,
                    tc=tc,
                    ppo_config=cfg.ppo,
                    run_dir=run_dir,
                    resume=resume,
                    total_steps=steps,
                    progress=prog,
                    cache_progress=cache_prog,
                    workers=workers,
                    ray_address=ray,
                    days_progress=day_done_line(workers, ray),
                )
            except KeyboardInterrupt:
                _interrupted(run_dir, same)
                raise
    # Rates over what ran in this process (a resumed run's earlier updates took no time here).
    secs = max(result.seconds, 1e-9)
    done = f"{result.updates_run} updates" + (
        f" (to update {result.updates})" if result.updates_run != result.updates else ""
    )
    err_console.print(
        f"{done}, {result.steps_run:,} steps in {result.seconds:.1f} s "
        f"({result.steps_run / secs:,.0f} steps/s; "
        f"{result.steps_run * cfg.engine.tick_ms / 1000 / secs:,.0f}x real "
        f"time per market); run in {run_dir}"
    )
    typer.echo(f"data: {result.summary['data']['text']}")
    if result.eval_table is not None:
        typer.echo(f"held-out evaluation ({','.join(result.summary['splits']['eval'])}):")
        typer.echo(format_table(result.eval_table))
    s = result.summary
    if s["best_chosen_on"] == "val":
        typer.echo(f"checkpoints/best: update {s['best_update']}, chosen by validation PnL "
                   f"({','.join(s['splits']['val'])}); the test days chose nothing")  # fmt: skip
    else:
        typer.echo("no validation days (--val): no checkpoints/best; the policy is "
                   "checkpoints/last")  # fmt: skip
    ckpt = run_dir / "checkpoints" / ("best" if (run_dir / "checkpoints" / "best").exists()
                                      else "last")  # fmt: skip
    typer.echo("next:")
    typer.echo(f"  {_command(['report', str(run_dir)])}")
    typer.echo(f"  {_command(['live', '--load', str(ckpt)])}")


def _interrupted(run_dir: Path, same: list[str]) -> None:
    """On Ctrl-C: the one line that continues the run exactly (or says it must start over)."""
    last = run_dir / "checkpoints" / "last"
    if (last / "meta.json").exists():
        err_console.print(f"interrupted; resume with: {_command([*same, '--resume', str(last)])}",
                          markup=False, highlight=False)  # fmt: skip
    else:
        err_console.print(
            f"interrupted before the first update finished; {run_dir} has nothing to resume",
            markup=False,
            highlight=False,
        )
