"""Helpers over the store's flat list columns (:class:`polyrl.recording.columns.StreamCols`)
that the feature code shares."""

from __future__ import annotations

import numpy as np


def head_sums(values: np.ndarray, offsets: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a flat list column: (first value, sum of the first ``k`` values); 0 for an
    empty row. Sums run left to right within each row, whatever the batch."""
    n = offsets.shape[0] - 1
    lengths = np.diff(offsets)
    first = np.zeros(n)
    nonempty = lengths > 0
    first[nonempty] = values[offsets[:-1][nonempty]]
    total = np.zeros(n)
    for j in range(k):
        has = lengths > j
        total[has] += values[offsets[:-1][has] + j]
    return first, total
