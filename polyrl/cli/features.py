"""``polyrl features``: every feature of a set, its definition, units, window and source."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from polyrl.cli.apps import app
from polyrl.features.sets import FEATURE_SETS, POSITION_FEATURES, feature_set


@app.command("features")
def features_cmd(
    set_name: Annotated[
        str | None,
        typer.Option("--set", help="Feature set to list (seed18, full, history); default all."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the feature sets and, for each feature, its definition, units, window and the
    stream it reads (the documentation lives beside the code that computes it), and per set
    the streams a recording must hold for it (train, backtest and live refuse days that
    lack one) and those read only when present."""
    sets = [feature_set(set_name)] if set_name else list(FEATURE_SETS.values())
    if as_json:
        payload = [
            {
                "name": s.name,
                "version": s.version,
                "spot_price": s.spot_price,
                "needs": {k: list(v) for k, v in s.needs().items()},
                "optional": list(s.optional()),
                "features": [asdict(s.definition(n)) for n in s.names],
            }
            for s in sets
        ]
        typer.echo(json.dumps(payload, indent=2))
        return
    for s in sets:
        typer.echo(f"{s.name}  ({s.dim} features, version {s.version})")
        typer.echo(f"  needs streams: {', '.join(s.needs())}")
        if s.optional():
            typer.echo(f"  reads if present: {', '.join(s.optional())}")
        for i, n in enumerate(s.names):
            d = s.definition(n)
            who = "position" if n in POSITION_FEATURES else "market"
            typer.echo(f"  {i:>2} {n:<18} [{who}] {d.definition}")
            typer.echo(f"     {'':<18} units: {d.units}; window: {d.window}; source: {d.source}")
        typer.echo("")
