"""The book sides read from flat buffers (:func:`_side_frame_flat`) give exactly the frame of
the exploded reading, on sides in the wire's order, unsorted, with equal prices, empty and
missing; a side outside the plain shape is left to the exploded reading."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from polyrl.importers import pmxt_book as pb


def _text(px: list[float], sz: list[float]) -> str:
    return json.dumps([[f"{p:g}", f"{s:g}"] for p, s in zip(px, sz, strict=True)])


def _frame(texts: list[str | None]) -> pl.DataFrame:
    return pl.DataFrame({"bids": texts, "asks": texts}, schema={"bids": pl.String,
                                                                "asks": pl.String})  # fmt: skip


def _sides() -> list[str | None]:
    rng = np.random.default_rng(3)
    out: list[str | None] = [None, "[]"]
    for i in range(300):
        k = int(rng.integers(1, 12))
        px = np.round(np.sort(rng.uniform(0.01, 1.2, k)), 2)  # best last for bids...
        sz = np.round(rng.uniform(0.5, 500, k), 2)
        if i % 3 == 1:
            px = px[::-1]  # ...best last for asks
        elif i % 3 == 2:
            px = np.round(rng.choice([0.3, 0.31, 0.5], k), 2)  # unsorted, equal prices
        out.append(_text(list(px), list(sz)))
    return out


@pytest.mark.parametrize("bids", [True, False])
def test_flat_sides_equal_the_exploded_reading(bids):
    df = _frame(_sides())
    col = "bids" if bids else "asks"
    flat = pb._side_frame_flat(df, col, bids=bids)
    assert flat is not None
    exploded = pb._side_frame_exploded(df, col, bids=bids)
    assert exploded is not None
    assert flat.equals(exploded)
    assert flat.height == 300  # the null and the empty side have no levels


@pytest.mark.parametrize(
    "odd",
    ['[["0.5","0"]]', '[["0","1"]]', '[["0.5"]]', '[null]', '[["0.5",null]]', '[["1e999","1"]]',
     '[["x","1"]]', '[{"price":"0.5","size":"1"}]'],
)  # fmt: skip
def test_a_side_outside_the_plain_shape_is_left_to_the_exploded_reading(odd):
    df = _frame([_text([0.4, 0.5], [1.0, 2.0]), odd])
    assert pb._side_frame_flat(df, "bids", bids=True) is None
    # ... and the side reading as a whole gives what the exploded one gives (a frame, None,
    # or polars' error, which the book reading turns into the row-by-row path).
    got, want = _outcome(pb._side_frame, df), _outcome(pb._side_frame_exploded, df)
    assert got == want if isinstance(want, str) or want is None else want.equals(got)


def _outcome(fn, df: pl.DataFrame) -> pl.DataFrame | str | None:
    try:
        return fn(df, "bids", bids=True)
    except pl.exceptions.PolarsError as e:
        return type(e).__name__
