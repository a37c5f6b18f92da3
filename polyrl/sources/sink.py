"""The contract between a source adapter and what it feeds: :class:`FrameSink` (where an
adapter hands each frame it receives, stamped with ``recv_ns``) and :class:`SourceAdapter`
(one venue connection or poller).

Defined here, on the sources' side, because the adapters are what the contract describes;
the Recorder (:mod:`polyrl.recording.recorder`) and live trading implement or drive it.
"""

from __future__ import annotations

from typing import Protocol

from polyrl.clock import LiveClock
from polyrl.events import Frame


class FrameSink(Protocol):
    """What a source adapter hands its frames to (the Recorder)."""

    clock: LiveClock

    def emit(self, frame: Frame) -> None: ...

    def answered(self, channel: str) -> None:
        """The venue answered on ``channel`` without a frame to record (a REST 200 whose
        body is not kept): it is reachable."""
        ...


class SourceAdapter(Protocol):
    """One venue connection or poller; runs until cancelled, never raises on bad data."""

    name: str
    """The channel it opens: the recorder expects the venue to answer on it."""

    async def run(self, sink: FrameSink) -> None: ...
