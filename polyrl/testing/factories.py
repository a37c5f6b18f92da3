"""Valid events of any stream with plausible defaults, for tests and benchmarks.

``make_event("polymarket.trade", recv_ns, price=0.55)`` fills every typed field the caller
does not give with a value of the right Arrow type, so the event can be written by the
RecordingWriter and read back unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from polyrl.events import Event
from polyrl.recording.schema import spec


def default_value(tp: pa.DataType, i: int = 0) -> Any:
    """A deterministic non-null value of Arrow type ``tp`` (varies with ``i``)."""
    if pa.types.is_int8(tp):
        return 1 if i % 2 == 0 else -1
    if pa.types.is_integer(tp):
        return 1_000 + i
    if pa.types.is_floating(tp):
        return 0.5 + (i % 7) * 0.01
    if pa.types.is_boolean(tp):
        return i % 2 == 0
    if pa.types.is_string(tp):
        return f"v{i}"
    if pa.types.is_list(tp):
        return [default_value(tp.value_type, i + k) for k in range(3)]
    raise TypeError(f"no default for {tp}")


def make_event(
    stream: str,
    recv_ns: int,
    *,
    key: str = "BTCUSDT",
    asset: str | None = "btc",
    exch_ns: int | None = None,
    i: int = 0,
    **fields: Any,
) -> Event:
    """An event of ``stream`` received at ``recv_ns`` with defaults for unspecified fields."""
    s = spec(stream)
    values = {c.name: default_value(c.type, i) for c in s.columns}
    unknown = set(fields) - set(values)
    if unknown:
        raise KeyError(f"{stream} has no field(s) {sorted(unknown)}")
    values.update(fields)
    raw = json.dumps({"stream": stream, "i": i, "recv_ns": recv_ns}, separators=(",", ":"))
    return Event(
        stream=stream,
        recv_ns=recv_ns,
        exch_ns=exch_ns,
        key=key,
        asset=asset,
        fields=values,
        raw=raw,
    )
