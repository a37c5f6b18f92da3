"""``polyrl import binance``: Binance's public data archive -> binance streams, marked imported."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from polyrl.cli.apps import import_app
from polyrl.cli.common import ConfigOpt, parse_assets, resolve_config


@import_app.command("binance")
def import_binance_cmd(
    date_from: Annotated[str, typer.Option("--from", help="First UTC day to import, YYYY-MM-DD.")],
    date_to: Annotated[
        str, typer.Option("--to", help="Last UTC day to import (inclusive), YYYY-MM-DD.")
    ],
    assets: Annotated[
        str | None,
        typer.Option(
            "--assets", help="Comma-separated subset of btc,eth,sol,xrp (default: the config's)."
        ),
    ] = None,
    archive: Annotated[
        str | None,
        typer.Option(
            "--archive",
            help="Archive base: an https:// URL or a folder laid out like it (data/spot/...); "
            "default: [importer] binance_archive.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Recording root to write (default: [recording] root)."),
    ] = None,
    allow_mixed: Annotated[
        bool,
        typer.Option(
            "--allow-mixed",
            help="Write into stream-hours that already hold recorded rows (refused otherwise).",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Import days again even if an earlier import finished them."),
    ] = False,
    checksum_gap: Annotated[
        bool,
        typer.Option(
            "--checksum-gap",
            help="A zip whose sha256 differs from its .CHECKSUM becomes a gap of its stream for "
            "the day (default: the import stops, naming the file).",
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Import Binance spot and USD-M history (aggTrades, 1s/1m klines, mark/index klines with
    funding, 5-minute open interest) for each UTC day in --from..--to. Each zip's .CHECKSUM is
    verified; rows get recv_ns = venue time + [importer] binance_spot_delay_ms /
    binance_futures_delay_ms (a bar: its close + delay). Days already imported are skipped
    unless --force or a file was replaced in the archive since. Progress on stderr; a summary
    (days, files, rows per stream, repairs, gaps, bytes, seconds) on stdout."""
    from polyrl.importers.binance import import_binance

    cfg = resolve_config(config)
    chosen = parse_assets(assets) or tuple(cfg.assets)
    root = out if out is not None else Path(cfg.recording.root)
    summary = import_binance(
        root,
        date_from,
        date_to,
        assets=chosen,
        cfg=cfg.importer,
        archive=archive,
        force=force,
        allow_mixed=allow_mixed,
        checksum_gap=checksum_gap,
        progress=lambda m: print(m, file=sys.stderr, flush=True),
    )
    for line in summary.lines():
        typer.echo(line)
