"""``polyrl features``: every feature of a set, its definition, units, window and source."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from polyrl.cli import app
from polyrl.features.sets import FEATURE_SETS, FEATURES, POSITION_FEATURES, feature_set


@app.command("features")
def features_cmd(
    set_name: Annotated[
        str | None, typer.Option("--set", help="Feature set to list (seed18, full); default all.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the feature sets and, for each feature, its definition, units, window and the
    stream it reads (the documentation lives beside the code that computes it)."""
    sets = [feature_set(set_name)] if set_name else list(FEATURE_SETS.values())
    if as_json:
        payload = [
            {
                "name": s.name,
                "version": s.version,
                "features": [asdict(FEATURES[n]) for n in s.names],
            }
            for s in sets
        ]
        typer.echo(json.dumps(payload, indent=2))
        return
    for s in sets:
        typer.echo(f"{s.name}  ({s.dim} features, version {s.version})")
        for i, n in enumerate(s.names):
            d = FEATURES[n]
            who = "position" if n in POSITION_FEATURES else "market"
            typer.echo(f"  {i:>2} {n:<18} [{who}] {d.definition}")
            typer.echo(f"     {'':<18} units: {d.units}; window: {d.window}; source: {d.source}")
        typer.echo("")
