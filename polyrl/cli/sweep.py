"""``polyrl sweep``: PPO settings, feature sets, envs and seeds searched on Ray Tune."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from polyrl.cli.apps import app
from polyrl.cli.common import err_console, recording_root, resolve_config


@app.command("sweep")
def sweep_cmd(
    spec_path: Annotated[
        Path,
        typer.Argument(
            help="The sweep spec (TOML; see configs/sweep-example.toml).",
            metavar="SPEC.toml",
            show_default=False,
            exists=True,
            dir_okay=False,
        ),
    ],
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Address of a running Ray cluster (ray://HOST:10001 or "
            "HOST:6379; every node needs polyrl installed and the recording at the "
            "same path). Default: a local Ray on this machine's CPUs.",
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            min=1,
            help="Random draws of the space per grid point "
            "(overrides [space] num_samples); each runs once per seed.",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Sweep name: its folder is RUNS/NAME (default: the spec's "
            "name, else its file name). Rerunning the same command continues it.",
        ),
    ] = None,
    runs: Annotated[Path, typer.Option("--runs", help="Where run directories go.")] = Path("runs"),
    cpus: Annotated[
        int | None,
        typer.Option("--cpus", min=1, help="CPUs of the local Ray (default: all); not with --ray."),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Build the missing day caches with N local processes before the trials start "
            "(1: one by one). With --ray they are built as Ray tasks on that cluster instead. "
            "The cache files are byte for byte those of a one-by-one build.",
        ),
    ] = 1,
) -> None:
    """Train every trial of a sweep spec (a grid and random draws over ppo.*,
    features.feature_set and train.envs, times seeds) as Ray Tune trials, one CPU each, with
    optional ASHA early stopping on validation PnL. The [data] splits are checked disjoint as in
    polyrl train; day caches are built once before any trial (--workers N processes, or Ray
    tasks on the --ray cluster). Each trial is a normal train run
    folder in RUNS/NAME/trials/; Ray's own state goes to RUNS/NAME/ray/. Interrupted, the same
    command continues: finished trials are skipped, unfinished ones continue from their last
    checkpoint. Prints (and writes to table.parquet and summary.json) one row per
    configuration: validation PnL per window with its cluster-bootstrap 95% interval over seeds
    x windows; only the configuration chosen on validation is scored on the test days.
    polyrl report RUNS/NAME draws it."""
    from polyrl.errors import ConfigError
    from polyrl.features.cache import recording_days
    from polyrl.sweep.run import run_sweep
    from polyrl.sweep.spec import load_spec

    if cpus is not None and ray_address is not None:
        raise ConfigError("--cpus: only for a local Ray, not with --ray")
    if workers < 1:
        raise ConfigError(f"--workers: {workers} is not a number of processes (1 or more)")
    if workers != 1 and ray_address is not None:
        raise ConfigError("--workers: not with --ray (the caches are built as Ray tasks there)")
    spec = load_spec(spec_path, num_samples=trials)
    base = resolve_config(spec.config_path)
    if spec.replay == "sample":
        if spec.root is not None:
            raise ConfigError(f'{spec_path}: data.root: not used with data.replay = "sample"')
        rec = recording_root("sample", base)
        dates = recording_days(rec, "*")[0]
    else:
        rec = recording_root(Path(spec.root) if spec.root else Path(base.recording.root), base)
        dates = spec.replay
    sweep_dir = runs / (name or spec.name)

    def say(line: str) -> None:
        err_console.print(line, markup=False, highlight=False)

    try:
        res = run_sweep(spec, root=rec, dates=dates, sweep_dir=sweep_dir, address=ray_address,
                        cpus=cpus, workers=workers, say=say)  # fmt: skip
    except KeyboardInterrupt:
        say(f"interrupted; the same command continues the sweep in {sweep_dir}")
        raise
    say(f"{res.ran} trial(s) run, {res.skipped} already done; sweep in {sweep_dir}")
    typer.echo(res.summary["table_text"])
    typer.echo(f"next:\n  polyrl report {sweep_dir}")
