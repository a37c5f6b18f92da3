"""The clock-aware frame feed: frames of a content source handed out at their ``recv_ns``.

A producer thread iterates the source (simulator or recording) and queues frames in small
batches a bounded distance ahead, so generating the next 5-minute simulator chunk never
blocks the event loop and memory stays bounded (``ahead`` batches of ``batch`` frames plus
whatever the source holds). :meth:`FrameFeed.pump` dispatches, synchronously and in order,
every queued frame with ``recv_ns <= clock.now_ns()``; :meth:`FrameFeed.run` calls it as each
frame falls due. Servers catch the feed up (``VenueServers.sync``: wait for the producer,
then ``pump``) right before they answer anything that depends on state (a CLOB snapshot, a
REST book), so an answer at time ``t`` reflects exactly the frames with ``recv_ns <= t``.

If the source cannot keep up with the clock (too high a speed), frames are dispatched late,
in order; :attr:`FrameFeed.lag_ns` says how late the last one was.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from polyrl.events import NS_PER_S, Frame


class SpeedClock(Protocol):
    """A clock whose virtual time runs ``speed`` times faster than real time."""

    speed: float

    def now_ns(self) -> int: ...


_END = object()


class FrameFeed:
    """Dispatches the frames of ``frames`` at their receive times on ``clock``."""

    def __init__(
        self,
        frames: Iterable[Frame],
        clock: SpeedClock,
        dispatch: Callable[[Frame], None],
        *,
        batch: int = 512,
        ahead: int = 64,
    ) -> None:
        self.clock = clock
        self.dispatch = dispatch
        self.lag_ns = 0
        """How late (server time) the most recently dispatched frame went out, ns."""
        self.dispatched = 0
        """Frames dispatched so far."""
        self.exhausted = False
        """True once every frame of the source has been dispatched."""
        self._frames = frames
        self._batch = batch
        self._q: queue.Queue[list[Frame] | object] = queue.Queue(maxsize=ahead)
        self._cur: list[Frame] = []
        self._i = 0
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._produce, name="polyrl-feed", daemon=True)
        self._started = False

    # -- producer thread ------------------------------------------------------------------

    def _put(self, item: list[Frame] | object) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        buf: list[Frame] = []
        try:
            for f in self._frames:
                buf.append(f)
                if len(buf) >= self._batch:
                    if not self._put(buf):
                        return
                    buf = []
            if buf and not self._put(buf):
                return
        except BaseException as e:  # noqa: BLE001 - handed to the event loop side
            self._error = e
        self._put(_END)

    def start(self) -> None:
        """Start producing (idempotent)."""
        if not self._started:
            self._started = True
            self._thread.start()

    def close(self) -> None:
        """Stop the producer thread (frames not yet dispatched are dropped)."""
        self._stop.set()
        if self._started:
            self._thread.join(timeout=5.0)

    # -- dispatch ---------------------------------------------------------------------------

    def _refill(self) -> bool:
        """Make a frame available at ``self._i``; False when none is ready yet (or ever)."""
        while self._i >= len(self._cur):
            if self.exhausted:
                return False
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                return False
            if item is _END:
                self.exhausted = True
                if self._error is not None:
                    err, self._error = self._error, None
                    raise RuntimeError(f"venue content source failed: {err!r}") from err
                return False
            assert isinstance(item, list)
            self._cur, self._i = item, 0
        return True

    def next_due_ns(self) -> int | None:
        """Receive time of the next frame if one is ready, else None."""
        if not self._refill():
            return None
        return self._cur[self._i].recv_ns

    def caught_up(self, now_ns: int) -> bool:
        """True when no frame due by ``now_ns`` can still be pending: the next ready frame is
        later, or the source is exhausted (call after ``pump(now_ns)``)."""
        due = self.next_due_ns()
        return self.exhausted or (due is not None and due > now_ns)

    def pump(self, now_ns: int | None = None, limit: int | None = None) -> int:
        """Dispatch ready frames with ``recv_ns <= now`` in order (at most ``limit``);
        returns how many."""
        now = self.clock.now_ns() if now_ns is None else now_ns
        n = 0
        last = now
        while (limit is None or n < limit) and self._refill():
            f = self._cur[self._i]
            if f.recv_ns > now:
                break
            self._i += 1
            last = f.recv_ns
            self.dispatch(f)
            n += 1
        if n:
            self.lag_ns = max(0, now - last)
            self.dispatched += n
        return n

    async def run(self, max_burst: int = 20_000) -> None:
        """Dispatch frames as they fall due until cancelled.

        Sleeps in real time until the next frame's receive time (capped at 0.25 s real so
        a producer that was behind is picked up promptly); yields to the loop after each
        burst so sockets keep moving even when far behind.
        """
        self.start()
        speed = self.clock.speed
        while True:
            now = self.clock.now_ns()
            self.pump(now, max_burst)
            due = self.next_due_ns()
            if due is None:
                await asyncio.sleep(0.002 if not self.exhausted else 0.25)
            elif due > now:
                await asyncio.sleep(min((due - now) / NS_PER_S / speed, 0.25))
            else:
                await asyncio.sleep(0)
