"""Fault injection for the loopback venue servers: scheduled fault specs and the per-server
state the fault methods set.

Faults are called as methods on a server object (``v.spot.drop()``, ``v.http.fail(429,
count=2)``) or scheduled with :class:`FaultSpec` at venue times. Every duration is in venue
seconds (the servers' clock), like everything else the servers do; at speed ``S`` a fault of
``N`` seconds lasts ``N / S`` real seconds.

=============  ========================================================================
kind           effect
=============  ========================================================================
``drop``       every open connection is cut at once: transport aborted, no close frame
``stall``      for N s: nothing is sent (frames due are lost), incoming data (pings,
               PINGs, requests) is not read, no keepalive pings are sent
``malformed``  the next ``count`` text frames, and/or each frame with probability ``rate``
               for N s (or until changed), are truncated (half also get junk bytes)
``refuse``     for N s new connections fail: ``mode="http503"`` rejects the WebSocket
               handshake with HTTP 503; ``mode="close"`` accepts TCP, reads the request,
               then closes the socket without answering
``http_error`` HTTP server only: answer ``status`` (429, 500, 503, ...) with
               ``Retry-After`` when given, for N s or the next ``count`` requests,
               optionally only for paths starting with ``path_prefix``
=============  ========================================================================
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from polyrl.events import NS_PER_S

FaultKind = Literal["drop", "stall", "malformed", "refuse", "http_error"]
Target = Literal["binance_spot", "binance_futures", "clob", "rtds", "polybolt", "http"]
RefuseMode = Literal["http503", "close"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSpec:
    """A fault to inject at venue time ``at_ns`` on one server (see the module docstring)."""

    at_ns: int
    """When, venue time, ns since the epoch."""
    target: Target
    kind: FaultKind
    seconds: float | None = None
    """Duration, venue seconds (stall, refuse, malformed rate, http_error)."""
    count: int | None = None
    """Number of frames (malformed) or requests (http_error) affected."""
    rate: float = 0.0
    """Per-frame corruption probability (malformed), 0..1."""
    mode: RefuseMode = "http503"
    status: int = 503
    """HTTP status of an http_error fault."""
    retry_after_s: float | None = None
    """``Retry-After`` seconds of an http_error fault (venue seconds, as sent)."""
    path_prefix: str | None = None
    """Only requests whose path starts with this (http_error)."""

    def __post_init__(self) -> None:
        if self.kind == "http_error" and self.target != "http":
            raise ValueError("http_error faults target the http server")
        if self.target == "http" and self.kind != "http_error":
            raise ValueError(f"the http server takes http_error faults, not {self.kind}")
        if self.kind in ("stall", "refuse") and (self.seconds is None or self.seconds <= 0):
            raise ValueError(f"a {self.kind} fault needs seconds > 0")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")


def corrupt(text: str, g: random.Random) -> str:
    """``text`` cut to a strict non-empty prefix; half the time junk bytes are appended.

    Never valid JSON when ``text`` is a JSON object or array (its closing bracket is gone),
    and still a valid WebSocket text frame (valid UTF-8).
    """
    if len(text) < 2:
        return "\x00"
    k = g.randint(1, len(text) - 1)
    return text[:k] + ("\x00\ufffd#garbled" if g.random() < 0.5 else "")


class WsFaultState:
    """Fault state of one WebSocket server. Times are venue ns; ``now_ns`` is passed in."""

    def __init__(self, seed: int) -> None:
        self.stalled_until_ns = 0
        self.refuse_until_ns = 0
        self.refuse_mode: RefuseMode = "http503"
        self.malformed_left = 0
        self.malformed_rate = 0.0
        self.malformed_until_ns: int | None = None
        self._g = random.Random(seed)

    def stalled(self, now_ns: int) -> bool:
        """True while a stall is in force."""
        return now_ns < self.stalled_until_ns

    def refusing(self, now_ns: int) -> RefuseMode | None:
        """The refuse mode in force, or None."""
        return self.refuse_mode if now_ns < self.refuse_until_ns else None

    def set_stall(self, now_ns: int, seconds: float) -> int:
        """Stall until ``now + seconds``; returns the end, ns."""
        self.stalled_until_ns = max(self.stalled_until_ns, now_ns + int(seconds * NS_PER_S))
        return self.stalled_until_ns

    def set_refuse(self, now_ns: int, seconds: float, mode: RefuseMode) -> None:
        """Refuse new connections for ``seconds``."""
        if mode not in ("http503", "close"):
            raise ValueError(f"refuse mode must be http503 or close, got {mode!r}")
        self.refuse_until_ns = now_ns + int(seconds * NS_PER_S)
        self.refuse_mode = mode

    def set_malformed(self, now_ns: int, count: int, rate: float, seconds: float | None) -> None:
        """Corrupt the next ``count`` frames and each frame with probability ``rate``
        (for ``seconds``, or until changed when None)."""
        if count < 0 or not 0.0 <= rate <= 1.0:
            raise ValueError("malformed: count must be >= 0 and rate within [0, 1]")
        self.malformed_left += count
        self.malformed_rate = rate
        self.malformed_until_ns = None if seconds is None else now_ns + int(seconds * NS_PER_S)

    def maybe_corrupt(self, text: str, now_ns: int) -> tuple[str, bool]:
        """The text to send and whether it was corrupted."""
        if self.malformed_left > 0:
            self.malformed_left -= 1
            return corrupt(text, self._g), True
        if self.malformed_rate > 0.0:
            if self.malformed_until_ns is not None and now_ns >= self.malformed_until_ns:
                self.malformed_rate = 0.0
            elif self._g.random() < self.malformed_rate:
                return corrupt(text, self._g), True
        return text, False


@dataclass(slots=True)
class HttpFaultRule:
    """One active http_error fault."""

    status: int
    until_ns: int | None
    count: int | None
    retry_after_s: float | None
    path_prefix: str | None

    def matches(self, path: str, now_ns: int) -> bool:
        """Whether this rule answers a request for ``path`` now."""
        if self.until_ns is not None and now_ns >= self.until_ns:
            return False
        if self.count is not None and self.count <= 0:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)

    @property
    def spent(self) -> bool:
        """No request left to answer (count rules only)."""
        return self.count is not None and self.count <= 0
