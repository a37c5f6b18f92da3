"""``polyrl record``: record every live stream to Parquet, 24/7, with a live status display."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from polyrl.cli import app
from polyrl.cli.common import (
    ConfigOpt,
    err_console,
    parse_assets,
    parse_duration,
    resolve_config,
)
from polyrl.clock import LiveClock
from polyrl.errors import ConfigError
from polyrl.events import NS_PER_S, iso_to_ns
from polyrl.recording.recorder import Recorder


def status_table(rec: Recorder) -> Table:
    """Per stream: rows, rate, last message age; per channel: state, reconnects, gaps, errors."""
    now = rec.clock.now_ns()
    t = Table(title=f"polyrl record -> {rec.root}", expand=False)
    for col in (
        "stream / channel",
        "rows",
        "rate/s",
        "last msg",
        "state",
        "reconn.",
        "gaps",
        "errors",
    ):
        t.add_column(col, justify="left" if col.startswith("stream") or col == "state" else "right")
    for name, st in sorted(rec.streams.items()):
        age = (now - st.last_recv_ns) / NS_PER_S if st.last_recv_ns else float("nan")
        t.add_row(name, f"{st.rows:,}", f"{st.rate:,.1f}", f"{age:.1f}s", "", "", "", "")
    for name, ch in sorted(rec.channels.items()):
        age = (now - ch.last_frame_ns) / NS_PER_S if ch.last_frame_ns else float("nan")
        state = "up" if ch.connected else ("-" if name == "recorder" or ".rest" in name else "DOWN")
        t.add_row(
            f"[{name}]",
            f"{ch.frames:,}",
            "",
            f"{age:.1f}s",
            state,
            str(ch.reconnects),
            str(ch.gaps),
            str(ch.parse_errors),
        )
    return t


@app.command("record")
def record_cmd(
    config: ConfigOpt = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Recording root (default: [recording] root of the config)."),
    ] = None,
    assets: Annotated[
        str | None, typer.Option("--assets", help="Comma-separated subset of btc,eth,sol,xrp.")
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration",
            help="Stop after this long (90s, 10m, 1h, 2d); default: run until Ctrl-C / SIGTERM.",
        ),
    ] = None,
    clock_speed: Annotated[
        float | None,
        typer.Option(
            "--clock-speed",
            help="Run the clock this many times faster than real time (only against "
            "loopback venue servers; normally taken from the [clock] section that "
            "`polyrl simulate --serve` writes into its config).",
            min=0.001,
        ),
    ] = None,
    clock_start: Annotated[
        str | None,
        typer.Option(
            "--clock-start",
            help="Start the clock at this ISO time (with "
            "--clock-speed, to match `polyrl simulate --serve`).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No live status display.")] = False,
) -> None:
    """Record Binance spot and futures streams, Polymarket discovery, CLOB books, the reference
    feed and resolutions for the configured assets into hive-partitioned Parquet.

    Every frame is logged to a write-ahead log before it is parsed: SIGINT/SIGTERM loses
    nothing; kill -9 loses at most about a second and the next start recovers the rest.
    """
    from polyrl.sources.adapters import default_adapters

    cfg = resolve_config(config, {"assets": parse_assets(assets)})
    root = out if out is not None else Path(cfg.recording.root)
    seconds = parse_duration(duration)
    if clock_speed is not None or clock_start is not None:
        start_ns = None
        if clock_start is not None:
            try:
                start_ns = iso_to_ns(clock_start)
            except ValueError:
                raise ConfigError(
                    f"--clock-start: {clock_start!r} is not an ISO 8601 time"
                ) from None
        clock = LiveClock(speed=clock_speed or 1.0, start_ns=start_ns)
    else:
        clock = LiveClock.from_config(cfg.clock)
    adapters = default_adapters(cfg)
    rec = Recorder(root, config=cfg.recording, clock=clock)
    if rec.recovery.segments:
        err_console.print(
            f"recovered {rec.recovery.rows_written:,} rows from {rec.recovery.segments} "
            f"write-ahead segment(s) of an interrupted run"
        )
    for q in rec.recovery.quarantined:
        err_console.print(
            f"write-ahead log: {q.size} byte(s) of {q.segment} at offset {q.offset} {q.reason}; "
            f"kept verbatim in {q.path} (recovery went on)",
            highlight=False,
            markup=False,
            soft_wrap=True,  # one line: a path is never broken
        )

    async def main() -> None:
        task = asyncio.create_task(rec.run(adapters, duration_s=seconds))
        if quiet:
            await task
            return
        if err_console.is_terminal:
            with Live(status_table(rec), console=err_console, refresh_per_second=2) as live:
                while not task.done():
                    await asyncio.sleep(0.5)
                    live.update(status_table(rec))
        else:
            last = time.monotonic()
            while not task.done():
                await asyncio.sleep(0.5)
                if time.monotonic() - last >= 30:
                    last = time.monotonic()
                    total = sum(s.rows for s in rec.streams.values())
                    err_console.print(f"recorded {total:,} rows in {len(rec.streams)} streams")
        await task

    asyncio.run(main())
    total = sum(s.rows for s in rec.streams.values())
    err_console.print(f"stopped: {total:,} rows in {len(rec.streams)} streams under {root}")
