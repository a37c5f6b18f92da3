"""Clocks. :class:`LiveClock` is the one place polyrl reads wall time.

Everything else takes time from a clock it is handed: the recorder stamps ``recv_ns`` with
``clock.now_ns()``, the Engine ticks on the clock's decision grid. In replay the clock is
virtual (see the replay module); live it is the wall clock — optionally offset and sped up
so that tests and demos against the loopback venue servers can live through a 15-minute
window roll in seconds while every component still believes it runs in real time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from polyrl.events import NS_PER_S


class Clock(Protocol):
    """Something that says what time it is, in ns since the epoch."""

    def now_ns(self) -> int: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockConfig:
    """The live clock (``[clock]``): the wall clock unless running against loopback venues.

    Two processes share an accelerated clock when they share all three values: virtual time
    = ``start + (wall time - anchor_real_ns) x speed`` (``polyrl simulate --serve`` writes
    them into the config it prints).
    """

    speed: float = 1.0
    """How many times faster than real time the clock runs."""
    start: str = ""
    """ISO time the clock reads at its anchor; empty = the wall clock."""
    anchor_real_ns: int = 0
    """Wall time (ns since the epoch) at which the clock reads ``start``; 0 = at start-up."""

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError("speed must be > 0")
        if self.start:
            from polyrl.events import iso_to_ns

            iso_to_ns(self.start)


class LiveClock:
    """Wall-clock time, optionally started at ``start_ns`` and running ``speed`` times faster.

    With the defaults it is exactly ``time.time_ns()``. With ``speed=60`` one real second is
    one virtual minute; ``start_ns`` pins the virtual time at construction (the venue servers
    and the recorder must share the same start and speed to agree on time).
    """

    def __init__(
        self,
        *,
        speed: float = 1.0,
        start_ns: int | None = None,
        anchor_real_ns: int | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be > 0")
        self.speed = speed
        self._real0 = time.time_ns() if anchor_real_ns is None else anchor_real_ns
        self._virt0 = self._real0 if start_ns is None else start_ns
        self._identity = speed == 1.0 and start_ns is None

    @classmethod
    def from_config(cls, cfg: ClockConfig) -> LiveClock:
        """The clock a ``[clock]`` section describes (the wall clock by default)."""
        if cfg.start == "":
            return cls(speed=cfg.speed)
        from polyrl.events import iso_to_ns

        return cls(
            speed=cfg.speed,
            start_ns=iso_to_ns(cfg.start),
            anchor_real_ns=cfg.anchor_real_ns if cfg.anchor_real_ns > 0 else None,
        )

    @property
    def anchor_real_ns(self) -> int:
        """The wall time (ns) at which the clock read its start."""
        return self._real0

    def now_ns(self) -> int:
        """Current (virtual) time, ns since the epoch."""
        real = time.time_ns()
        if self._identity:
            return real
        return self._virt0 + int((real - self._real0) * self.speed)

    def real_seconds(self, virtual_ns: int) -> float:
        """How many real seconds a virtual duration takes."""
        return virtual_ns / NS_PER_S / self.speed

    async def sleep(self, virtual_seconds: float) -> None:
        """Sleep for a virtual duration."""
        await asyncio.sleep(max(0.0, virtual_seconds / self.speed))

    async def sleep_until(self, t_ns: int) -> None:
        """Sleep until virtual time ``t_ns`` (returns at once if it has passed)."""
        delta = t_ns - self.now_ns()
        if delta > 0:
            await asyncio.sleep(delta / NS_PER_S / self.speed)

    def spin_until(self, t_ns: int) -> None:
        """Busy-wait until virtual time ``t_ns`` (for the last few milliseconds before a
        tick, where a timer's wake-up jitter would be most of the latency)."""
        while self.now_ns() < t_ns:
            pass

    @staticmethod
    def monotonic_s() -> float:
        """A monotonic real-time reading for measuring durations (latency, rates)."""
        return time.perf_counter()


def next_grid_ns(t_ns: int, interval_ns: int) -> int:
    """The first grid point strictly after ``t_ns`` on the grid of multiples of ``interval_ns``."""
    return (t_ns // interval_ns + 1) * interval_ns


class ReplayClock:
    """Virtual time for replay: the decision ticks a live clock would have emitted.

    Ticks lie on the grid of multiples of ``interval_ns`` (the wall-clock grid live mode
    uses), from the first grid point at or after the first event (or ``start_ns``) to the
    last event (or ``end_ns``). :meth:`drive` interleaves them with the recording's merged
    batches so that a tick is handed out only once every event received at or before it has
    been: the consumer ingests each batch, then observes that batch's ticks. With
    ``lookahead_ns`` (the fill latency) tick t waits until every event received at or before
    t + lookahead has been handed out, so the books at t + latency do not depend on how the
    recording is batched.
    """

    def __init__(
        self,
        interval_ns: int,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        lookahead_ns: int = 0,
    ) -> None:
        if interval_ns <= 0:
            raise ValueError("tick interval must be > 0")
        if lookahead_ns < 0:
            raise ValueError("lookahead must be >= 0")
        self.interval_ns = interval_ns
        self.lookahead_ns = lookahead_ns
        self.start_ns = start_ns
        self.end_ns = end_ns

    def drive(self, batches):
        """Yield ``(batch, ticks)``: after ingesting ``batch``, observe ``ticks`` (int64 [k],
        possibly empty); every event with ``recv_ns <= tick + lookahead`` has been yielded by
        then (after the last batch, every remaining tick up to the last event)."""
        import numpy as np

        iv = self.interval_ns
        it = iter(batches)
        cur = next(it, None)
        nxt = next(it, None)
        next_tick: int | None = None
        while cur is not None:
            if len(cur) == 0:
                cur, nxt = nxt, next(it, None)
                continue
            if next_tick is None:
                first = int(cur.recv_ns[0]) if self.start_ns is None else self.start_ns
                next_tick = -(-first // iv) * iv
            # Ticks strictly before the next batch's first event are complete now.
            limit = (
                int(nxt.recv_ns[0]) - 1 - self.lookahead_ns
                if nxt is not None and len(nxt)
                else int(cur.recv_ns[-1])
            )
            if nxt is None and self.end_ns is not None:
                limit = max(limit, self.end_ns)
            if self.end_ns is not None:
                limit = min(limit, self.end_ns)
            if next_tick <= limit:
                ticks = np.arange(next_tick, limit + 1, iv, dtype=np.int64)
                next_tick = int(ticks[-1]) + iv
            else:
                ticks = np.empty(0, dtype=np.int64)
            yield cur, ticks
            cur, nxt = nxt, next(it, None)
