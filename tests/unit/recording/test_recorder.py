"""Recorder core: every frame reaches Parquet exactly once, across stops and crashes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from polyrl.clock import LiveClock
from polyrl.events import CH_BINANCE_SPOT_WS, Frame
from polyrl.recording.reader import RecordingReader
from polyrl.recording.recorder import Recorder
from polyrl.recording.recovery import recover
from polyrl.recording.wal import segment_paths
from polyrl.recording.writer import RecordingConfig

CFG = RecordingConfig(fsync=False, checkpoint_s=0.05, wal_flush_s=0.01, wal_fsync_s=0.02)


def agg_trade(i: int) -> str:
    ms = f"1717200000{i % 1000:03d}"
    m = "true" if i % 2 else "false"
    return (
        f'{{"stream":"btcusdt@aggTrade","data":{{"e":"aggTrade","E":{ms},"s":"BTCUSDT",'
        f'"a":{i},"p":"67000.5","q":"0.01","f":{i},"l":{i},"T":{ms},"m":{m},"M":true}}}}'
    )


class FakeSpot:
    """An adapter that emits n aggTrade frames, a few per loop turn, then idles."""

    name = "fake-spot"

    def __init__(self, n: int) -> None:
        self.n = n
        self.sent = 0

    async def run(self, sink) -> None:  # type: ignore[no-untyped-def]
        sink.emit(_status(sink, "connect"))
        while self.sent < self.n:
            for _ in range(7):
                if self.sent >= self.n:
                    break
                text = agg_trade(self.sent)
                sink.emit(Frame(channel=CH_BINANCE_SPOT_WS, recv_ns=sink.clock.now_ns(), text=text))
                self.sent += 1
            await asyncio.sleep(0.001)
        await asyncio.Event().wait()


def _status(sink, kind: str) -> Frame:  # type: ignore[no-untyped-def]
    from polyrl.sources.parse import status_frame

    return status_frame(kind, sink.clock.now_ns(), channel=CH_BINANCE_SPOT_WS)


def _trade_ids(root: Path) -> list[int]:
    r = RecordingReader(root, streams=["binance.spot.trade"])
    return [e.fields["trade_id"] for e in r.events()]


def test_clean_stop_loses_nothing(tmp_path: Path) -> None:
    adapter = FakeSpot(2_000)

    async def main() -> Recorder:
        rec = Recorder(tmp_path, config=CFG, clock=LiveClock())
        stop = asyncio.Event()

        async def stopper() -> None:
            while adapter.sent < adapter.n:
                await asyncio.sleep(0.01)
            stop.set()

        s = asyncio.create_task(stopper())
        await rec.run([adapter], stop=stop, install_signal_handlers=False)
        await s
        return rec

    rec = asyncio.run(main())
    assert _trade_ids(tmp_path) == list(range(2_000))
    assert segment_paths(tmp_path) == []
    kinds = [
        e.fields["kind"] for e in RecordingReader(tmp_path, streams=["recorder.status"]).events()
    ]
    assert kinds[0] == "start" and kinds[-1] == "stop" and "connect" in kinds
    assert rec.channels[CH_BINANCE_SPOT_WS].frames == 2_000
    assert rec.channels[CH_BINANCE_SPOT_WS].connects == 1
    # Checkpoints ran during the run and compaction left one file per partition.
    files = list(tmp_path.glob("binance.spot.trade/date=*/hour=*/*.parquet"))
    assert len(files) == 1


def test_a_checkpoint_cancelled_mid_write_still_retires_its_segment(tmp_path: Path) -> None:
    """Shutdown cancels the periodic checkpoint; if that lands while its rows are being
    written (in a thread, which carries on), the segment is retired once the write ends,
    not left behind for a needless recovery (this once failed the clean-stop test)."""
    import threading

    async def main() -> None:
        rec = Recorder(tmp_path, config=CFG, clock=LiveClock())
        for i in range(300):
            rec.emit(
                Frame(channel=CH_BINANCE_SPOT_WS, recv_ns=rec.clock.now_ns(), text=agg_trade(i))
            )
        writing, release = threading.Event(), threading.Event()
        write = rec.writer.write_pending

        def slow(pending):  # type: ignore[no-untyped-def]
            writing.set()
            release.wait(5)
            return write(pending)

        rec.writer.write_pending = slow  # type: ignore[method-assign]
        task = asyncio.create_task(rec.checkpoint())
        while not writing.is_set():
            await asyncio.sleep(0.001)
        first = segment_paths(tmp_path)[0]
        task.cancel()
        await asyncio.sleep(0.01)
        release.set()
        try:
            await task
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the cancelled checkpoint returned normally")
        assert not first.exists()  # its rows are in Parquet: retired
        rec._flush_sync()

    asyncio.run(main())
    assert _trade_ids(tmp_path) == list(range(300))
    assert segment_paths(tmp_path) == []


def test_crash_is_recovered_from_the_wal_exactly_once(tmp_path: Path) -> None:
    """Rows checkpointed before the crash are not duplicated; the rest come back."""

    async def crashy() -> None:
        rec = Recorder(tmp_path, config=CFG, clock=LiveClock())
        for i in range(500):
            rec.emit(
                Frame(channel=CH_BINANCE_SPOT_WS, recv_ns=rec.clock.now_ns(), text=agg_trade(i))
            )
        await rec.checkpoint()  # rows 0..499 in Parquet, segment retired
        for i in range(500, 800):
            rec.emit(
                Frame(channel=CH_BINANCE_SPOT_WS, recv_ns=rec.clock.now_ns(), text=agg_trade(i))
            )
        # A checkpoint that wrote Parquet but died before deleting its segment:
        pending = rec.writer.detach()
        rec._segment.flush()
        rec.writer.write_pending(pending[:1])
        for i in range(800, 900):
            rec.emit(
                Frame(channel=CH_BINANCE_SPOT_WS, recv_ns=rec.clock.now_ns(), text=agg_trade(i))
            )
        rec._segment.flush()  # what the periodic WAL flush does; then the process dies

    asyncio.run(crashy())
    assert len(segment_paths(tmp_path)) == 1
    report = recover(tmp_path, CFG)
    assert report.segments == 1
    assert report.rows_already_on_disk == 300
    assert report.rows_written == 100
    assert _trade_ids(tmp_path) == list(range(900))
    seqs = [e.seq for e in RecordingReader(tmp_path).events()]
    assert seqs == sorted(set(seqs))
    assert segment_paths(tmp_path) == []
    # A second recovery finds nothing to do.
    assert recover(tmp_path, CFG).segments == 0


def test_a_write_failure_stops_recording_loudly_and_loses_nothing(tmp_path: Path) -> None:
    """Disk trouble (here: a file where a partition directory must go) is a clear error
    naming the path; every frame received stays in the write-ahead log and is recovered."""
    import pytest

    from polyrl.errors import RecordingError

    adapter = FakeSpot(3_000)
    (tmp_path / "binance.spot.trade").write_text("not a directory")

    async def main() -> None:
        rec = Recorder(tmp_path, config=CFG, clock=LiveClock())
        await rec.run([adapter], install_signal_handlers=False)

    with pytest.raises(RecordingError, match=r"cannot write .*binance\.spot\.trade"):
        asyncio.run(main())
    assert segment_paths(tmp_path), "the frames must still be in the write-ahead log"
    (tmp_path / "binance.spot.trade").unlink()
    recover(tmp_path, CFG)
    ids = _trade_ids(tmp_path)
    assert ids == list(range(len(ids))) and len(ids) == adapter.sent
