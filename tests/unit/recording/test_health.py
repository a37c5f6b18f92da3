"""Channel health: outages are alerted once and their recovery said; the status table shows
every channel by name with its age and failure counts."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from polyrl.clock import LiveClock
from polyrl.events import (
    CH_BINANCE_SPOT_WS,
    CH_POLYMARKET_GAMMA,
    NS_PER_S,
    Frame,
)
from polyrl.recording.inspect import format_report, inspect_recording
from polyrl.recording.reader import RecordingReader
from polyrl.recording.recorder import Recorder
from polyrl.recording.writer import RecordingConfig
from polyrl.sources.parse import status_frame

CFG = RecordingConfig(
    fsync=False, checkpoint_s=0.05, wal_flush_s=0.01, wal_fsync_s=0.02, alert_after_s=0.3
)


def agg_trade(i: int) -> str:
    ms = f"1717200000{i % 1000:03d}"
    return (
        f'{{"stream":"btcusdt@aggTrade","data":{{"e":"aggTrade","E":{ms},"s":"BTCUSDT",'
        f'"a":{i},"p":"67000.5","q":"0.01","f":{i},"l":{i},"T":{ms},"m":true,"M":true}}}}'
    )


class LateSpot:
    """Fails to connect for ``fail_s`` (a refused venue), then connects and streams trades;
    its REST channel fails once and then answers."""

    name = CH_BINANCE_SPOT_WS

    def __init__(self, fail_s: float) -> None:
        self.fail_s = fail_s
        self.failures = 0
        self.trades = 0

    async def run(self, sink) -> None:  # type: ignore[no-untyped-def]
        clock = sink.clock
        t_end = clock.now_ns() + int(self.fail_s * NS_PER_S)
        sink.emit(status_frame("http_error", clock.now_ns(), channel=CH_POLYMARKET_GAMMA,
                               message="GET /markets -> 503 [Service Unavailable]"))  # fmt: skip
        sink.answered(CH_POLYMARKET_GAMMA)  # answered before the alert time: no alert
        while clock.now_ns() < t_end:
            self.failures += 1
            sink.emit(status_frame("connect_failed", clock.now_ns(), channel=self.name,
                                   message="OSError: [Errno 111] Connection refused"))  # fmt: skip
            await asyncio.sleep(0.05)
        sink.emit(status_frame("connect", clock.now_ns(), channel=self.name))
        while True:
            sink.emit(Frame(channel=self.name, recv_ns=clock.now_ns(), text=agg_trade(self.trades)))
            self.trades += 1
            await asyncio.sleep(0.01)


def test_an_outage_longer_than_alert_after_s_is_alerted_once_and_its_recovery_said(
    tmp_path: Path,
) -> None:
    said: list[tuple[str, str]] = []
    adapter = LateSpot(fail_s=0.8)

    async def main() -> Recorder:
        rec = Recorder(
            tmp_path, config=CFG, clock=LiveClock(), on_alert=lambda k, m: said.append((k, m))
        )
        stop = asyncio.Event()

        async def stopper() -> None:
            while adapter.trades < 20:
                await asyncio.sleep(0.01)
            stop.set()

        s = asyncio.create_task(stopper())
        await rec.run([adapter], stop=stop, install_signal_handlers=False)
        await s
        return rec

    rec = asyncio.run(main())
    assert [k for k, _ in said] == ["alert", "recovered"], said
    alert, back = said[0][1], said[1][1]
    assert alert.startswith(f"{CH_BINANCE_SPOT_WS}: never connected for ")
    assert "connection failures" in alert and "Connection refused" in alert
    m = re.search(r"recovered after \d+ s down: (\d+) connection failures, 0 HTTP errors", back)
    assert m and int(m.group(1)) == adapter.failures
    ch = rec.channels[CH_BINANCE_SPOT_WS]
    assert ch.connect_failures == adapter.failures and ch.alerts == 1 and ch.down_since_ns is None
    gamma = rec.channels[CH_POLYMARKET_GAMMA]
    assert gamma.http_errors == 1 and gamma.alerts == 0 and gamma.reached
    assert rec.never_reached() == []
    # The same lines are status rows on the channel, so the recording says it too.
    st = RecordingReader(tmp_path, streams=["recorder.status"]).read_stream("recorder.status")
    said_rows = st.filter(st["kind"].is_in(["alert", "recovered"]))
    rows = list(zip(said_rows["kind"], said_rows["message"], strict=True))
    assert rows == said
    report = inspect_recording(tmp_path)
    by = {c.channel: c for c in report.channels}
    assert by[CH_BINANCE_SPOT_WS].connect_failures == adapter.failures
    assert by[CH_BINANCE_SPOT_WS].alerts == 1
    assert by[CH_POLYMARKET_GAMMA].http_errors == 1
    text = format_report(report)
    assert re.search(rf"{re.escape(CH_BINANCE_SPOT_WS)}\s+{adapter.failures}\s+0\s+1\s+0", text)


def test_a_channel_never_reached_is_named_at_stop(tmp_path: Path) -> None:
    class Dead:
        name = CH_BINANCE_SPOT_WS

        async def run(self, sink) -> None:  # type: ignore[no-untyped-def]
            sink.emit(status_frame("connect_failed", sink.clock.now_ns(), channel=self.name))
            await asyncio.Event().wait()

    async def main() -> Recorder:
        rec = Recorder(tmp_path, config=CFG, clock=LiveClock())
        await rec.run([Dead()], duration_s=0.2, install_signal_handlers=False)
        return rec

    rec = asyncio.run(main())
    assert [n for n, _ in rec.never_reached()] == [CH_BINANCE_SPOT_WS]
    st = RecordingReader(tmp_path, streams=["recorder.status"]).read_stream("recorder.status")
    kinds = st["kind"].to_list()
    assert kinds[-2:] == ["never_connected", "stop"]
    assert st["message"][len(kinds) - 2] == f"{CH_BINANCE_SPOT_WS} (1 connection failure)"


def test_status_table_renders_channel_names_and_ages(tmp_path: Path) -> None:
    from polyrl.cli.record import status_table

    rec = Recorder(tmp_path, config=CFG, clock=LiveClock())
    now = rec.clock.now_ns()
    rec.emit(Frame(channel=CH_BINANCE_SPOT_WS, recv_ns=now - 3 * NS_PER_S, text=agg_trade(1)))
    # A name that is also valid console markup must still print as itself.
    rec.emit(status_frame("connect_failed", now, channel="binance.spot", message="[bold]x"))
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(status_table(rec))
    text = out.getvalue()
    assert not re.search(r"\bnan\b", text), text
    assert re.search(r"binance\.spot\.trade\s+│\s+1\s+│\s+[\d.]+\s+│\s+3\.\ds", text), text
    assert re.search(r"\[binance\.spot\.ws\]\s+│\s+1\s+│\s+│\s+3\.\ds", text), text
    # Never a frame: the age says so; one connection failure is counted.
    row = next(line for line in text.splitlines() if "[binance.spot]" in line)
    cells = [c.strip() for c in row.split("│")]
    assert cells[1:5] == ["[binance.spot]", "0", "", "never"]
    assert cells[8] == "1"  # conn. fail


def test_inspect_refuses_an_unknown_grouping(tmp_path: Path) -> None:
    # It used to group by asset for any value but "key" and label the report with the typo.
    with pytest.raises(ValueError, match="by: 'Key' is neither 'asset' nor 'key'"):
        inspect_recording(tmp_path, by="Key")
