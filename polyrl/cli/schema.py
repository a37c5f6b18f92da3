"""``polyrl schema [STREAM]``: the stored columns of each stream, from the code itself."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from polyrl.cli.apps import app
from polyrl.recording.schema import STREAMS, describe, describe_quality, spec
from polyrl.sources.quality.flags import FLAGS


@app.command("schema")
def schema_cmd(
    stream: Annotated[
        str | None,
        typer.Argument(help="A stream id such as polymarket.book; omit to list every stream."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the Arrow schema of one stream (every column, its type and meaning, and the bits
    of its `quality` flags) or list all streams."""
    if stream is None:
        if as_json:
            typer.echo(json.dumps([{"stream": s.id, "doc": s.doc} for s in STREAMS], indent=2))
            return
        width = max(len(s.id) for s in STREAMS)
        for s in STREAMS:
            typer.echo(f"{s.id:<{width}}  {s.doc}")
        typer.echo("\nEvery row of every stream has a `quality` column (uint16, 0 = clean).")
        typer.echo(describe_quality())
        return
    s = spec(stream)
    if as_json:
        cols = [
            {"name": c.name, "type": str(c.type), "nullable": c.nullable, "doc": c.doc}
            for c in s.all_columns()
        ]
        flags = [{"name": f.name, "bit": f.bit, "mask": f.mask, "doc": f.doc} for f in FLAGS]
        out = {"stream": s.id, "doc": s.doc, "columns": cols, "quality_flags": flags}
        typer.echo(json.dumps(out, indent=2))
    else:
        typer.echo(describe(stream))
