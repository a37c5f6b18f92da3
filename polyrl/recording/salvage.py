"""When a buffer's Arrow table cannot be built: keep every row that can be stored.

The Parser already turns a frame holding an unstorable value into a ``parse_error`` row
(:mod:`polyrl.sources.storable`), so this is the second line: an event made some other way
(a listener, a future parser, a bug) must still never cost the other rows of its buffer.
:func:`split_unstorable` finds the rows Arrow refuses, column by column, and returns the rest;
:func:`parse_error_rows` turns each refused row into a ``recorder.status`` ``parse_error``
row with the same ``recv_ns`` and ``seq``, naming the stream, the column and the value, and
keeping the row's raw text (as a JSON string literal when UTF-8 cannot encode it).
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from polyrl.events import CH_RECORDER, STATUS_STREAM
from polyrl.recording.schema import ARROW_SCHEMAS
from polyrl.sources.storable import show, utf8_problem

_CONVERT_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError)


def _value_problem(value: Any, fld: pa.Field) -> str | None:
    if value is None:
        return None if fld.nullable else "missing (the column is not nullable)"
    try:
        pa.array([value], type=fld.type, from_pandas=False)
    except _CONVERT_ERRORS as e:
        return f"{fld.type} column cannot hold {show(value)}: {type(e).__name__}: {e}"
    except RecursionError:
        return f"{fld.type} column cannot hold a value nested this deeply"
    return None


def split_unstorable(
    stream: str, cols: dict[str, list[Any]]
) -> tuple[dict[str, list[Any]], dict[int, str]]:
    """``(the storable rows' columns, {row index: what is wrong})`` of a buffer.

    Only columns whose whole list fails to convert are checked value by value, so the cost
    is one conversion per column plus one per value of a failing column.
    """
    bad: dict[int, str] = {}
    for fld in ARROW_SCHEMAS[stream]:
        values = cols[fld.name]
        try:
            arr = pa.array(values, type=fld.type, from_pandas=False)
            if fld.nullable or not arr.null_count:
                continue
        except (*_CONVERT_ERRORS, RecursionError):
            pass
        for i, v in enumerate(values):
            if i not in bad:
                p = _value_problem(v, fld)
                if p is not None:
                    bad[i] = f"{stream}: column {fld.name!r}: {p}"
    keep = [i for i in range(len(cols["seq"])) if i not in bad]
    good = {name: [values[i] for i in keep] for name, values in cols.items()}
    return good, bad


def _raw_text(raw: Any) -> tuple[str, str]:
    """(text to store as ``raw``, note for the message)."""
    if type(raw) is not str:
        return json.dumps(show(raw, 2000)), " [raw is not text: stored as a JSON literal]"
    p = utf8_problem(raw)
    if p is None:
        return raw, ""
    return json.dumps(raw), f" [raw is the row's text as a JSON string literal: {p}]"


def parse_error_rows(
    stream: str, cols: dict[str, list[Any]], bad: dict[int, str]
) -> dict[str, list[Any]]:
    """``recorder.status`` columns: one ``parse_error`` row per refused row of ``cols``."""
    out: dict[str, list[Any]] = {f.name: [] for f in ARROW_SCHEMAS[STATUS_STREAM]}
    for i in sorted(bad):
        raw, note = _raw_text(cols["raw"][i])
        message = f"row not stored: {bad[i]}"[:400] + note
        out["recv_ns"].append(cols["recv_ns"][i])
        out["seq"].append(cols["seq"][i])
        out["exch_ns"].append(None)
        out["key"].append(CH_RECORDER)
        out["asset"].append(None)
        out["quality"].append(0)
        out["kind"].append("parse_error")
        out["stream_id"].append(stream)
        out["message"].append(message.encode("utf-8", "backslashreplace").decode("utf-8"))
        out["gap_start_ns"].append(None)
        out["gap_end_ns"].append(None)
        out["raw"].append(raw)
    return out
