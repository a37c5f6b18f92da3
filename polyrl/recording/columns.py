"""A batch's rows of one stream as numpy columns, from a polars frame or from live events.

The store hands its readers this view (:attr:`polyrl.recording.reader.MergedBatch.columns`);
it lives here, with the store that defines the columns, not with its first consumer. The
FeatureEngine ingests replay batches (polars frames read from Parquet) and live
batches (a tick's worth of parsed events) through this one interface, so both paths run
the same numpy code on the same values: numbers as float64/int64 arrays (nulls filled with
the value the caller names), strings and booleans as arrays, list columns (book levels) as
flat values plus row offsets. Converting a polars column costs one call; building from a
few hundred events costs microseconds, which keeps a live tick far below its budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from polyrl.events import Event


class StreamCols:
    """Columns of ``n`` rows of one stream (see the module doc)."""

    __slots__ = ("n", "_df", "_rows", "_cache")

    def __init__(self, n: int, df: pl.DataFrame | None, rows: Sequence[Event] | None) -> None:
        self.n = n
        self._df = df
        self._rows = rows
        self._cache: dict[tuple[str, object, object], Any] = {}

    @classmethod
    def of_frame(cls, df: pl.DataFrame) -> StreamCols:
        return cls(df.height, df, None)

    @classmethod
    def of_events(cls, events: Sequence[Event]) -> StreamCols:
        return cls(len(events), None, events)

    def _values(self, name: str) -> list[Any]:
        rows = self._rows
        assert rows is not None
        if name == "recv_ns":
            return [e.recv_ns for e in rows]
        if name == "seq":
            return [e.seq for e in rows]
        if name == "exch_ns":
            return [e.exch_ns for e in rows]
        if name == "key":
            return [e.key for e in rows]
        if name == "asset":
            return [e.asset for e in rows]
        if name == "quality":
            return [e.quality for e in rows]
        return [e.fields[name] for e in rows]

    def num(
        self, name: str, dtype: type = np.float64, fill: float | int | None = None
    ) -> np.ndarray:
        """A numeric column; nulls become ``fill`` (they must not occur when it is None)."""
        key = (name, dtype, fill)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        out: np.ndarray
        if self._df is not None:
            s = self._df[name]
            if fill is not None and s.null_count():
                s = s.fill_null(fill)
            out = s.to_numpy().astype(dtype, copy=False)
        else:
            vals = self._values(name)
            if fill is not None:
                vals = [fill if v is None else v for v in vals]
            out = np.array(vals, dtype=dtype)
        self._cache[key] = out
        return out

    def lists(self, names: Sequence[str]) -> dict[str, list[Any]]:
        """Columns as Python lists (for the sequential Polymarket log)."""
        if self._df is not None:
            return {n: self._df[n].to_list() for n in names}
        return {n: self._values(n) for n in names}

    def obj(self, name: str) -> np.ndarray:
        """A string/boolean column as an array (None for nulls)."""
        key = (name, "obj", None)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if self._df is not None:
            out = self._df[name].to_numpy()
        else:
            out = np.array(self._values(name), dtype=object)
        self._cache[key] = out
        return out

    def flat(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """A list column as (values float64 [sum of lengths], offsets int64 [n + 1])."""
        key = (name, "flat", None)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if self._df is not None:
            s = self._df[name]
            lengths = s.list.len().fill_null(0).to_numpy().astype(np.int64)
            values = s.explode().drop_nulls().to_numpy().astype(np.float64)
        else:
            lists = self._values(name)
            lengths = np.array([len(x) for x in lists], dtype=np.int64)
            values = np.array([v for x in lists for v in x], dtype=np.float64)
        offsets = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        out = (values, offsets)
        self._cache[key] = out
        return out
