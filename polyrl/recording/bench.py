"""``polyrl bench store``: how fast the store writes and reads, and how much disk it takes.

Measured on a simulated recording (generated once into the work directory and reused):

- write: events/s through :class:`RecordingWriter` (Event -> column buffers -> zstd
  Parquet, fsync included), per hour of events held in memory beforehand;
- read-and-merge: events/s delivered as merged columnar batches by
  :class:`RecordingReader` (typed columns; and again with the raw text);
- per-event view: events/s of :meth:`RecordingReader.events` (convenience path);
- bytes on disk per simulated hour, per stream.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from polyrl.config import Config
from polyrl.errors import RecordingError
from polyrl.events import NS_PER_S, iso_to_ns
from polyrl.recording.reader import RecordingReader
from polyrl.recording.writer import RecordingWriter, recording_files


@dataclass(slots=True)
class StoreBench:
    """Figures of one ``polyrl bench store`` run."""

    hours: float
    events: int = 0
    write_events_per_s: float = 0.0
    read_merge_events_per_s: float = 0.0
    read_merge_raw_events_per_s: float = 0.0
    event_view_events_per_s: float = 0.0
    bytes_total: int = 0
    bytes_per_hour_by_stream: dict[str, float] = field(default_factory=dict)
    machine: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _machine() -> str:
    import os

    return (
        f"{platform.machine()} {os.cpu_count()} cores, {platform.system()}, "
        f"Python {platform.python_version()}"
    )


def ensure_bench_recording(
    work: Path,
    *,
    hours: float,
    seed: int,
    config: Config,
    start: str = "2024-06-01T00:00:00Z",
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The simulated recording benchmarks measure on: made once under ``work``, then reused."""
    from polyrl.sim.record import simulate_to_recording

    work.mkdir(parents=True, exist_ok=True)
    src = work / f"sim-{hours:g}h-seed{seed}"
    marker = src / "COMPLETE"
    if not marker.exists():
        if src.exists():
            shutil.rmtree(src)
        if progress is not None:
            progress(f"simulating {hours:g} h into {src} (once; reused by later runs)")
        start_ns = iso_to_ns(start)
        simulate_to_recording(
            src,
            start_ns=start_ns,
            end_ns=start_ns + int(hours * 3600) * NS_PER_S,
            seed=seed,
            config=config,
            by="polyrl bench",
        )
        marker.write_text("ok")
    return src


def bench_store(
    work: Path,
    *,
    hours: float,
    seed: int,
    config: Config,
    start: str = "2024-06-01T00:00:00Z",
    progress: Callable[[str], None] | None = None,
) -> StoreBench:
    """Run the store benchmark in ``work`` (reusing a previous simulation of the same span)."""
    say = progress or (lambda msg: None)
    src = ensure_bench_recording(
        work, hours=hours, seed=seed, config=config, start=start, progress=progress
    )
    result = StoreBench(hours=hours, machine=_machine())

    # Write: one hour of events at a time in memory, then timed through the writer.
    dst = work / "write"
    if dst.exists():
        shutil.rmtree(dst)
    reader = RecordingReader(src, raw=True)
    spent = 0.0
    n = 0
    with RecordingWriter(dst, config=config.recording, start_seq=0) as writer:
        for date, hour in reader.hours():
            say(f"write: {date} {hour:02d}h")
            events = [ev for b in reader.hour_batches(date, hour) for ev in b.events()]
            t0 = time.perf_counter()
            for ev in events:
                writer.append(ev)
            writer.flush()
            spent += time.perf_counter() - t0
            n += len(events)
            del events
    result.events = n
    result.write_events_per_s = n / spent if spent else 0.0
    shutil.rmtree(dst)

    say("read and merge")
    for raw in (False, True):
        t0 = time.perf_counter()
        m = sum(len(b) for b in RecordingReader(src, raw=raw).batches())
        rate = m / (time.perf_counter() - t0)
        if raw:
            result.read_merge_raw_events_per_s = rate
        else:
            result.read_merge_events_per_s = rate

    say("per-event view (first hour)")
    first_date, first_hour = reader.hours()[0]
    r1 = RecordingReader(src, dates=first_date)
    t0 = time.perf_counter()
    k = 0
    for b in r1.hour_batches(first_date, first_hour):
        for _ in b.events():
            k += 1
    result.event_view_events_per_s = k / (time.perf_counter() - t0)

    sizes: dict[str, int] = {}
    for p in recording_files(src):
        stream = p.relative_to(src).parts[0]
        sizes[stream] = sizes.get(stream, 0) + p.stat().st_size
    result.bytes_total = sum(sizes.values())
    result.bytes_per_hour_by_stream = {s: b / hours for s, b in sorted(sizes.items())}
    return result


@dataclass(slots=True)
class RecordBench:
    """Figures of one ``polyrl bench record`` run (the recorder is a child process)."""

    speed: float
    seconds: float
    simulated_s: float = 0.0
    frames: int = 0
    rows: int = 0
    frames_per_s: float = 0.0
    cpu_fraction: float = 0.0
    frames_per_cpu_s: float = 0.0
    cpu_per_1000_fps: float = 0.0
    rss_mb_samples: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    machine: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _proc_cpu_s(pid: int) -> float:
    import os

    with open(f"/proc/{pid}/stat") as fh:
        parts = fh.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def _proc_rss_mb(pid: int, key: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench_record(
    work: Path,
    *,
    speed: float,
    seconds: float,
    config: Config,
    progress: Callable[[str], None] | None = None,
) -> RecordBench:
    """Serve simulated markets at ``speed`` x real time from this process and run
    ``polyrl record`` against them in a child process for ``seconds``: frames it recorded
    per second, its CPU use and its memory (sampled every second, and the peak)."""
    import dataclasses
    import signal
    import subprocess
    import sys

    import polars as pl

    from polyrl.clock import LiveClock
    from polyrl.sim.serve import ServeConfig, ServersThread, SimContent, VenueServers
    from polyrl.sim.serve.configfile import serve_toml

    say = progress or (lambda m: None)
    root = work / "record"
    if root.exists():
        shutil.rmtree(root)
    work.mkdir(parents=True, exist_ok=True)
    start_ns = iso_to_ns("2024-06-01T00:00:00Z")
    span = int((seconds + 60) * speed) * NS_PER_S
    clock = LiveClock(speed=speed, start_ns=start_ns)
    content = SimContent(config, start_ns=start_ns, end_ns=start_ns + span, seed=1)
    servers = VenueServers(content, clock=clock, config=ServeConfig(log_frames=False))
    res = RecordBench(speed=speed, seconds=seconds, machine=_machine())
    with ServersThread(servers) as v:
        sources = dataclasses.replace(
            v.sources_config(config.sources), watchdog_s=max(config.sources.watchdog_s, 60.0)
        )
        cfg_path = work / "bench-record.toml"
        text = serve_toml(
            config, sources, speed=speed, start_ns=start_ns, anchor_ns=clock.anchor_real_ns
        )
        cfg_path.write_text(text)
        say(f"serving at {speed:g}x; recording for {seconds:g} s into {root}")
        proc = subprocess.Popen(
            [sys.executable, "-m", "polyrl", "record", "--config", str(cfg_path), "--out",
             str(root), "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(2.0)  # start-up (imports, connections) is not part of the rate
        t0 = time.perf_counter()
        cpu0 = _proc_cpu_s(proc.pid)
        while time.perf_counter() - t0 < seconds and proc.poll() is None:
            time.sleep(1.0)
            res.rss_mb_samples.append(round(_proc_rss_mb(proc.pid), 1))
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr is not None else ""  # a pipe: never None
            raise RecordingError(f"the recorder exited early: {err[-2000:]}")
        cpu = _proc_cpu_s(proc.pid) - cpu0
        elapsed = time.perf_counter() - t0
        res.peak_rss_mb = _proc_rss_mb(proc.pid, "VmHWM")
        cut = clock.now_ns()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise RecordingError(f"the recorder failed: {err[-2000:]}")
    first = start_ns + int(2.0 * speed * NS_PER_S)
    reader = RecordingReader(root, raw=True, columns=[])
    frames = rows = 0
    for stream in reader.streams:
        df = reader.read_stream(stream).filter(pl.col("recv_ns").is_between(first, cut))
        rows += df.height
        frames += df.select(["recv_ns", "raw"]).unique().height
    res.simulated_s = seconds * speed
    res.frames, res.rows = frames, rows
    res.frames_per_s = frames / elapsed
    res.cpu_fraction = cpu / elapsed
    res.frames_per_cpu_s = frames / cpu if cpu > 0 else float("nan")
    res.cpu_per_1000_fps = res.cpu_fraction / (res.frames_per_s / 1000.0)
    return res
