"""``polyrl record``: record every live stream to Parquet, 24/7, with a live status display."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from polyrl.cli.apps import app
from polyrl.cli.common import (
    DURATION_HELP,
    ConfigOpt,
    err_console,
    parse_assets,
    parse_duration,
    polybolt_credentials,
    print_alert,
    ran_text,
    resolve_config,
)
from polyrl.clock import LiveClock
from polyrl.errors import ConfigError, RecordingError
from polyrl.events import CH_RECORDER, NS_PER_S, iso_to_ns
from polyrl.recording.health import ChannelStat, any_reached, never_reached_text
from polyrl.recording.provenance import recorded_entry
from polyrl.recording.recorder import Recorder


def status_table(rec: Recorder) -> Table:
    """Per stream: rows, rate, last message age; per channel (names in brackets): frames,
    last frame age, state (up, DOWN and for how long), reconnects, gaps, connection failures,
    HTTP errors and parse errors. Names are plain text, never console markup."""
    now = rec.clock.now_ns()
    t = Table(title=Text(f"polyrl record -> {rec.root}"), expand=False)
    for col in (
        "stream / channel",
        "rows",
        "rate/s",
        "last msg",
        "state",
        "reconn.",
        "gaps",
        "conn. fail",
        "http err",
        "parse err",
    ):
        t.add_column(col, justify="left" if col.startswith("stream") or col == "state" else "right")
    for name, st in sorted(rec.streams.items()):
        t.add_row(Text(name), f"{st.rows:,}", f"{st.rate:,.1f}", _age(now, st.last_recv_ns))
    for name, ch in sorted(rec.channels.items()):
        t.add_row(
            Text(f"[{name}]"),
            f"{ch.frames:,}",
            "",
            _age(now, ch.last_frame_ns),
            _state(name, ch, now),
            str(ch.reconnects),
            str(ch.gaps),
            str(ch.connect_failures),
            str(ch.http_errors),
            str(ch.parse_errors),
        )
    return t


def _age(now_ns: int, last_ns: int) -> str:
    return f"{(now_ns - last_ns) / NS_PER_S:.1f}s" if last_ns else "never"


def _state(name: str, ch: ChannelStat, now_ns: int) -> Text:
    if ch.down_since_ns is not None:
        down = f"{(now_ns - ch.down_since_ns) / NS_PER_S:.0f}s"
        label = f"DOWN {down}" if ch.reached else f"not connected {down}"
        return Text(label, style="bold red" if ch.alerted else "yellow")
    if ch.connected:
        return Text("up", style="green")
    if name == CH_RECORDER:
        return Text("-")
    return Text("ok" if ch.reached else "-")


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
            help="Stop after this long (90s, 10m, 1h, 2d); default: until Ctrl-C / SIGTERM. "
            + DURATION_HELP,
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
    quiet: Annotated[
        bool, typer.Option("--quiet", help="No live status display (alerts are still printed).")
    ] = False,
    upload: Annotated[
        str | None,
        typer.Option(
            "--upload",
            help="Also ship each closed hour to this object store URI (s3://bucket/prefix; "
            "see [storage]) as complete objects, each verified before it counts; the "
            "write-ahead log and open hours stay local, local files are never deleted, and "
            "a failed upload is retried on the next pass (and by the next run).",
        ),
    ] = None,
) -> None:
    """Record Binance spot and futures streams, Polymarket discovery, CLOB books, the reference
    feed and resolutions for the configured assets into hive-partitioned Parquet.

    Every frame is logged to a write-ahead log before it is parsed: SIGINT/SIGTERM loses
    nothing; kill -9 loses at most about a second and the next start recovers the rest.
    A channel down for [recording] alert_after_s is said on stderr (and again when it
    recovers); a run in which no venue ever connected exits 1 naming the channels.

    PolyBolt (the Chainlink 60 s TWAP that replaces the RTDS topics) is recorded beside RTDS
    when the CLOB API credentials are in the environment: POLYRL_CLOB_API_KEY,
    POLYRL_CLOB_API_SECRET and POLYRL_CLOB_API_PASSPHRASE (all three or none; never stored).
    """
    from polyrl.sources.adapters import default_adapters

    cfg = resolve_config(config, {"assets": parse_assets(assets)})
    polybolt = polybolt_credentials()
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
    dest = None
    if upload is not None:
        from polyrl.storage import locate

        dest = locate(upload, cfg.storage)  # credentials and bucket checked before recording
    adapters = default_adapters(cfg, polybolt=polybolt, on_alert=print_alert)
    rec = Recorder(
        root,
        config=cfg.recording,
        clock=clock,
        on_alert=print_alert,
        provenance=recorded_entry(cfg.sources, by="polyrl record", clock_speed=clock.speed),
    )
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
    if clock.speed != 1.0 and seconds is not None:
        err_console.print(
            f"clock: {clock.speed:g}x real time; --duration {duration} is venue time "
            f"(about {seconds / clock.speed:.1f} s of wall time)",
            markup=False,
        )

    async def main() -> None:
        task = asyncio.create_task(rec.run(adapters, duration_s=seconds))
        shipper = None
        if dest is not None:
            shipper = asyncio.create_task(_ship(rec, root, dest, cfg.recording, task))
        try:
            await _watch(task)
        finally:
            if shipper is not None:
                await shipper

    async def _watch(task: asyncio.Task[None]) -> None:
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
    took = ran_text(rec.started_ns, rec.stopped_ns, clock.speed)
    err_console.print(
        f"stopped after {took}: {total:,} rows in {len(rec.streams)} streams under {root}",
        markup=False,
    )
    missing = rec.never_reached()
    if not any_reached(rec.channels.items()):
        raise RecordingError(
            "no venue ever connected: "
            + (never_reached_text(missing) or "no channel was opened")
            + "; check the [sources] URLs and the network"
        )
    if missing:
        err_console.print(f"never connected: {never_reached_text(missing)}", markup=False)


UPLOAD_EVERY_S = 30.0
"""Seconds of wall time between two upload passes of ``record --upload``."""


async def _ship(rec: Recorder, root: Path, dest: Any, config: Any, task: asyncio.Task) -> None:
    """Upload passes while the recorder runs, and one after it stops. An hour counts as closed
    once it ended more than the compaction grace plus two checkpoints ago (the recorder has
    compacted it by then). A failed pass is said on stderr and retried; it never stops the
    recording."""
    from polyrl.errors import StorageError
    from polyrl.recording.upload import upload_closed_hours

    grace = config.compact_grace_s + 2 * config.checkpoint_s * rec.clock.speed

    async def one() -> None:
        try:
            rep = await asyncio.to_thread(
                upload_closed_hours, root, dest, now_ns=rec.clock.now_ns(), grace_s=grace
            )
        except (StorageError, OSError) as e:
            err_console.print(f"upload: {e} (retried on the next pass)", markup=False)
            return
        if rep.uploaded:
            err_console.print(
                f"upload: {len(rep.uploaded)} file(s), {rep.bytes / 1e6:,.1f} MB to {dest.uri}",
                markup=False,
            )

    while not task.done():
        await asyncio.wait([task], timeout=UPLOAD_EVERY_S)
        await one()
