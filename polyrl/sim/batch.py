"""A batch of frames of one stream, before the chunk's merge into receive-time order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

NO_REQUEST: Mapping[str, str] = MappingProxyType({})
"""The (shared, read-only) request of every WebSocket frame."""


@dataclass(slots=True)
class Batch:
    """Frames of one stream in one chunk, in the order they were sent on their connection.

    ``vt`` is the venue send time (ns) that the receive time was derived from, ``recv`` the
    receive time (ns, nondecreasing within one connection), ``rank`` breaks receive-time ties
    between streams (lower first), and ``requests`` is one mapping per frame (REST frames) or
    None (no request: WebSocket frames).
    """

    channel: str
    rank: int
    vt: np.ndarray
    recv: np.ndarray
    texts: list[str]
    requests: Sequence[Mapping[str, str]] | None = None

    def __post_init__(self) -> None:
        n = len(self.texts)
        if self.vt.shape != (n,) or self.recv.shape != (n,):
            raise ValueError(f"batch {self.channel}/{self.rank}: arrays do not match {n} texts")
        if self.requests is not None and len(self.requests) != n:
            raise ValueError(f"batch {self.channel}/{self.rank}: {len(self.requests)} requests")

    def keep(self, mask: np.ndarray) -> Batch:
        """The frames where ``mask`` is true."""
        idx = np.flatnonzero(mask)
        if idx.size == len(self.texts):
            return self
        reqs = None if self.requests is None else [self.requests[i] for i in idx.tolist()]
        return Batch(
            self.channel,
            self.rank,
            self.vt[idx],
            self.recv[idx],
            [self.texts[i] for i in idx.tolist()],
            reqs,
        )
