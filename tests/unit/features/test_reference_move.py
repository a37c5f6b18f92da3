"""ref_move's opening price: found among the reference ticks received by the tick, only."""

from __future__ import annotations

import math

import numpy as np

from polyrl.events import NS_PER_S
from polyrl.features.history import AssetHistory
from polyrl.recording.columns import StreamCols
from polyrl.testing.factories import make_event

S = NS_PER_S
WS = 1_717_200_000 * S  # a window start (2024-06-01T00:00:00Z)


def _ref(recv_ns: int, exch_ns: int, value: float, i: int) -> object:
    return make_event(
        "reference.price", recv_ns, key="btc/usd", exch_ns=exch_ns, i=i, value=value,
        backfill=False, topic="crypto_prices_chainlink",
    )  # fmt: skip


def _history(ticks: list[tuple[int, int, float]]) -> AssetHistory:
    """An asset history fed ``(recv_ns, exch_ns, value)`` reference ticks in one batch."""
    h = AssetHistory()
    evs = [_ref(r, x, v, i) for i, (r, x, v) in enumerate(ticks)]
    c = StreamCols.of_events(evs)  # type: ignore[arg-type]
    h.add_reference(c, np.arange(len(evs)))
    return h


def _move(h: AssetHistory, q: int) -> float:
    out = h.ref_move(np.array([q]), np.array([WS]), np.array([True]))
    return float(out[0])


# The tick stamped at the start (100.0) arrives 1.0 s after it; a tick stamped 1 s before the
# start (98.02, ln(100 / 98.02) = 0.0200) arrives late, 1.2 s after the start.
AT_START = (WS + 1_000_000_000, WS, 100.0)
LATE_BEFORE = (WS + 1_200_000_000, WS - S, 98.02)


def test_a_late_tick_received_after_the_tick_is_not_the_opening_price() -> None:
    """At 1.1 s the open is the tick stamped at the start (the only one received that says
    anything about the start): ref_move is ln(100 / 100) = 0, whether or not the late tick
    is already in the engine's memory (replay batches hold events beyond the tick)."""
    q = WS + 1_100_000_000
    assert _move(_history([AT_START]), q) == 0.0
    assert _move(_history([AT_START, LATE_BEFORE]), q) == 0.0


def test_a_late_tick_moves_neither_the_open_nor_the_current_price() -> None:
    """Once the late tick is received it is still stamped before the tick stamped at the
    start: the open stays 100, and so does R(t) (the tick stamped last): ref_move 0."""
    h = _history([AT_START, LATE_BEFORE])
    assert _move(h, WS + 2 * S) == 0.0
    later = _history([AT_START, LATE_BEFORE, (WS + 2 * S, WS + S, 101.0)])
    assert math.isclose(_move(later, WS + 2 * S), math.log(101.0 / 100.0))


def test_in_order_ticks_open_at_the_last_tick_stamped_at_or_before_the_start() -> None:
    h = _history(
        [
            (WS - 2 * S + 500_000_000, WS - 2 * S, 99.0),
            (WS - S + 500_000_000, WS - S, 99.5),
            (WS + 500_000_000, WS + 100_000_000, 101.0),
        ]
    )
    # Before a tick stamped at or after the start is received the open is unknown.
    assert math.isnan(_move(h, WS + 400_000_000))
    assert math.isclose(_move(h, WS + S), math.log(101.0 / 99.5))


def test_a_duplicate_of_the_opening_tick_changes_nothing() -> None:
    h = _history(
        [
            (WS - S + 500_000_000, WS - S, 99.5),
            (WS + 500_000_000, WS + 100_000_000, 101.0),
            (WS + 600_000_000, WS - S, 99.5),  # the same tick again, late
        ]
    )
    assert math.isclose(_move(h, WS + 550_000_000), math.log(101.0 / 99.5))
    assert math.isclose(_move(h, WS + S), math.log(101.0 / 99.5))
