"""``polyrl bench ...``: benchmarks whose figures the README's performance section quotes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from polyrl.cli import bench_app
from polyrl.cli.common import ConfigOpt, err_console, resolve_config


@bench_app.command("store")
def bench_store_cmd(
    hours: Annotated[
        float, typer.Option("--hours", help="Simulated hours to measure over (a day: 24).", min=0.1)
    ] = 24.0,
    seed: Annotated[int, typer.Option("--seed", help="Simulation seed.")] = 1,
    work: Annotated[
        Path,
        typer.Option("--work", help="Scratch directory; the simulated input is kept and reused."),
    ] = Path("recordings/bench-store"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Store write and read-and-merge throughput (events/s) and bytes on disk per simulated
    hour per stream, over a simulated recording of --hours for all four assets."""
    from polyrl.recording.bench import bench_store

    cfg = resolve_config(config)
    res = bench_store(
        work, hours=hours, seed=seed, config=cfg, progress=lambda m: err_console.print(m)
    )
    if as_json:
        typer.echo(res.to_json())
        return
    typer.echo(f"machine: {res.machine}")
    typer.echo(f"events: {res.events:,} over {res.hours:g} simulated hours")
    typer.echo(f"write:                 {res.write_events_per_s:>12,.0f} events/s")
    typer.echo(f"read+merge (batches):  {res.read_merge_events_per_s:>12,.0f} events/s")
    typer.echo(f"read+merge with raw:   {res.read_merge_raw_events_per_s:>12,.0f} events/s")
    typer.echo(f"per-event view:        {res.event_view_events_per_s:>12,.0f} events/s")
    typer.echo(f"disk: {res.bytes_total / 1e6:,.1f} MB; per simulated hour by stream:")
    for stream, b in res.bytes_per_hour_by_stream.items():
        typer.echo(f"  {stream:<32} {b / 1e6:>8.2f} MB/h")
