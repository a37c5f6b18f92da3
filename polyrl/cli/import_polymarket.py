"""``polyrl import polymarket``: PMXT hours + Gamma markets/outcomes -> a recording root."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Annotated

import typer

from polyrl.cli.apps import import_app
from polyrl.cli.common import ConfigOpt, err_console, parse_assets, resolve_config
from polyrl.errors import ConfigError
from polyrl.events import ASSETS


def _when(text: str, option: str) -> tuple[_dt.datetime, _dt.timedelta]:
    """``YYYY-MM-DD`` (a day) or ``YYYY-MM-DDTHH`` (an hour), UTC -> (start, its length)."""
    try:
        if len(text) == 10:
            d = _dt.date.fromisoformat(text)
            return _dt.datetime(d.year, d.month, d.day, tzinfo=_dt.UTC), _dt.timedelta(days=1)
        if len(text) == 13 and text[10] == "T":
            t = _dt.datetime.strptime(text, "%Y-%m-%dT%H").replace(tzinfo=_dt.UTC)
            return t, _dt.timedelta(hours=1)
    except ValueError:
        pass
    raise ConfigError(f"{option}: {text!r} is not a UTC day (YYYY-MM-DD) or hour (YYYY-MM-DDTHH)")


@import_app.command("polymarket")
def import_polymarket_cmd(
    start: Annotated[
        str,
        typer.Option(
            "--from", help="First UTC day (YYYY-MM-DD) or hour (YYYY-MM-DDTHH) to import."
        ),
    ],
    end: Annotated[
        str,
        typer.Option(
            "--to",
            help="Last UTC day to import (YYYY-MM-DD), inclusive: --from D --to D is one day.",
        ),
    ],
    assets: Annotated[
        str | None,
        typer.Option("--assets", help="Comma-separated subset of btc,eth,sol,xrp (default: all)."),
    ] = None,
    archive: Annotated[
        str | None,
        typer.Option(
            "--archive",
            help="PMXT v2 archive: an https:// base or a folder of downloaded hour files "
            "(polymarket_orderbook_YYYY-MM-DDTHH.parquet); default [importer] pmxt_archive.",
        ),
    ] = None,
    gamma: Annotated[
        str | None,
        typer.Option(
            "--gamma",
            help="Gamma API base URL markets and outcomes are read from; default [sources] "
            "polymarket_gamma_rest.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Recording root to import into; default [recording] root."),
    ] = None,
    allow_mixed: Annotated[
        bool,
        typer.Option(
            "--allow-mixed",
            help="Import into stream-hours that already hold recorded rows (refused "
            "otherwise, naming them).",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Import hours again that an earlier run finished (they are skipped "
            "otherwise, so an interrupted import resumes).",
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Import Polymarket history: each asset's 15-minute Up/Down markets and outcomes from
    Gamma, and their CLOB events (book, price_change, last_trade_price, tick_size_change) from
    the PMXT v2 hourly archive, read by HTTP range requests of only the row groups holding
    those markets. A missing hour, or a market absent from Gamma or the archive, is a gap
    (its windows are not tradable). Progress per hour on stderr; a summary on stdout."""
    from polyrl.importers.fetch import HttpArchive, open_archive
    from polyrl.importers.polymarket import import_range

    (first, _), (last_start, last_len) = _when(start, "--from"), _when(end, "--to")
    last = last_start + last_len
    if last <= first:
        raise ConfigError(f"--to: {end} is before --from {start}")
    names = parse_assets(assets) or ASSETS
    cfg = resolve_config(config)
    imp = cfg.importer
    pmxt = open_archive(
        archive or imp.pmxt_archive,
        retries=imp.retries,
        backoff_s=imp.backoff_s,
        timeout_s=imp.timeout_s,
    )
    gamma_base = gamma or cfg.sources.polymarket_gamma_rest
    if not gamma_base.startswith(("http://", "https://")):
        raise ConfigError(f"--gamma: {gamma_base!r} is not an http(s) URL")
    gamma_ar = HttpArchive(
        gamma_base, retries=imp.retries, backoff_s=imp.backoff_s, timeout_s=imp.timeout_s
    )
    root = out if out is not None else Path(cfg.recording.root)

    def progress(line: str) -> None:
        err_console.print(line, markup=False, highlight=False)

    s = import_range(
        root,
        first,
        last,
        assets=names,
        archive=pmxt,
        gamma=gamma_ar,
        allow_mixed=allow_mixed,
        force=force,
        progress=progress,
    )
    pct = 100.0 * s.bytes_fetched / s.bytes_total if s.bytes_total else 0.0
    lines = [
        f"imported {start}..{end} ({s.hours} hours, {', '.join(names)}) into {root}",
        f"windows: {s.windows} imported, {s.gap_windows} gaps "
        f"({len(s.missing_hours)} missing hours, {len(s.absent_gamma)} markets absent from "
        f"Gamma, {len(set(s.absent_archive))} absent from the archive)",
    ]
    if s.missing_hours:
        lines.append(f"missing hours: {', '.join(s.missing_hours)}")
    for stream, n in sorted(s.rows.items()):
        lines.append(f"  {stream:<26} {n:>12,} rows")
    lines.append(
        f"bytes fetched: {s.bytes_fetched:,} of {s.bytes_total:,} in the hour files ({pct:.1f}%)"
    )
    if s.skipped_units:
        lines.append(f"{s.skipped_units} units done before were skipped (--force redoes them)")
    lines.append(f"took {s.seconds:.1f} s")
    typer.echo("\n".join(lines))
