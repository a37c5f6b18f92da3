"""The archive's ``decimal128`` columns as float64, each value the double nearest its exact
decimal value (what the live parser gets from the wire's decimal text)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_EXACT = 1 << 53  # below it an unscaled decimal integer is an exact double


def decimal_floats(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A ``decimal128(p, s)`` column as float64: each value the double nearest its exact
    decimal value (null stays null), the value its decimal text parses to.

    A value is an unscaled integer ``n`` over ``10**s``. When every ``|n| < 2**53`` both are
    exact doubles and one IEEE division is correctly rounded, so ``n / 10**s`` *is* the
    nearest double: read from the 16-byte little-endian buffer, no text. A column holding a
    larger ``n`` goes through its decimal text instead.
    """
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    typ = arr.type
    if not pa.types.is_decimal128(typ) or not 0 <= typ.scale <= 22 or len(arr) == 0:
        return arr.cast(pa.string()).cast(pa.float64())
    words = np.frombuffer(arr.buffers()[1], dtype="<i8")
    words = words[2 * arr.offset : 2 * (arr.offset + len(arr))].reshape(-1, 2)
    lo, hi = words[:, 0], words[:, 1]
    valid = (
        np.ones(len(arr), dtype=bool)
        if arr.null_count == 0
        else arr.is_valid().to_numpy(zero_copy_only=False)
    )
    fits = (hi == (lo >> 63)) & (lo > -_EXACT) & (lo < _EXACT)
    if not fits[valid].all():
        return arr.cast(pa.string()).cast(pa.float64())
    values = lo.astype(np.float64) / float(10**typ.scale)
    return pa.array(values, pa.float64(), mask=None if arr.null_count == 0 else ~valid)
