"""Channel health: which channels are failing, since when, and when to say so.

A channel (``binance.spot.ws``, ``polymarket.gamma.rest``, ...) is *reached* when its venue
answers on it: a WebSocket opens, a REST request gets a 200, or a frame arrives. A failure
after its last frame or answer (a disconnect, a failed connection attempt, an HTTP error)
makes it *down* until its next frame or answer: since its last frame for a lost connection,
since the failure for a failed request. A channel an adapter is expected to open is down
from the recorder's start until its first frame. An open WebSocket that brings
no data does not end an outage: a stalled venue that accepts connections and then goes
silent is still lost.

A channel down for ``alert_after_s`` raises one alert; its next frame or answer ends the
outage with a recovery. The recorder writes both as ``recorder.status`` rows (kinds
``alert`` and ``recovered``, on the channel) whose messages carry the outage's length and its
connection failures and HTTP errors, and says them on stderr. Every failure is also a row of
its own (``connect_failed``, ``http_error``, ``disconnect``), so the counts can be rebuilt from
any recording.

Pure bookkeeping: times (clock ns, the same clock as ``recv_ns``) are handed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from polyrl.events import CH_RECORDER, NS_PER_S, ns_to_iso

CHECK_S = 0.25
"""Longest real wait between the recorder's checks for channels down too long."""


def check_interval_s(alert_after_s: float, speed: float) -> float:
    """Real seconds between checks: ``CHECK_S``, or a quarter of the alert time in real
    seconds on a clock that makes it shorter (never under 0.01 s)."""
    return max(0.01, min(CHECK_S, alert_after_s / speed / 4))


FAILURE_KINDS = frozenset({"disconnect", "connect_failed", "http_error"})
"""``recorder.status`` kinds that start (or prolong) a channel's outage."""


@dataclass(slots=True)
class ChannelStat:
    """Live counters and health of one channel (status table, alerts, exit code)."""

    connected: bool = False
    connects: int = 0
    reconnects: int = 0
    gaps: int = 0
    parse_errors: int = 0
    frames: int = 0
    last_frame_ns: int = 0
    connect_failures: int = 0
    """Failed connection attempts (``connect_failed`` rows), whole run."""
    http_errors: int = 0
    """Non-200 REST answers or no answer at all (``http_error`` rows), whole run."""
    alerts: int = 0
    """Outages that lasted ``alert_after_s`` or longer."""
    expected: bool = False
    """An adapter opens this channel: it must be reached."""
    reached: bool = False
    """The venue answered on this channel at least once."""
    down_since_ns: int | None = None
    """Start of the current outage (clock ns), None while healthy."""
    alerted: bool = False
    """The current outage has been alerted."""
    outage_failures: int = 0
    outage_http_errors: int = 0
    last_failure: str = ""
    """The message of the latest failure row (why it is down)."""

    def on_status(self, kind: str, t_ns: int, message: str) -> None:
        """Count one ``recorder.status`` row about this channel."""
        if kind == "connect":
            if self.connects:
                self.reconnects += 1
            self.connects += 1
            self.connected = True
            self.reached = True
        elif kind == "disconnect":
            self.connected = False
        elif kind == "gap":
            self.gaps += 1
        elif kind == "parse_error":
            self.parse_errors += 1
        elif kind == "alert":
            self.alerts += 1
        if kind in FAILURE_KINDS:
            if self.down_since_ns is None:
                # A lost connection was lost from its last frame on (a watchdog notices a
                # silent socket only after watchdog_s); a failed request from now.
                lost = kind == "disconnect" and self.last_frame_ns > 0
                self.down_since_ns = self.last_frame_ns if lost else t_ns
            if kind == "connect_failed":
                self.connect_failures += 1
                self.outage_failures += 1
            elif kind == "http_error":
                self.http_errors += 1
                self.outage_http_errors += 1
            self.last_failure = message

    def expect(self, t_ns: int) -> None:
        """An adapter will open this channel: down until it is reached."""
        self.expected = True
        if not self.reached and self.down_since_ns is None:
            self.down_since_ns = t_ns

    def answered(self) -> None:
        """The venue answered (a frame, a REST 200): the outage, if any, is over."""
        self.reached = True
        self.down_since_ns = None
        self.alerted = False
        self.outage_failures = self.outage_http_errors = 0

    def alert_due(self, now_ns: int, after_ns: int) -> bool:
        """True once per outage, when it has lasted ``after_ns``."""
        if self.alerted or self.down_since_ns is None or now_ns - self.down_since_ns < after_ns:
            return False
        self.alerted = True
        return True

    def counts(self) -> str:
        """``3 connection failures, 0 HTTP errors`` of the current outage."""
        return (
            f"{plural(self.outage_failures, 'connection failure')}, "
            f"{plural(self.outage_http_errors, 'HTTP error')}"
        )


def plural(n: int, what: str) -> str:
    """``1 HTTP error``, ``2 HTTP errors``."""
    return f"{n} {what}{'s' * (n != 1)}"


def seconds_text(seconds: float, speed: float) -> str:
    """``61 s``, or ``61 s of venue time (6.1 s wall)`` when the clock runs faster."""
    if speed == 1.0:
        return f"{seconds:.0f} s"
    return f"{seconds:.0f} s of venue time ({seconds / speed:.1f} s wall)"


def alert_message(name: str, ch: ChannelStat, now_ns: int, speed: float) -> str:
    """The one line (and status row message) saying a channel has been down too long."""
    assert ch.down_since_ns is not None
    down = seconds_text((now_ns - ch.down_since_ns) / NS_PER_S, speed)
    what = "no data" if ch.reached else "never connected"
    last = f"; last: {ch.last_failure}" if ch.last_failure else ""
    return (
        f"{name}: {what} for {down}, since {ns_to_iso(ch.down_since_ns)[:19]}Z: {ch.counts()}{last}"
    )[:600]


def recovery_message(name: str, ch: ChannelStat, since_ns: int, now_ns: int, speed: float) -> str:
    """The line saying a channel that had been alerted is delivering again (call before
    :meth:`ChannelStat.answered` resets the outage's counts)."""
    down = seconds_text((now_ns - since_ns) / NS_PER_S, speed)
    return f"{name}: recovered after {down} down: {ch.counts()}"


def never_reached(channels: Iterable[tuple[str, ChannelStat]]) -> list[tuple[str, ChannelStat]]:
    """Channels that were expected or tried (a failure) and never reached, by name."""
    return sorted(
        (name, ch)
        for name, ch in channels
        if name != CH_RECORDER
        and not ch.reached
        and (ch.expected or ch.connect_failures or ch.http_errors)
    )


def any_reached(channels: Iterable[tuple[str, ChannelStat]]) -> bool:
    """Whether a venue answered on any channel (the recorder's own does not count)."""
    return any(ch.reached for name, ch in channels if name != CH_RECORDER)


def never_reached_text(items: Iterable[tuple[str, ChannelStat]]) -> str:
    """``binance.spot.ws (12 connection failures), polymarket.gamma.rest (3 HTTP errors)``."""
    parts = []
    for name, ch in items:
        n = []
        if ch.connect_failures:
            n.append(plural(ch.connect_failures, "connection failure"))
        if ch.http_errors:
            n.append(plural(ch.http_errors, "HTTP error"))
        parts.append(f"{name} ({', '.join(n) or 'never tried'})")
    return ", ".join(parts)
