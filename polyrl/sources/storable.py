"""Can an event be stored? Each value checked against its column's storage type (pure).

A venue can send values no column can hold: an integer beyond int64 (a millisecond time of
``1180591620717411303424``), a JSON string escape that decodes to a lone surrogate
(``"\\ud800"``: valid JSON, plain ASCII on the wire, but no UTF-8 encoding exists), a float
where an integer column is. Stored as they are, they make the Parquet write of a whole buffer
fail. :class:`Parser` runs :func:`first_unstorable` on every frame's events and turns a frame
holding such a value into one ``parse_error`` row instead.

The checks follow Arrow's own conversion rules for the column types the recording uses
(``int64``/``int32``/``int8``, ``double``, ``string``, ``bool``, ``list<double>``), so an event
that passes converts without error. The column types themselves are the recording's: the
recording layer hands them to the :class:`~polyrl.sources.parse.Parser` as a
:data:`StoragePlans` built by :func:`plans_from_arrow` from its Arrow schemas (sources sit
below recording and never import it). Without plans, every value is checked by its Python
type alone (integers within int64, text encodable as UTF-8, lists of such values).

Cost: a type test and a comparison per field; text is checked with ``str.isascii`` first,
so only non-ASCII text pays for an encode.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from polyrl.events import Event

Check = Callable[[Any], "str | None"]
"""A value -> None when its column can hold it, else what is wrong (one phrase)."""

Column = tuple[str, bool, bool, Check, "type | None"]
"""(name, is an Event attribute (not a field), nullable, check, the Python type whose values
take the inlined fast path)."""

StoragePlan = tuple[Column, ...]
"""A stream's columns to check, in storage order."""

StoragePlans = Mapping[str, StoragePlan]
"""Stream id -> its storage plan."""

_EVENT_ATTRS = ("exch_ns", "key", "asset", "raw")
"""Stored columns that are Event attributes; ``recv_ns`` and ``seq`` come from our clock and
the writer, never from a venue, so they are not checked here."""

_INT_RANGES = {
    "int64": (-(2**63), 2**63 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int8": (-(2**7), 2**7 - 1),
}
_EXACT_FLOAT = 2**53  # Arrow refuses an int a double cannot hold exactly


def show(value: Any, limit: int = 60) -> str:
    """A short, ASCII-safe rendering of a value for a message."""
    if type(value) is str:
        text = json.dumps(value)  # escapes lone surrogates and control characters
    else:
        try:
            text = repr(value)
        except (ValueError, RecursionError):  # an int too long for repr, a deep list
            text = f"<{type(value).__name__}>"
    if len(text) > limit:
        text = f"{text[: limit - 20]}...({len(text)} chars)"
    return text


def utf8_problem(text: str) -> str | None:
    """None when ``text`` encodes as UTF-8, else where it does not (a lone surrogate)."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return (
            f"text UTF-8 cannot encode (lone surrogate {show(text[e.start : e.start + 1])} "
            f"at char {e.start})"
        )
    return None


def _int_check(kind: str) -> Check:
    lo, hi = _INT_RANGES[kind]

    def check(v: Any) -> str | None:
        t = type(v)
        if t is int:
            return None if lo <= v <= hi else f"{show(v)} is outside {kind}"
        if t is float and v.is_integer() and lo <= v <= hi:
            return None
        return f"{kind} column cannot hold {show(v)}"

    return check


def _float_check(v: Any) -> str | None:
    t = type(v)
    if t is float:
        return None
    if t is int and -_EXACT_FLOAT <= v <= _EXACT_FLOAT:
        return None
    return f"double column cannot hold {show(v)}"


def _str_check(v: Any) -> str | None:
    if type(v) is not str:
        return f"string column cannot hold {show(v)}"
    return utf8_problem(v)


def _bool_check(v: Any) -> str | None:
    return None if v is True or v is False else f"bool column cannot hold {show(v)}"


def _list_check(item: Check) -> Check:
    def check(v: Any) -> str | None:
        if type(v) is not list and type(v) is not tuple:
            return f"list column cannot hold {show(v)}"
        for i, x in enumerate(v):
            if type(x) is float:  # the usual case: parsed prices and sizes
                continue
            if x is None:  # a null element: Arrow's list items are nullable
                continue
            p = item(x)
            if p is not None:
                return f"element {i}: {p}"
        return None

    return check


def any_value_problem(v: Any, depth: int = 0) -> str | None:
    """The check used without a plan: by Python type alone."""
    t = type(v)
    if v is None or t is float or t is bool:
        return None
    if t is int:
        return None if -(2**63) <= v <= 2**63 - 1 else f"{show(v)} is outside int64"
    if t is str:
        return utf8_problem(v)
    if (t is list or t is tuple) and depth < 2:
        for i, x in enumerate(v):
            p = any_value_problem(x, depth + 1)
            if p is not None:
                return f"element {i}: {p}"
        return None
    return f"no column can hold {show(v)}"


def check_for_arrow_type(type_name: str) -> Check:
    """The check of a column from its Arrow type's string (``int64``, ``list<item: double>``).

    An Arrow type without a check here is a ValueError naming it (add it here first).
    """
    if type_name in _INT_RANGES:
        return _int_check(type_name)
    if type_name == "double":
        return _float_check
    if type_name == "string":
        return _str_check
    if type_name == "bool":
        return _bool_check
    if type_name.startswith("list<") and type_name.endswith(">"):
        inner = type_name[5:-1].split(":", 1)[-1].strip()
        return _list_check(check_for_arrow_type(inner))
    raise ValueError(f"no storability check for Arrow type {type_name!r}")


def plans_from_arrow(schemas: Mapping[str, Any]) -> dict[str, StoragePlan]:
    """Storage plans from Arrow schemas (``stream -> pyarrow.Schema``).

    Takes any objects iterable as fields with ``name``, ``type`` and ``nullable`` (a
    ``pyarrow.Schema``), so this module needs no pyarrow import. ``recv_ns``, ``seq`` and
    ``quality`` are left out: our clock, the writer and the parser's own checks set them, never
    a venue (see :data:`_EVENT_ATTRS`).
    """
    plans: dict[str, StoragePlan] = {}
    for stream, schema in schemas.items():
        plan = []
        for fld in schema:
            if fld.name in ("recv_ns", "seq", "quality"):
                continue
            type_name = str(fld.type)
            check = check_for_arrow_type(type_name)
            fast = _FAST_TYPES.get(type_name.split("<")[0])
            plan.append((fld.name, fld.name in _EVENT_ATTRS, bool(fld.nullable), check, fast))
        plans[stream] = tuple(plan)
    return plans


# The Python type a column's values nearly always have; a value of that type passes at once
# (an int64 still needs its range, a str needs to be ASCII, a list its items floats).
_FAST_TYPES: dict[str, type] = {"int64": int, "double": float, "string": str, "bool": bool}
_FAST_TYPES["list"] = list
_I64_MIN, _I64_MAX = _INT_RANGES["int64"]
_FLOATS = {float}


def event_problem(ev: Event, plan: StoragePlan | None) -> tuple[str, str] | None:
    """``(column, problem)`` of the first value of ``ev`` its column cannot hold, else None."""
    if plan is None:
        for name in _EVENT_ATTRS:
            p = any_value_problem(getattr(ev, name))
            if p is not None:
                return name, p
        for name, v in ev.fields.items():
            p = any_value_problem(v)
            if p is not None:
                return name, p
        return None
    fields = ev.fields
    for name, is_attr, nullable, check, fast in plan:
        v = getattr(ev, name) if is_attr else fields.get(name)
        if v is None:
            if nullable:
                continue
            return name, "missing (the column is not nullable)"
        t = type(v)
        if t is fast:  # the hot path: the usual case checked inline, no call
            if t is float or t is bool:
                continue
            if t is str:
                if v.isascii():
                    continue
            elif t is int:
                if _I64_MIN <= v <= _I64_MAX:
                    continue
            elif set(map(type, v)) <= _FLOATS:
                continue
        p = check(v)
        if p is not None:
            return name, p
    return None


def first_unstorable(events: Iterable[Event], plans: StoragePlans | None) -> tuple[str, str] | None:
    """``(stream, message naming the stream and field)`` of the first unstorable value."""
    for ev in events:
        plan = plans.get(ev.stream) if plans is not None else None
        if plans is not None and plan is None:
            return ev.stream, f"{ev.stream}: not a recorded stream"
        bad = event_problem(ev, plan)
        if bad is not None:
            return ev.stream, f"{ev.stream}: field {bad[0]!r}: {bad[1]}"
    return None
