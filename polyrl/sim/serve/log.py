"""What the loopback venue servers sent: one :class:`ConnectionLog` per WebSocket connection,
one :class:`HttpExchange` per REST request.

Times are venue (server clock) times in ns. A WebSocket log holds every text frame the
server wrote on the connection, in write order, including replies (``SUBSCRIBE`` results,
``PONG``) and snapshots (CLOB initial books, RTDS backfill), each tagged with its
:data:`FrameKind`. Protocol-level ping/pong frames are counted, not listed.

``SentFrame.delivered`` is what a test compares against what its client received: True when
the frame was written while the connection was open and was not still sitting in the
server's write buffer when a fault cut the connection abruptly (those bytes never leave the
machine). So, for a client that reads until the connection ends::

    received == [f.text for f in log.frames if f.delivered]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FrameKind = Literal["data", "snapshot", "reply", "pong"]
"""``data``: a venue frame from the content feed; ``snapshot``: made for this connection on
subscribe (CLOB books, RTDS backfill); ``reply``: an answer to a control message; ``pong``: the
text ``PONG`` answering a text ``PING``."""

CloseReason = Literal[
    "client",
    "fault_drop",
    "ping_timeout",
    "idle_timeout",
    "max_age",
    "slow_consumer",
    "server_stop",
    "span_end",
    "auth_failed",
    "policy_violation",
]


@dataclass(slots=True)
class SentFrame:
    """One text frame written on a connection."""

    t_ns: int
    """Server clock time when it was written, ns."""
    text: str
    """Exactly the text sent (after any injected corruption)."""
    kind: FrameKind
    due_ns: int
    """Server time the frame stands for: a feed frame's ``recv_ns`` (when it fell due), the
    instant a snapshot's state was taken (it reflects every feed frame due by then), or when
    the request a reply answers was handled, ns."""
    corrupted: bool = False
    """True when a ``malformed`` fault replaced the text with a truncated/garbled one."""
    delivered: bool = True
    """Written while open and not lost in the write buffer of an abrupt close."""


@dataclass(slots=True)
class ConnectionLog:
    """One WebSocket connection's life and everything the server sent on it."""

    server: str
    conn_id: int
    """1, 2, ... per server, in accept order."""
    path: str
    """Request path with query, as the client sent it."""
    opened_ns: int
    closed_ns: int | None = None
    close_reason: CloseReason | None = None
    frames: list[SentFrame] = field(default_factory=list)
    received: list[tuple[int, str]] = field(default_factory=list)
    """Text messages the client sent: (server time ns, text)."""
    stalled_frames: int = 0
    """Frames not sent because the server was stalled (a stall sends nothing)."""
    pings: int = 0
    """Protocol-level pings the server sent."""

    @property
    def open(self) -> bool:
        """True until the connection has closed."""
        return self.closed_ns is None

    def delivered(self, kinds: tuple[FrameKind, ...] | None = None) -> list[str]:
        """Texts of the delivered frames in order (optionally only of some kinds)."""
        return [f.text for f in self.frames if f.delivered and (kinds is None or f.kind in kinds)]


@dataclass(frozen=True, slots=True)
class HttpExchange:
    """One REST request and the answer the server gave."""

    t_ns: int
    method: str
    target: str
    """Path with query, as requested."""
    status: int
    body: str
    fault: bool = False
    """True when an ``http_error`` fault produced the answer."""


@dataclass(frozen=True, slots=True)
class RefusedAttempt:
    """A connection attempt refused by a ``refuse`` fault."""

    t_ns: int
    path: str
    mode: str
