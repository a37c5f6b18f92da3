"""Test helpers shared by the venue parser tests.

``events_to_table`` is the contract check between a parser and the recording schema: it builds
the Arrow table a recorder would write for one stream and fails loudly when any event would not
fit it (wrong stream, a field missing or extra, a value of the wrong Python type, a null in a
non-nullable column). Value-level invariants (sorted book sides, signs) stay in parser tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

from polyrl.events import Event
from polyrl.recording.schema import ARROW_SCHEMAS

COMMON_HEAD = ("recv_ns", "seq", "exch_ns", "key", "asset", "quality")
COMMON_TAIL = ("raw",)


def _python_type_ok(value: Any, typ: pa.DataType) -> bool:
    """Whether ``value`` is exactly the Python type a parser must emit for Arrow ``typ``.

    Stricter than pyarrow's own conversion, which would silently accept ``1.0`` for an int64
    column or an int for a float64 column.
    """
    if pa.types.is_integer(typ):
        return type(value) is int
    if pa.types.is_floating(typ):
        return type(value) is float
    if pa.types.is_boolean(typ):
        return type(value) is bool
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return type(value) is str
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return type(value) is list and all(
            _python_type_ok(x, typ.value_type) for x in value if x is not None
        )
    return True  # other types: leave to pyarrow's conversion


def event_row(event: Event) -> dict[str, Any]:
    """One event as the flat row a recorder stores (common columns, fields, raw)."""
    return {
        "recv_ns": event.recv_ns,
        "seq": event.seq,
        "exch_ns": event.exch_ns,
        "key": event.key,
        "asset": event.asset,
        "quality": event.quality,
        **dict(event.fields),
        "raw": event.raw,
    }


def events_to_table(events: Iterable[Event], stream: str) -> pa.Table:
    """The Arrow table of ``events`` under ``ARROW_SCHEMAS[stream]``, fully validated.

    Asserts that every event belongs to ``stream``, carries exactly the stream's fields (no
    missing, no extra), has values of the exact Python type of each column, and has no null in
    a non-nullable column; then builds the table with the schema and runs a full validation.
    An empty input gives an empty table with the schema.
    """
    schema = ARROW_SCHEMAS[stream]
    common = set(COMMON_HEAD) | set(COMMON_TAIL)
    field_names = [name for name in schema.names if name not in common]
    rows: list[dict[str, Any]] = []
    for i, ev in enumerate(events):
        assert ev.stream == stream, f"event {i} is of stream {ev.stream!r}, not {stream!r}"
        missing = set(field_names) - set(ev.fields)
        extra = set(ev.fields) - set(field_names)
        assert not missing and not extra, (
            f"event {i} ({stream}): fields missing {sorted(missing)}, extra {sorted(extra)}"
        )
        row = event_row(ev)
        for f in schema:
            value = row[f.name]
            if value is None:
                assert f.nullable, f"event {i} ({stream}): null in non-nullable column {f.name!r}"
                continue
            assert _python_type_ok(value, f.type), (
                f"event {i} ({stream}): column {f.name!r} wants {f.type}, "
                f"got {type(value).__name__} {value!r:.60}"
            )
        rows.append(row)
    columns: dict[str, Sequence[Any]] = {name: [r[name] for r in rows] for name in schema.names}
    table = pa.Table.from_pydict(columns, schema=schema)
    table.validate(full=True)
    assert table.schema.equals(schema, check_metadata=True)
    return table
