"""The Recorder: every adapter's frames -> write-ahead log -> Parser -> Parquet, 24/7.

One process, one asyncio loop. Each frame an adapter receives is stamped with the clock's
``recv_ns`` by the adapter and handed to :meth:`Recorder.emit`, which appends it to the
current WAL segment, parses it and buffers its rows in the writer. Background tasks:

- every ``wal_flush_s`` the WAL reaches the OS (a process kill loses at most that much);
  every ``wal_fsync_s`` it is fsynced (an OS crash loses at most that much);
- every ``checkpoint_s`` the buffered rows are detached and written to Parquet on a worker
  thread while a new WAL segment takes over; the old segment is deleted once its rows are
  on disk, so memory stays bounded by one checkpoint's worth of rows;
- partitions of hours that ended more than ``compact_grace_s`` ago are compacted into one
  file each (on a worker thread);
- a channel down for ``alert_after_s`` gets an ``alert`` status row and ``on_alert`` is
  called, and again (``recovered``) when its venue answers (:mod:`polyrl.recording.health`).

On SIGINT/SIGTERM (or at the end of ``duration``, clock seconds) the adapters stop, each
channel never reached gets a ``never_connected`` row, everything buffered is written, the
WAL is deleted and this run's partitions are compacted: nothing received is lost. At start,
leftover WAL segments of a killed run are recovered first
(:func:`polyrl.recording.recovery.recover`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyrl.clock import LiveClock
from polyrl.errors import RecordingError
from polyrl.events import CH_RECORDER, NS_PER_S, STATUS_STREAM, Event, Frame, partition_of
from polyrl.recording import health
from polyrl.recording.health import ChannelStat
from polyrl.recording.recovery import recover
from polyrl.recording.schema import STORAGE_PLANS
from polyrl.recording.wal import (
    SegmentHeader,
    WalSegment,
    quarantine_dir,
    wal_dir,
)
from polyrl.recording.writer import (
    RecordingConfig,
    RecordingWriter,
    compact_partition,
    partition_dir,
)
from polyrl.sources.parse import Parser, status_frame
from polyrl.sources.sink import SourceAdapter


@dataclass(slots=True)
class StreamStat:
    """Live counters of one stream for the status line."""

    rows: int = 0
    last_recv_ns: int = 0
    rate: float = 0.0
    _window_rows: int = 0


class Recorder:
    """Records frames from adapters (see module doc). ``listeners`` see every parsed event;
    ``provenance`` is the entry each recorded day's provenance file gets."""

    def __init__(
        self,
        root: Path | str,
        *,
        config: RecordingConfig,
        clock: LiveClock,
        listeners: Sequence[Callable[[Event], None]] = (),
        on_alert: Callable[[str, str], None] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        self.root = Path(root)
        self.config = config
        self.clock = clock
        self.listeners = list(listeners)
        self.recovery = recover(self.root, config)
        # What the rows are (polyrl.recording.provenance.recorded_entry): noted per day.
        self.writer = RecordingWriter(self.root, config=config, provenance=provenance)
        self.parser = Parser(storage=STORAGE_PLANS, exch_tolerance_s=config.exch_time_tolerance_s)
        self.streams: dict[str, StreamStat] = {}
        self.channels: dict[str, ChannelStat] = {}
        self._segment = self._new_segment()
        self._touched: set[tuple[str, str, int]] = set()
        self._compacted: set[tuple[str, str, int]] = set()
        self._checkpoint_lock = asyncio.Lock()
        self._stopping = False
        self._rows_since_checkpoint = 0
        self._early: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        self.on_alert = on_alert
        """Called with (kind, line) for every ``alert`` and ``recovered`` (the CLI prints it)."""
        self.started_ns: int | None = None
        """Clock time at which :meth:`run` started its adapters."""
        self.stopped_ns: int | None = None
        """Clock time at which :meth:`run` was told to stop (duration, signal, stop event)."""

    # -- the hot path --------------------------------------------------------------------

    def emit(self, frame: Frame) -> None:
        """Log, parse and buffer one frame (called by adapters on the loop thread)."""
        self._segment.append(frame, self.writer.next_seq)
        ch = self.channels.get(frame.channel)
        if ch is None:
            ch = self.channels[frame.channel] = ChannelStat()
        ch.frames += 1
        ch.last_frame_ns = frame.recv_ns
        events = self.parser.parse(frame)
        self._rows_since_checkpoint += len(events)
        if self._rows_since_checkpoint >= self.config.checkpoint_rows and not self._stopping:
            self._rows_since_checkpoint = 0
            if self._early is None or self._early.done():
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # emit() outside a loop (tests, recovery): no hurry
                    loop = None
                if loop is not None:
                    self._early = loop.create_task(self.checkpoint())
        for ev in events:
            seq = self.writer.append(ev)
            if self.listeners:
                ev = dataclasses.replace(ev, seq=seq)
            st = self.streams.get(ev.stream)
            if st is None:
                st = self.streams[ev.stream] = StreamStat()
            st.rows += 1
            st._window_rows += 1
            st.last_recv_ns = ev.recv_ns
            if ev.stream == STATUS_STREAM:
                self._status(ev)
            for listener in self.listeners:
                listener(ev)
        if (not ch.reached or ch.down_since_ns is not None) and frame.channel != CH_RECORDER:
            self._answered(frame.channel, ch, frame.recv_ns)

    def status(
        self,
        kind: str,
        channel: str,
        message: str = "",
        *,
        stream: str | None = None,
        gap_start_ns: int | None = None,
        gap_end_ns: int | None = None,
    ) -> None:
        """Record a status row (connect, disconnect, gap, subscribe, ...) now."""
        self.emit(
            status_frame(
                kind,
                self.clock.now_ns(),
                channel=channel,
                stream=stream,
                message=message,
                gap_start_ns=gap_start_ns,
                gap_end_ns=gap_end_ns,
            )
        )

    def _status(self, ev: Event) -> None:
        ch = self.channels.get(ev.key)
        if ch is None:
            ch = self.channels[ev.key] = ChannelStat()
        ch.on_status(ev.fields["kind"], ev.recv_ns, ev.fields["message"])

    # -- channel health (see polyrl.recording.health) ----------------------------------------

    def answered(self, channel: str) -> None:
        """The venue answered on ``channel`` (a REST 200 with nothing to record)."""
        ch = self.channels.get(channel)
        if ch is None:
            ch = self.channels[channel] = ChannelStat()
        if not ch.reached or ch.down_since_ns is not None:
            self._answered(channel, ch, self.clock.now_ns())

    def _answered(self, channel: str, ch: ChannelStat, t_ns: int) -> None:
        since = ch.down_since_ns
        line = None
        if ch.alerted and since is not None:
            line = health.recovery_message(channel, ch, since, t_ns, self.clock.speed)
        ch.answered()
        if line is not None:
            self._say("recovered", channel, line)

    def _say(self, kind: str, channel: str, line: str) -> None:
        self.status(kind, channel, line)
        if self.on_alert is not None:
            self.on_alert(kind, line)

    def check_health(self) -> None:
        """Alert every channel down for ``alert_after_s`` (once per outage)."""
        now = self.clock.now_ns()
        after = int(self.config.alert_after_s * NS_PER_S)
        for name, ch in sorted(self.channels.items()):
            if ch.alert_due(now, after):
                self._say("alert", name, health.alert_message(name, ch, now, self.clock.speed))

    def never_reached(self) -> list[tuple[str, ChannelStat]]:
        """Channels expected or tried that the venue never answered on, by name."""
        return health.never_reached(self.channels.items())

    # -- checkpoints ----------------------------------------------------------------------

    def _new_segment(self) -> WalSegment:
        seq = self.writer.next_seq
        return WalSegment(
            wal_dir(self.root) / f"segment-{seq:016d}.wal",
            SegmentHeader(start_seq=seq, tokens=dict(self.parser.tokens)),
        )

    async def checkpoint(self) -> None:
        """Write every buffered row to Parquet (off the loop) and retire the WAL segment."""
        async with self._checkpoint_lock:
            self._rows_since_checkpoint = 0
            pending = self.writer.detach()
            old = self._segment
            if not pending and old.frames == 0:
                return
            self._segment = self._new_segment()
            old.flush(fsync=self.config.fsync)
            work = asyncio.ensure_future(asyncio.to_thread(self.writer.write_pending, pending))
            try:
                written = await asyncio.shield(work)
            except asyncio.CancelledError:
                # Shutdown cancelled this checkpoint mid-write; the write goes on in its
                # thread whatever we do, so wait for it: the segment is retired exactly when
                # its rows are in Parquet, not left behind for a needless recovery.
                written = await self._finish_write(work, old)
                self._retire(old, written)
                raise
            except BaseException:
                old.close(delete=False)  # its frames are not all in Parquet: keep them
                raise
            self._retire(old, written)

    @staticmethod
    async def _finish_write(work: asyncio.Future[list[Path]], old: WalSegment) -> list[Path]:
        try:
            return await work
        except BaseException:
            old.close(delete=False)
            raise

    def _retire(self, old: WalSegment, written: list[Path]) -> None:
        """``old``'s rows are all in Parquet (``written``): remember the files, delete it."""
        for path in written:
            self._touch(path)
        old.close(delete=True)

    def _touch(self, path: Path) -> None:
        """Remember the partition of a file this run wrote (compacted once its hour ends)."""
        rel = path.relative_to(self.root).parts
        self._touched.add((rel[0], rel[1][5:], int(rel[2][5:])))

    def _flush_sync(self) -> None:
        """Final, synchronous flush (shutdown). The WAL reaches the disk first; it is deleted
        only once every row is in Parquet, so a failing disk loses nothing received."""
        self._segment.flush(fsync=True)
        try:
            self.writer.flush()
        except BaseException:
            self._segment.close(delete=False)
            raise
        for p in self.writer.files_written:
            self._touch(p)
        self._segment.close(delete=True)

    async def compact_finished_hours(self, *, all_touched: bool = False) -> int:
        """Compact this run's partitions whose hour is over (or all, at shutdown)."""
        now = self.clock.now_ns()
        grace = int(self.config.compact_grace_s * NS_PER_S)
        done = 0
        for key in sorted(self._touched - self._compacted):
            stream, date, hour = key
            d, h = partition_of(now - grace)
            finished = (date, hour) < (d, h)
            if not (finished or all_touched):
                continue
            directory = partition_dir(self.root, stream, date, hour)
            await asyncio.to_thread(compact_partition, directory, stream, self.config)
            if finished:
                self._compacted.add(key)
            done += 1
        return done

    # -- running ----------------------------------------------------------------------------

    async def run(
        self,
        adapters: Iterable[SourceAdapter],
        *,
        duration_s: float | None = None,
        stop: asyncio.Event | None = None,
        install_signal_handlers: bool = True,
    ) -> None:
        """Run the adapters until ``stop`` is set, ``duration_s`` passes, or a signal arrives;
        then flush everything and return. ``duration_s`` is clock time: venue time when the
        clock runs faster than real time (loopback venues), else wall time."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
        self.status("start", CH_RECORDER, f"recording to {self.root}")
        if self.recovery.segments:
            self.status(
                "recover",
                CH_RECORDER,
                f"recovered {self.recovery.rows_written} rows from {self.recovery.frames} "
                f"frames of {self.recovery.segments} write-ahead segment(s)"
                + (
                    f"; {len(self.recovery.quarantined)} damaged span(s) quarantined in "
                    f"{quarantine_dir(self.root)}"
                    if self.recovery.quarantined
                    else ""
                ),
            )
        adapters = list(adapters)
        self.started_ns = self.clock.now_ns()
        for a in adapters:
            self.channels.setdefault(a.name, ChannelStat()).expect(self.started_ns)
        tasks = [asyncio.create_task(a.run(self), name=a.name) for a in adapters]
        background = [
            asyncio.create_task(self._every(self.config.wal_flush_s, self._flush_wal)),
            asyncio.create_task(self._every(self.config.wal_fsync_s, self._fsync_wal)),
            asyncio.create_task(self._every(self.config.checkpoint_s, self._checkpoint_tick)),
            asyncio.create_task(self._every(1.0, self._rates)),
            asyncio.create_task(
                self._every(
                    health.check_interval_s(self.config.alert_after_s, self.clock.speed),
                    self.check_health,
                )
            ),
        ]
        waiter = asyncio.create_task(stop.wait())
        watch = [waiter, *tasks, *background]
        if duration_s is not None:
            watch.append(asyncio.create_task(self.clock.sleep(duration_s)))
        try:
            done, _ = await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t in background and t.exception() is not None:
                    self.error = t.exception()
        finally:
            self.stopped_ns = self.clock.now_ns()
            self._stopping = True
            pending = [*tasks, *background, *watch]
            for t in pending:
                t.cancel()
            # Wait for them to wind down, but never let one stuck adapter hold the data hostage.
            await asyncio.wait(pending, timeout=5.0)
            for name, ch in self.never_reached():
                self.status("never_connected", name, health.never_reached_text([(name, ch)]))
            self.status("stop", CH_RECORDER, "clean stop")
            async with self._checkpoint_lock:
                self._flush_sync()
            await self.compact_finished_hours(all_touched=True)
            if install_signal_handlers:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.remove_signal_handler(sig)
        if self.error is not None:
            raise RecordingError(f"recording stopped: {self.error}") from self.error

    async def _every(self, seconds: float, fn: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(seconds)
            res = fn()
            if asyncio.iscoroutine(res):
                await res

    def _flush_wal(self) -> None:
        self._segment.flush()

    def _fsync_wal(self) -> None:
        self._segment.flush(fsync=self.config.fsync)

    async def _checkpoint_tick(self) -> None:
        await self.checkpoint()
        await self.compact_finished_hours()

    def _rates(self) -> None:
        for st in self.streams.values():
            st.rate = 0.7 * st.rate + 0.3 * st._window_rows
            st._window_rows = 0
