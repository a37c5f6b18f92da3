"""Column lists -> an Arrow table of a stream's schema, checked: what the writer stores and
what a live batch's frames are built from (:meth:`polyrl.recording.reader.MergedBatch.from_events`).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from polyrl.errors import RecordingError
from polyrl.recording.schema import ARROW_SCHEMAS


def build_table(stream: str, cols: dict[str, list[Any]]) -> pa.Table:
    """Column lists (common columns, typed fields, raw) -> an Arrow table of the stream's schema.

    A value of the wrong type names the stream and column.
    """
    schema = ARROW_SCHEMAS[stream]
    arrays = []
    for fld in schema:
        try:
            arrays.append(pa.array(cols[fld.name], type=fld.type, from_pandas=False))
        except (
            pa.ArrowInvalid,
            pa.ArrowTypeError,
            TypeError,
            ValueError,  # UnicodeEncodeError: a lone surrogate
            OverflowError,
            RecursionError,
        ) as e:
            raise RecordingError(f"{stream}: column {fld.name!r}: {e}") from None
    table = pa.Table.from_arrays(arrays, schema=schema)
    try:
        table.validate(full=False)
        _check_not_null(stream, table)
    except pa.ArrowInvalid as e:
        raise RecordingError(f"{stream}: {e}") from None
    return table


def _check_not_null(stream: str, table: pa.Table) -> None:
    for fld, col in zip(table.schema, table.columns, strict=True):
        if not fld.nullable and col.null_count:
            raise RecordingError(f"{stream}: column {fld.name!r} has {col.null_count} null(s)")
