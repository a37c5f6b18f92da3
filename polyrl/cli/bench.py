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


@bench_app.command("replay")
def bench_replay_cmd(
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            help="Recording to measure on (default: simulate --hours into "
            "--work, once, and reuse it).",
        ),
    ] = None,
    hours: Annotated[
        float, typer.Option("--hours", help="Simulated hours when no --root is given.", min=0.1)
    ] = 24.0,
    seed: Annotated[int, typer.Option("--seed", help="Simulation seed.")] = 1,
    work: Annotated[
        Path, typer.Option("--work", help="Scratch directory (shared with bench store).")
    ] = Path("recordings/bench-store"),
    day: Annotated[
        str | None, typer.Option("--day", help="Recording day to measure (default: the first).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Replay throughput for one day of four markets: cold (FeatureEngine -> cache) in events/s
    and ticks/s, warm (load the cached observations) in seconds, and the Engine stepping
    every tick with a baseline in ticks/s."""
    from polyrl.features.bench import bench_replay
    from polyrl.recording.bench import ensure_bench_recording

    cfg = resolve_config(config)
    rec = (
        root
        if root is not None
        else ensure_bench_recording(
            work, hours=hours, seed=seed, config=cfg, progress=lambda m: err_console.print(m)
        )
    )
    res = bench_replay(rec, cfg, day=day)
    if as_json:
        typer.echo(res.to_json())
        return
    typer.echo(f"machine: {res.machine}")
    typer.echo(f"day {res.day}: {res.events:,} events, {res.ticks:,} decision ticks (4 markets)")
    typer.echo(
        f"cold (FeatureEngine -> cache): {res.cold_seconds:8.1f} s  "
        f"{res.cold_events_per_s:>12,.0f} events/s  {res.cold_ticks_per_s:>9,.0f} ticks/s"
    )
    typer.echo(f"warm (load the cached day):    {res.warm_seconds:8.2f} s")
    typer.echo(f"Engine from the cache:          {res.engine_ticks_per_s:>12,.0f} ticks/s")


@bench_app.command("record")
def bench_record_cmd(
    speed: Annotated[
        float,
        typer.Option(
            "--speed",
            help="Simulated seconds per real second the loopback "
            "venues push (about 290 frames/s of four assets per unit).",
            min=1,
        ),
    ] = 100.0,
    seconds: Annotated[
        float, typer.Option("--seconds", help="Real seconds to record for.", min=5)
    ] = 36.0,
    work: Annotated[
        Path, typer.Option("--work", help="Scratch directory for the recording.")
    ] = Path("recordings/bench-record"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Sustained recording throughput: the loopback venues push simulated markets for four
    assets at --speed x real time; `polyrl record` (a child process, one core) records them
    for --seconds. Reports frames/s recorded, CPU per 1,000 frames/s, and memory every second
    (flat memory = bounded). --speed 100 for 36 s is one simulated hour."""
    from polyrl.recording.bench import bench_record

    cfg = resolve_config(config)
    res = bench_record(
        work, speed=speed, seconds=seconds, config=cfg, progress=lambda m: err_console.print(m)
    )
    if as_json:
        typer.echo(res.to_json())
        return
    typer.echo(f"machine: {res.machine}")
    typer.echo(
        f"{res.simulated_s / 3600:.2f} simulated hours at {res.speed:g}x in {res.seconds:g} s"
    )
    typer.echo(
        f"recorded: {res.frames:,} frames ({res.rows:,} rows): {res.frames_per_s:,.0f} frames/s"
    )
    typer.echo(
        f"recorder CPU: {res.cpu_fraction:.0%} of one core; "
        f"{res.cpu_per_1000_fps:.3f} cores per 1,000 frames/s; "
        f"{res.frames_per_cpu_s:,.0f} frames per CPU-second"
    )
    typer.echo(
        f"memory: peak {res.peak_rss_mb:.0f} MB; RSS every second: "
        f"{', '.join(f'{x:.0f}' for x in res.rss_mb_samples)}"
    )
