"""`polyrl record` against the loopback venue servers, through faults, stops and crashes.

The servers speak the venues' real protocols (polyrl.sim.serve) and log exactly what they
delivered on every connection; the recorder runs the real adapters. Every test runs on an
accelerated clock shared by servers and recorder.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from polyrl.clock import LiveClock
from polyrl.events import (
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_WS,
    CH_POLYMARKET_WS,
    CH_RTDS_WS,
    NS_PER_S,
    Frame,
    iso_to_ns,
)
from polyrl.recording.provenance import describe_entry, root_provenance
from polyrl.recording.reader import RecordingReader
from polyrl.recording.recorder import Recorder
from polyrl.recording.recovery import recover
from polyrl.recording.wal import segment_paths
from polyrl.recording.writer import RecordingConfig, recording_files
from polyrl.sections import Config
from polyrl.sim.serve import RecordingContent, ServeConfig, ServersThread, SimContent, VenueServers
from polyrl.sources.adapters import default_adapters
from polyrl.sources.parse import Parser

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
T0 = iso_to_ns("2024-06-01T00:13:00Z")  # the 00:15 window opens two simulated minutes in
ROLL = iso_to_ns("2024-06-01T00:15:00Z")
SEED = 7
WS_CHANNELS = {
    "binance_spot": CH_BINANCE_SPOT_WS,
    "binance_futures": CH_BINANCE_FUTURES_WS,
    "clob": CH_POLYMARKET_WS,
    "rtds": CH_RTDS_WS,
}
REC_CFG = RecordingConfig(fsync=False, checkpoint_s=0.5, wal_flush_s=0.05, wal_fsync_s=0.2)


def _config(assets: tuple[str, ...] = ("btc", "eth")) -> Config:
    return Config(assets=assets, recording=REC_CFG)


def _sources(v: VenueServers, cfg: Config) -> Any:
    base = dataclasses.replace(
        cfg.sources,
        watchdog_s=6.0,
        reconnect_min_s=0.5,
        reconnect_max_s=3.0,
        open_interest_poll_s=10.0,
        resolution_delay_s=5.0,
        resolution_poll_s=10.0,
    )
    return v.sources_config(base)


class TapRecorder(Recorder):
    """A Recorder that also keeps every frame handed to it (what it received)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        self.tapped: list[Frame] = []
        super().__init__(*a, **kw)

    def emit(self, frame: Frame) -> None:
        self.tapped.append(frame)
        super().emit(frame)


def _rows(root: Path) -> pl.DataFrame:
    """Every recorded row's stream, key and raw, in seq order."""
    frames = []
    reader = RecordingReader(root, raw=True, columns=[])
    for s in reader.streams:
        df = reader.read_stream(s).select("seq", "recv_ns", "key", "raw")
        frames.append(df.with_columns(pl.lit(s).alias("stream")))
    return pl.concat(frames).sort("seq")


def _reparsed(frames: list[Frame]) -> pl.DataFrame:
    p = Parser()
    rows = [(e.stream, e.key, e.raw, e.recv_ns) for f in frames for e in p.parse(f)]
    return pl.DataFrame(rows, schema=["stream", "key", "raw", "recv_ns"], orient="row")


def _check_exactly_once_in_order(v: VenueServers, tapped: list[Frame]) -> None:
    """Every frame each server delivered on each connection was received once, in order
    (a final connection still open at shutdown may have a tail in flight)."""
    for name, channel in WS_CHANNELS.items():
        got = [f.text for f in tapped if f.channel == channel]
        logs = v.ws_servers[name].logs
        assert logs, name
        sent: list[str] = []
        for log in logs[:-1]:
            sent += log.delivered()
        last = logs[-1].delivered()
        assert got[: len(sent)] == sent, name
        tail = got[len(sent) :]
        assert tail == last[: len(tail)], name
        assert len(last) - len(tail) <= 50, (name, len(last) - len(tail))


def test_record_through_every_fault(tmp_path: Path) -> None:
    cfg = _config()
    root = tmp_path / "rec"
    # Slow enough that every fault window spans seconds of real time: the assertions on
    # outage lengths must not depend on how busy the machine is.
    speed = 5.0
    t0 = ROLL - 60 * NS_PER_S
    clock = LiveClock(speed=speed, start_ns=t0)

    async def main() -> tuple[VenueServers, TapRecorder]:
        content = SimContent(cfg, start_ns=t0, end_ns=t0 + 10 * 60 * NS_PER_S, seed=SEED)
        async with VenueServers(content, clock=clock) as v:
            run_cfg = dataclasses.replace(cfg, sources=_sources(v, cfg))
            rec = TapRecorder(root, config=REC_CFG, clock=clock)
            stop = asyncio.Event()
            task = asyncio.create_task(
                rec.run(default_adapters(run_cfg), stop=stop, install_signal_handlers=False)
            )

            async def at(real_s: float) -> None:
                await asyncio.sleep(real_s)

            await at(2.0)
            v.spot.drop()
            await at(1.5)
            v.futures.stall(12.0)  # venue seconds: longer than the 6 s watchdog
            await at(1.5)
            v.clob.malformed(3)
            v.rtds.refuse(15.0, mode="http503")
            v.rtds.drop()
            await at(1.5)
            v.http.fail(429, seconds=30.0, retry_after_s=1.0)
            await at(1.5)
            v.http.fail(503, seconds=20.0)
            v.clob.drop()
            await at(8.0)  # past the 00:15 roll
            stop.set()
            await task
            return v, rec

    v, rec = asyncio.run(asyncio.wait_for(main(), 120))
    _check_exactly_once_in_order(v, rec.tapped)
    # What reached the disk is exactly what was received, parsed: nothing lost or doubled.
    disk = _rows(root).select("stream", "key", "raw", "recv_ns")
    assert disk.equals(_reparsed(rec.tapped))
    status = RecordingReader(root, streams=["recorder.status"]).read_stream("recorder.status")
    by = Counter(zip(status["key"], status["kind"], strict=True))
    # Each outage is a disconnect and a gap with its start and end.
    for ch in (CH_BINANCE_SPOT_WS, CH_BINANCE_FUTURES_WS, CH_RTDS_WS, CH_POLYMARKET_WS):
        assert by[(ch, "disconnect")] >= 1, ch
        assert by[(ch, "gap")] >= 1, ch
        assert by[(ch, "connect")] >= 2, ch
    gaps = status.filter(pl.col("kind") == "gap")
    assert (gaps["gap_end_ns"] > gaps["gap_start_ns"]).all()
    stall = gaps.filter(pl.col("key") == CH_BINANCE_FUTURES_WS).row(0, named=True)
    assert (stall["gap_end_ns"] - stall["gap_start_ns"]) / NS_PER_S >= 6.0  # the watchdog
    refused = gaps.filter(pl.col("key") == CH_RTDS_WS).row(0, named=True)
    attempts = v.rtds.refused
    assert attempts and by[(CH_RTDS_WS, "connect_failed")] >= len(attempts)
    # The outage runs past the last refused attempt: reconnected only once it was allowed.
    assert refused["gap_end_ns"] > max(a.t_ns for a in attempts)
    # Malformed frames are kept as parse errors with their raw text; recording went on.
    errs = status.filter((pl.col("kind") == "parse_error") & (pl.col("key") == CH_POLYMARKET_WS))
    assert errs.height == 3
    # REST throttling is recorded and polling resumed.
    assert sum(n for (ch, kind), n in by.items() if kind == "http_error") >= 1
    oi = RecordingReader(root, streams=["binance.futures.open_interest"]).read_stream(
        "binance.futures.open_interest"
    )
    assert oi.height >= 8
    # The 00:15 roll: the next window's tokens were subscribed, and their books arrived,
    # before it opened.
    markets = RecordingReader(root, streams=["polymarket.market"]).read_stream("polymarket.market")
    nxt = markets.filter(pl.col("window_start_ns") == ROLL)
    assert nxt.height == 2
    slug_ts = str(ROLL // NS_PER_S)
    subs = status.filter((pl.col("kind") == "subscribe") & pl.col("message").str.contains(slug_ts))
    assert subs.height >= 1 and int(subs["recv_ns"].min()) < ROLL
    books = RecordingReader(root, streams=["polymarket.book"]).read_stream("polymarket.book")
    for tok in nxt["up_token"].to_list() + nxt["down_token"].to_list():
        first = books.filter(pl.col("key") == tok)["recv_ns"].min()
        assert first is not None and int(first) < ROLL  # type: ignore[arg-type]


def _serve_thread(cfg: Config, speed: float, minutes: int = 20) -> tuple[ServersThread, LiveClock]:
    clock = LiveClock(speed=speed, start_ns=T0)
    content = SimContent(cfg, start_ns=T0, end_ns=T0 + minutes * 60 * NS_PER_S, seed=SEED)
    th = ServersThread(VenueServers(content, clock=clock, config=ServeConfig()))
    return th, clock


def _write_config(
    path: Path,
    v: VenueServers,
    cfg: Config,
    clock: LiveClock,
    *,
    checkpoint_s: float = 0.5,
    wal_flush_s: float = 0.1,
) -> None:
    """The loopback config ``polyrl record`` runs with (``polyrl simulate --serve`` writes the
    same), with the recorder's checkpoint and WAL flush periods."""
    from polyrl.cli.serve import serve_toml

    text = serve_toml(
        cfg, _sources(v, cfg), speed=clock.speed, start_ns=T0, anchor_ns=clock.anchor_real_ns
    )
    text += (
        f"\n[recording]\nfsync = false\ncheckpoint_s = {checkpoint_s}\n"
        f"wal_flush_s = {wal_flush_s}\n"
    )
    path.write_text(text)


def _recorder(cfg_path: Path, root: Path, *args: str) -> subprocess.Popen[str]:
    """``polyrl record --quiet`` as a subprocess (its stdout and stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-m", "polyrl", "record", "--config", str(cfg_path), "--out", str(root),
         "--quiet", *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _delivered_data(v: VenueServers, name: str) -> list[str]:
    out: list[str] = []
    for log in v.ws_servers[name].logs:
        out += log.delivered(("data",))
    return out


def test_sigterm_loses_nothing(tmp_path: Path) -> None:
    cfg = _config(("btc",))
    th, clock = _serve_thread(cfg, speed=10.0)
    root = tmp_path / "rec"
    with th as v:
        cfg_path = tmp_path / "loop.toml"
        th.call(_write_config, cfg_path, v, cfg, clock)
        proc = _recorder(cfg_path, root)
        time.sleep(8.0)
        # Quiesce the venues so no frame is in flight, then stop the recorder.
        for name in ("binance_spot", "binance_futures", "rtds", "clob"):
            th.call(v.ws_servers[name].stall, 600.0)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        spot = th.call(_delivered_data, v, "binance_spot")
    assert len(spot) > 500
    rows = _rows(root)
    ws_streams = ["binance.spot.trade", "binance.spot.depth", "binance.spot.book_ticker"]
    recorded = rows.filter(pl.col("stream").is_in(ws_streams))["raw"].to_list()
    assert recorded == spot  # frames sent = rows recorded, in order
    assert segment_paths(root) == []  # the WAL was retired: everything is in Parquet
    kinds = RecordingReader(root, streams=["recorder.status"]).read_stream("recorder.status")
    assert kinds["kind"].to_list()[-1] == "stop"
    # The day says it was recorded, from loopback venues (not the public ones), at 10x.
    days = root_provenance(root)
    assert list(days) == ["2024-06-01"]
    (entry,) = days["2024-06-01"].sources
    assert entry["kind"] == "recorded" and entry["by"] == "polyrl record"
    assert entry["clock_speed"] == 10.0
    assert entry["non_default_venues"] == sorted(entry["venues"])
    assert all("127.0.0.1" in url for url in entry["venues"].values())
    assert describe_entry(entry).startswith("recorded from non-default venues (127.0.0.1:")


def _wait_for(what: str, cond: Any, proc: subprocess.Popen[str], timeout_s: float = 60.0) -> Any:
    """Poll ``cond()`` until it returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        assert proc.poll() is None, f"the recorder exited while waiting for {what}"
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_9_leaves_readable_files_and_loses_at_most_a_second(tmp_path: Path) -> None:
    """kill -9 between two checkpoints: some rows are in Parquet (the first checkpoint's),
    the rest only in the write-ahead log, and recovery brings back all but the last ~second.

    The kill is placed, not left to chance: a kill just after a checkpoint rotated the log
    finds a new segment the recorder has not flushed a frame into yet (legitimately: it can
    hold at most ``wal_flush_s`` of frames), and then nothing tests the log. So checkpoints
    are 5 s apart, the test waits for the first rotation and kills 2 s after it: the segment
    left behind has 2 s of frames whose rows are not in Parquet, and the next checkpoint is
    3 s away (the kill is checked to have landed before it)."""
    cfg = _config(("btc", "eth"))
    speed = 10.0
    checkpoint_s, after_rotation_s = 5.0, 2.0
    th, clock = _serve_thread(cfg, speed=speed)
    root = tmp_path / "rec"
    with th as v:
        cfg_path = tmp_path / "loop.toml"
        th.call(lambda: _write_config(cfg_path, v, cfg, clock, checkpoint_s=checkpoint_s))
        proc = _recorder(cfg_path, root)
        try:
            first = _wait_for("the first write-ahead segment", lambda: segment_paths(root), proc)
            rotated = _wait_for(
                "the first checkpoint's new segment",
                lambda: [p for p in segment_paths(root) if p.name > first[0].name],
                proc,
            )[-1].name
            time.sleep(after_rotation_s)
            kill_ns = clock.now_ns()
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.communicate(timeout=30)
        spot = [
            f for log in th.call(lambda: list(v.ws_servers["binance_spot"].logs))
            for f in log.frames if f.delivered and f.kind == "data"
        ]  # fmt: skip
    left = [p.name for p in segment_paths(root)]
    assert left == [rotated], "the kill should land between the first and second checkpoint"
    # Every visible file is readable right after the kill (the first checkpoint wrote some).
    files = recording_files(root)
    assert files
    for f in files:
        pl.read_parquet(f)
    ws_streams = ["binance.spot.trade", "binance.spot.depth", "binance.spot.book_ticker"]
    checkpointed = set(_rows(root).filter(pl.col("stream").is_in(ws_streams))["raw"])
    report = recover(root, REC_CFG)
    assert report.rows_written > 0 and segment_paths(root) == []
    recorded = set(_rows(root).filter(pl.col("stream").is_in(ws_streams))["raw"])
    # Loss is bounded: every frame sent more than ~1 s (real) before the kill is on disk,
    # a second's worth of them (since the first checkpoint) through the write-ahead log only.
    horizon = kill_ns - int(1.0 * speed * NS_PER_S)
    early = [f.text for f in spot if f.t_ns <= horizon]
    assert len(early) > 300
    missing = [t for t in early if t not in recorded]
    assert missing == []
    assert len([t for t in early if t not in checkpointed]) > 50


def _outages(*roots: Path) -> list[tuple[str, str, str]]:
    """Every recorder.status row but connects and subscriptions, to tell why rows differ."""
    out = []
    for root in roots:
        st = RecordingReader(root, streams=["recorder.status"]).read_stream("recorder.status")
        quiet = ("start", "stop", "connect", "subscribe", "unsubscribe")
        for r in st.filter(~pl.col("kind").is_in(quiet)).iter_rows(named=True):
            out.append((root.name, r["kind"], r["message"]))
    return out


def test_serving_a_recording_and_recording_it_again_gives_the_same_rows(tmp_path: Path) -> None:
    cfg = _config(("btc",))
    first = tmp_path / "first"
    speed = 20.0

    async def record(content: Any, root: Path, seconds: float) -> None:
        clock = LiveClock(speed=speed, start_ns=T0)
        async with VenueServers(content, clock=clock) as v:
            # Nothing here tests the watchdog: give a busy machine a full real second.
            sources = dataclasses.replace(_sources(v, cfg), watchdog_s=speed * 1.0)
            run_cfg = dataclasses.replace(cfg, sources=sources)
            rec = Recorder(root, config=REC_CFG, clock=clock)
            stop = asyncio.Event()
            task = asyncio.create_task(
                rec.run(default_adapters(run_cfg), stop=stop, install_signal_handlers=False)
            )
            await asyncio.sleep(seconds)
            stop.set()
            await task

    sim = SimContent(cfg, start_ns=T0, end_ns=T0 + 10 * 60 * NS_PER_S, seed=SEED)
    asyncio.run(asyncio.wait_for(record(sim, first, 7.0), 60))
    second = tmp_path / "second"
    asyncio.run(asyncio.wait_for(record(RecordingContent(first), second, 5.0), 60))
    # Venue-timestamped WebSocket streams: the second recording reproduces the first's rows
    # (typed fields and raw text) over the span both cover.
    for stream in ("binance.spot.trade", "binance.spot.book_ticker", "binance.futures.trade",
                   "binance.futures.mark", "polymarket.price_change", "polymarket.trade",
                   "reference.price"):  # fmt: skip
        a = RecordingReader(first, streams=[stream], raw=True).read_stream(stream)
        b = RecordingReader(second, streams=[stream], raw=True).read_stream(stream)
        if stream == "reference.price":
            # The subscribe snapshot re-sends recent ticks as of the moment of connecting.
            a, b = a.filter(~pl.col("backfill")), b.filter(~pl.col("backfill"))
        key = "exch_ns" if stream != "binance.spot.book_ticker" else "update_id"
        # Per key (symbol or token: a token's feed starts when it is subscribed, which the
        # two runs did at slightly different moments), over the span both runs cover.
        drop = ["recv_ns", "seq"]
        total = 0
        for k in sorted(set(a["key"]) & set(b["key"])):
            ak, bk = a.filter(pl.col("key") == k), b.filter(pl.col("key") == k)
            lo = max(ak[key].min(), bk[key].min())  # type: ignore[type-var]
            hi = min(ak[key].max(), bk[key].max())  # type: ignore[type-var]
            sa = ak.filter(pl.col(key).is_between(lo, hi)).drop(drop)
            sb = bk.filter(pl.col(key).is_between(lo, hi)).drop(drop)
            assert sa.equals(sb), (stream, k, sa.height, sb.height, _outages(first, second))
            total += sa.height
        assert total > 20, stream
