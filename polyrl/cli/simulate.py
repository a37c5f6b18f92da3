"""``polyrl simulate``: a synthetic recording (no network) through the live parsers and store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from polyrl.cli.apps import app
from polyrl.cli.common import ConfigOpt, err_console, parse_assets, progress_bar, resolve_config
from polyrl.errors import ConfigError
from polyrl.events import NS_PER_S, iso_to_ns, ns_to_iso
from polyrl.sim.record import simulate_to_recording


@app.command("simulate")
def simulate_cmd(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Directory to write the recording to (must be empty); not with --serve.",
        ),
    ] = None,
    start: Annotated[
        str, typer.Option("--start", help="Start time, ISO 8601, UTC (e.g. 2024-06-01T00:00).")
    ] = "2024-06-01T00:00",
    hours: Annotated[
        float, typer.Option("--hours", help="Simulated span in hours (fractions allowed).", min=0)
    ] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same bytes.")] = 0,
    assets: Annotated[
        str | None, typer.Option("--assets", help="Comma-separated subset of btc,eth,sol,xrp.")
    ] = None,
    book_lag: Annotated[
        float | None,
        typer.Option(
            "--book-lag",
            help="Plant an edge on purpose: the Polymarket Up book follows the fair value this "
            "many seconds late ([sim] book_lag_s; default 0, no lag and no planted edge).",
            min=0,
            max=600,
        ),
    ] = None,
    config: ConfigOpt = None,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Serve the simulation on 127.0.0.1 as the real venues' WebSocket and REST "
            "endpoints instead of writing a recording. When the simulated span (--hours) "
            "ends, it says so, closes every connection (code 1001) and answers every new "
            "connection or request 410 Gone naming the end time, until Ctrl-C.",
        ),
    ] = False,
    port: Annotated[
        int,
        typer.Option(
            "--port",
            help="With --serve: first port (spot WS; then futures WS, CLOB WS, RTDS WS, "
            "HTTP, PolyBolt WS). 0 picks free ports.",
            min=0,
        ),
    ] = 0,
    speed: Annotated[
        float,
        typer.Option("--speed", help="With --serve: clock speed (100 = a window in 9 s)."),
    ] = 1.0,
    config_out: Annotated[
        Path | None,
        typer.Option(
            "--config-out",
            help="With --serve: where to write the TOML config pointing polyrl at the "
            "servers (default: a file in the temp directory).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Simulate BTC/ETH/SOL/XRP spot, futures, Polymarket books and the reference feed, and
    record the raw frames through the same parsers and Parquet store as `polyrl record`
    (or, with --serve, serve them live on 127.0.0.1 for `polyrl record --config FILE`).

    With --serve the loopback PolyBolt socket re-publishes the 60 s TWAP (when [sources]
    reference_feed = "twap60") to clients that authenticate with the test credentials
    POLYRL_CLOB_API_KEY=loopback-test-key, POLYRL_CLOB_API_SECRET=loopback-test-secret,
    POLYRL_CLOB_API_PASSPHRASE=loopback-test-passphrase (others are refused, close 4001)."""
    try:
        start_ns = iso_to_ns(start)
    except ValueError:
        raise ConfigError(f"--start: {start!r} is not an ISO 8601 time") from None
    if hours <= 0:
        raise ConfigError("--hours must be > 0")
    sim = {"book_lag_s": book_lag} if book_lag is not None else None
    cfg = resolve_config(config, {"assets": parse_assets(assets), "sim": sim})
    end_ns = start_ns + int(round(hours * 3600)) * NS_PER_S
    if serve:
        if out is not None:
            raise ConfigError("--out and --serve exclude each other (--serve writes no recording)")
        from polyrl.cli.serve import serve_simulation

        serve_simulation(
            config=cfg,
            start_ns=start_ns,
            end_ns=end_ns,
            seed=seed,
            speed=speed,
            port=port,
            config_out=config_out,
        )
        return
    if out is None:
        raise ConfigError("--out is required (the directory to write the recording to)")
    total = (end_ns - start_ns) / NS_PER_S
    with progress_bar("simulating", total=total, unit="sim s") as advance:
        summary = simulate_to_recording(
            out,
            start_ns=start_ns,
            end_ns=end_ns,
            seed=seed,
            config=cfg,
            progress=lambda t: advance((t - start_ns) / NS_PER_S, ns_to_iso(t)[:19]),
        )
    err_console.print(
        f"wrote {summary.rows:,} rows from {summary.frames:,} frames to {out} "
        f"({summary.files} files, {summary.bytes / 1e6:.1f} MB, {summary.seconds:.1f} s; "
        f"{summary.parse_errors} parse errors)"
    )
