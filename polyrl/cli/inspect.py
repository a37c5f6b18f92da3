"""``polyrl inspect ROOT``: rows, spans, rates, silences, latency, gaps and errors per stream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from polyrl.cli.apps import app
from polyrl.cli.common import ConfigOpt, err_console, recording_location, resolve_config
from polyrl.recording.inspect import format_report, inspect_recording


@app.command("inspect")
def inspect_cmd(
    root: Annotated[
        str,
        typer.Argument(
            help="Recording root: a directory, `sample` for the embedded sample, or a URI "
            "(s3://bucket/prefix, gs://bucket/prefix, file:///path; see [storage])."
        ),
    ],
    dates: Annotated[
        str, typer.Option("--dates", "--date", help="Date glob(s), comma-separated: 2024-06-*.")
    ] = "*",
    by: Annotated[
        str, typer.Option("--by", help="Group rows per `asset` (default) or per raw `key`.")
    ] = "asset",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    book_stats: Annotated[
        bool,
        typer.Option(
            "--book-stats",
            help="Instead, print Polymarket book statistics per asset and overall: median "
            "top-5 depth per side with 10-15 min and with 1 min or less left, spread (median/"
            "mean/p90) in the last minute and before, share of 1 s steps with no Up-mid move "
            "and the size of its moves, trades per second per token, and the share of windows "
            "whose last mid is beyond 0.9/0.1 (compare a simulated day with a real one).",
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Summarise what a recording holds: per stream and asset (or key) the rows, first and last
    time, mean rate, largest silence and receive latency; per channel the connects, reconnects,
    gaps and parse errors from recorder.status, and the channels' connection failures, HTTP
    errors, alerts and runs in which they never connected; per stream the rows with quality
    flags set, counted per flag (see `polyrl schema`); per day, what made it (simulated with
    its seed and non-default simulator settings, recorded, imported, or unknown). With
    --book-stats: how the Polymarket books look instead (depth, spread, mid moves, trade
    rate, decided endings)."""
    if by not in ("asset", "key"):
        from polyrl.errors import ConfigError

        raise ConfigError(f"--by: {by!r} is not one of asset, key")
    cfg = resolve_config(config)
    path = recording_location(root, cfg)
    globs = [g.strip() for g in dates.split(",") if g.strip()] or ["*"]
    group: Literal["asset", "key"] = "key" if by == "key" else "asset"
    if book_stats:
        if not isinstance(path, Path):
            from polyrl.errors import ConfigError

            raise ConfigError(f"--book-stats: reads a local recording only, not {root}")
        from polyrl.analysis.bookstats import book_stats as compute
        from polyrl.analysis.bookstats import format_book_stats

        stats = compute(path, globs)
        if as_json:
            typer.echo(json.dumps([s.to_json() for s in stats], indent=2))
        else:
            typer.echo(format_book_stats(stats))
            if not stats[-1].samples:
                err_console.print("no Polymarket book samples")
        return
    report = inspect_recording(path, globs, by=group, sim_class=type(cfg.sim))
    if as_json:
        typer.echo(report.to_json())
    else:
        typer.echo(format_report(report))
        if not report.streams:
            err_console.print("no rows")
