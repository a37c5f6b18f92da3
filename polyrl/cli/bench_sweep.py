"""``polyrl bench sweep``: a sweep on local Ray against the same runs one after another."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from polyrl.cli.apps import bench_app
from polyrl.cli.common import err_console, recording_root, resolve_config


@bench_app.command("sweep")
def bench_sweep_cmd(
    updates: Annotated[int, typer.Option("--updates", min=1, help="PPO updates per trial.")] = 3,
    envs: Annotated[int, typer.Option("--envs", min=1, help="Environments per trial.")] = 4,
    cpus: Annotated[
        int | None, typer.Option("--cpus", min=1, help="CPUs of the local Ray (default: all).")
    ] = None,
    concurrent: Annotated[
        int | None,
        typer.Option("--concurrent", min=1, help="Trials at once (default: one per CPU)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """8 short PPO trials (4 learning rates x 2 seeds) on the embedded sample (train on its
    first day, validate on its second), run one after another in this process and then as a
    polyrl sweep on a local Ray; prints both wall times and their ratio (day caches are built
    before either is timed; the sweep's time includes starting Ray and writing its table)."""
    from polyrl.features.cache import recording_days
    from polyrl.sweep.bench import bench_sweep

    root = recording_root("sample", resolve_config(None))
    days = recording_days(root, "*")

    def say(line: str) -> None:
        err_console.print(line, markup=False, highlight=False)

    r = bench_sweep(root, days[0], days[1], updates=updates, envs=envs, cpus=cpus,
                    concurrent=concurrent, say=say)  # fmt: skip
    if as_json:
        typer.echo(json.dumps(r, sort_keys=True))
        return
    typer.echo(f"{r['trials']} trials of {r['updates']} updates x {r['envs']} envs: "
               f"sequential {r['sequential_s']:.1f} s, sweep on local Ray ({r['cpus']} CPUs, "
               f"{r['concurrent']} at once) {r['sweep_s']:.1f} s = {r['ratio']:.2f}x "
               f"(load average {r['load_avg_1m']:.1f})")  # fmt: skip
