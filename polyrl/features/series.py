"""Append-only time series with as-of lookups (pure numpy).

A :class:`Series` holds rows in nondecreasing time order (receive time, ns) with any number
of float64 columns. Rows are appended in chunks (amortised growth) and old rows are trimmed
once no query can reach them. Lookups are vectorised over many query times at once, which
is what makes replay fast: every feature is an as-of query at the decision ticks.
"""

from __future__ import annotations

import numpy as np


class Series:
    """Time-ordered rows: ``t`` int64 [n] and columns float64 [k, n]."""

    __slots__ = ("_t", "_v", "_n", "names")

    def __init__(self, *names: str, capacity: int = 1024) -> None:
        self.names = names
        self._t = np.empty(capacity, dtype=np.int64)
        self._v = np.empty((len(names), capacity), dtype=np.float64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def t(self) -> np.ndarray:
        """Row times [n] (a view)."""
        return self._t[: self._n]

    def col(self, name: str) -> np.ndarray:
        """One column [n] (a view)."""
        return self._v[self.names.index(name), : self._n]

    def append(self, t: np.ndarray, *cols: np.ndarray) -> None:
        """Append rows (times must not go back before the last row)."""
        m = int(t.shape[0])
        if m == 0:
            return
        need = self._n + m
        if need > self._t.shape[0]:
            cap = max(need, 2 * self._t.shape[0])
            t2 = np.empty(cap, dtype=np.int64)
            t2[: self._n] = self._t[: self._n]
            v2 = np.empty((len(self.names), cap), dtype=np.float64)
            v2[:, : self._n] = self._v[:, : self._n]
            self._t, self._v = t2, v2
        self._t[self._n : need] = t
        for i, c in enumerate(cols):
            self._v[i, self._n : need] = c
        self._n = need

    def last(self, name: str) -> float:
        """The last value of a column (NaN when empty)."""
        return float(self._v[self.names.index(name), self._n - 1]) if self._n else float("nan")

    def asof(self, q: np.ndarray) -> np.ndarray:
        """Index of the last row with time <= q, per query; -1 where there is none."""
        return np.searchsorted(self.t, q, side="right") - 1

    def age(self, q: np.ndarray) -> np.ndarray:
        """ns from the last row at or before each query time to it (huge where none)."""
        i = self.asof(q)
        if self._n == 0:
            return np.full(q.shape, np.iinfo(np.int64).max)
        return np.where(i >= 0, q - self.t[np.maximum(i, 0)], np.iinfo(np.int64).max)

    def value_asof(self, name: str, q: np.ndarray, default: float = np.nan) -> np.ndarray:
        """Column value as of each query time (``default`` before the first row)."""
        i = self.asof(q)
        out = np.full(q.shape, default, dtype=np.float64)
        ok = i >= 0
        out[ok] = self.col(name)[i[ok]]
        return out

    def lookup(self, *qs: np.ndarray) -> AsOf:
        """As-of lookups of several query arrays (same length) with one search."""
        return AsOf(self, qs)

    def cum_asof(self, name: str, q: np.ndarray) -> np.ndarray:
        """A cumulative column as of each query time (0 before the first row)."""
        return self.value_asof(name, q, default=0.0)

    def first_time(self) -> int | None:
        """Time of the first row still held."""
        return int(self._t[0]) if self._n else None

    def trim_before(self, t_keep: int) -> None:
        """Drop rows older than the last row at or before ``t_keep`` (that one is kept, so
        as-of lookups at ``t_keep`` and later are unchanged)."""
        i = int(np.searchsorted(self.t, t_keep, side="right")) - 1
        if i <= 0:
            return
        k = self._n - i
        self._t[:k] = self._t[i : self._n]
        self._v[:, :k] = self._v[:, i : self._n]
        self._n = k


class AsOf:
    """The rows of a :class:`Series` as of the times of ``k`` query arrays of length ``n``
    (one search for all): :meth:`value` and :meth:`age` give block ``k`` of the answers,
    equal to :meth:`Series.value_asof` and :meth:`Series.age` of that query array."""

    __slots__ = ("s", "n", "q", "ok", "ii")

    def __init__(self, s: Series, qs: tuple[np.ndarray, ...]) -> None:
        self.s = s
        self.n = int(qs[0].shape[0])
        self.q = np.concatenate(qs) if len(qs) > 1 else qs[0]
        i = s.asof(self.q)
        self.ok = i >= 0
        self.ii = np.maximum(i, 0)

    def value(self, name: str, k: int = 0, default: float = np.nan) -> np.ndarray:
        sl = slice(k * self.n, (k + 1) * self.n)
        if len(self.s) == 0:
            return np.full(self.n, default, dtype=np.float64)
        return np.where(self.ok[sl], self.s.col(name)[self.ii[sl]], default)

    def cum(self, name: str, k: int = 0) -> np.ndarray:
        return self.value(name, k, default=0.0)

    def age(self, k: int = 0) -> np.ndarray:
        sl = slice(k * self.n, (k + 1) * self.n)
        big = np.iinfo(np.int64).max
        if len(self.s) == 0:
            return np.full(self.n, big)
        return np.where(self.ok[sl], self.q[sl] - self.s.t[self.ii[sl]], big)


class Grid:
    """Values on a regular grid of absolute indices (seconds or minutes since the epoch).

    ``values[j]`` belongs to index ``start + j``. Appends are amortised; :meth:`trim` drops
    indices no longer needed. Used for per-second and per-minute sampled log prices and the
    running sums of their squared returns.
    """

    __slots__ = ("start", "_v", "_n", "k")

    def __init__(self, k: int = 1, capacity: int = 4096) -> None:
        self.start: int | None = None
        self.k = k
        self._v = np.empty((k, capacity), dtype=np.float64)
        self._n = 0

    @property
    def end(self) -> int:
        """One past the last index held (``start`` when empty)."""
        return (self.start or 0) + self._n

    def __len__(self) -> int:
        return self._n

    def values(self, row: int = 0) -> np.ndarray:
        return self._v[row, : self._n]

    def extend(self, start: int, *rows: np.ndarray) -> None:
        """Append values for indices ``start, start+1, ...`` (``start`` must be ``end``)."""
        m = int(rows[0].shape[0])
        if self.start is None:
            self.start = start
        elif start != self.end:
            raise ValueError(f"grid gap: extending at {start}, end is {self.end}")
        need = self._n + m
        if need > self._v.shape[1]:
            v2 = np.empty((self.k, max(need, 2 * self._v.shape[1])), dtype=np.float64)
            v2[:, : self._n] = self._v[:, : self._n]
            self._v = v2
        for i, r in enumerate(rows):
            self._v[i, self._n : need] = r
        self._n = need

    def at(self, idx: np.ndarray, row: int = 0) -> np.ndarray:
        """Values at absolute indices (NaN outside what is held)."""
        out = np.full(idx.shape, np.nan)
        if self.start is None:
            return out
        j = idx - self.start
        ok = (j >= 0) & (j < self._n)
        out[ok] = self._v[row, j[ok]]
        return out

    def trim(self, keep_from: int) -> None:
        """Drop indices before ``keep_from``."""
        if self.start is None or keep_from <= self.start:
            return
        d = min(keep_from - self.start, self._n)
        self._v[:, : self._n - d] = self._v[:, d : self._n]
        self._n -= d
        self.start += d
