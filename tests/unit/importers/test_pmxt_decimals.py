"""PMXT decimals -> float64 without text: the same doubles as parsing their decimal text."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pyarrow as pa

from polyrl.importers.pmxt_decimal import decimal_floats

LIMIT = 1 << 53


def through_text(arr: pa.Array | pa.ChunkedArray) -> list[float | None]:
    """The reference: each value's decimal text parsed by Python (correctly rounded)."""
    return [None if v is None else float(str(v)) for v in arr.to_pylist()]


def same(got: pa.Array, want: list[float | None]) -> bool:
    g = got.to_pylist()
    return len(g) == len(want) and all(
        (a is None and b is None) or (a is not None and b is not None and a.hex() == b.hex())
        for a, b in zip(g, want, strict=True)
    )


def unscaled(ns: list[int], p: int, s: int, nulls: list[int] = ()) -> pa.Array:
    q = Decimal(1).scaleb(-s)
    vals = [None if i in nulls else Decimal(n).scaleb(-s).quantize(q) for i, n in enumerate(ns)]
    return pa.array(vals, pa.decimal128(p, s))


def test_random_and_edge_values_match_their_text_exactly():
    rng = np.random.default_rng(7)
    for p, s in ((18, 6), (9, 4)):
        top = 10**p - 1
        edge = [0, 1, -1, 2, 10**s, -(10**s), top, -top, LIMIT - 1, -(LIMIT - 1)]
        edge = [n for n in edge if abs(n) <= top]
        small = [int(x) for x in rng.integers(-(10**s) * 1000, 10**s * 1000, 20_000)]
        steps = list(range(0, 5 * 10**4))  # consecutive 10**-s steps
        wide = [int(x) for x in rng.integers(-min(top, LIMIT - 1), min(top, LIMIT - 1), 20_000)]
        ns = edge + small + steps + wide
        arr = unscaled(ns, p, s, nulls=[3, 500, len(ns) - 1])
        assert same(decimal_floats(arr), through_text(arr)), (p, s)
        # the text path of the Arrow cast the converter used gives the same doubles
        assert decimal_floats(arr).equals(arr.cast(pa.string()).cast(pa.float64()))


def test_slices_and_chunks_read_the_right_values():
    arr = unscaled(list(range(-50, 50)), 18, 6, nulls=[10, 60])
    sliced = arr.slice(7, 40)
    assert same(decimal_floats(sliced), through_text(sliced))
    chunked = pa.chunked_array([arr.slice(0, 30), arr.slice(30)])
    assert same(decimal_floats(chunked), through_text(chunked))
    assert len(decimal_floats(arr.slice(0, 0))) == 0


def test_values_beyond_two_to_the_53_take_the_text_path_and_stay_exact():
    # 2**53 + 1 is not a double: dividing its rounded double would be off; the text is not.
    ns = [LIMIT + 1, 10**18 - 1, -(10**18 - 1), 123]
    for arr in (unscaled(ns, 18, 6), unscaled(ns, 18, 0)):
        got = decimal_floats(arr)
        assert same(got, through_text(arr))
    assert decimal_floats(unscaled(ns, 18, 0)).to_pylist()[0] == float(LIMIT + 1)
