"""Simulated frames -> a recording, through the same Parser and RecordingWriter as live.

``polyrl simulate`` and the embedded ``sample`` recording are built here. The result is
exactly what ``polyrl record`` would have written had the venues sent these frames: the
same parse, the same ``seq`` assignment, the same files, plus the recorder's own start,
connect and stop status rows.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyrl.config import Config, to_dict
from polyrl.errors import RecordingError
from polyrl.events import (
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_WS,
    CH_POLYMARKET_WS,
    CH_RECORDER,
    CH_RTDS_WS,
    ns_to_iso,
)
from polyrl.recording.provenance import simulation_sources
from polyrl.recording.schema import STORAGE_PLANS
from polyrl.recording.writer import RecordingWriter, recording_files
from polyrl.sim.frames import generate_frames
from polyrl.sources.parse import Parser, status_frame

WS_CHANNELS = (CH_BINANCE_SPOT_WS, CH_BINANCE_FUTURES_WS, CH_POLYMARKET_WS, CH_RTDS_WS)


@dataclass(slots=True)
class SimulationSummary:
    """What a simulation wrote."""

    root: str
    start_ns: int
    end_ns: int
    seed: int
    frames: int = 0
    rows: int = 0
    parse_errors: int = 0
    rows_by_stream: dict[str, int] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0


def simulation_provenance(
    config: Config, *, start_ns: int, end_ns: int, seed: int, by: str
) -> dict[str, Any]:
    """The provenance entry of a simulation (:mod:`polyrl.recording.provenance`): every
    simulator setting, the ``[sources]`` settings it follows, the seed, span and assets."""
    return {
        "kind": "simulated",
        "by": by,
        "seed": seed,
        "start": ns_to_iso(start_ns),
        "end": ns_to_iso(end_ns),
        "assets": list(config.assets),
        "sim": to_dict(config.sim),
        "sources": simulation_sources(config.sources),
    }


def simulate_to_recording(
    root: Path,
    *,
    start_ns: int,
    end_ns: int,
    seed: int,
    config: Config,
    progress: Callable[[int], None] | None = None,
    by: str = "polyrl simulate",
) -> SimulationSummary:
    """Simulate ``[start_ns, end_ns)`` for ``config.assets`` and record it under ``root``.

    ``root`` must not hold a recording already (mixing two runs' seq would be a lie).
    ``progress`` is called with the simulated time (ns) now and then. Each day written gets
    a provenance file naming the simulation (:func:`simulation_provenance`; ``by`` says
    what asked for it).
    """
    if end_ns <= start_ns:
        raise RecordingError(f"simulation span is empty: start {start_ns} >= end {end_ns}")
    root = Path(root)
    if root.exists() and recording_files(root):
        raise RecordingError(f"{root} already holds a recording; simulate into an empty directory")
    t0 = time.perf_counter()
    summary = SimulationSummary(str(root), start_ns, end_ns, seed)
    counts: Counter[str] = Counter()
    parser = Parser(storage=STORAGE_PLANS, exch_tolerance_s=config.recording.exch_time_tolerance_s)
    provenance = simulation_provenance(config, start_ns=start_ns, end_ns=end_ns, seed=seed, by=by)
    with RecordingWriter(
        root, config=config.recording, start_seq=0, provenance=provenance
    ) as writer:

        def status(kind: str, t: int, channel: str, message: str) -> None:
            for ev in parser.parse(status_frame(kind, t, channel=channel, message=message)):
                writer.append(ev)
                counts[ev.stream] += 1

        status("start", start_ns, CH_RECORDER, f"simulate seed={seed}")
        for ch in WS_CHANNELS:
            status("connect", start_ns, ch, "simulated")
        next_tick = start_ns
        for frame in generate_frames(
            config.sim,
            config.sources,
            assets=config.assets,
            start_ns=start_ns,
            end_ns=end_ns,
            seed=seed,
        ):
            summary.frames += 1
            for ev in parser.parse(frame):
                writer.append(ev)
                counts[ev.stream] += 1
                if ev.stream == "recorder.status" and ev.fields["kind"] == "parse_error":
                    summary.parse_errors += 1
            if progress is not None and frame.recv_ns >= next_tick:
                progress(frame.recv_ns)
                next_tick = frame.recv_ns + 60 * 1_000_000_000
        for ch in WS_CHANNELS:
            status("disconnect", end_ns, ch, "simulation end")
        status("stop", end_ns, CH_RECORDER, "simulation end")
    summary.rows = sum(counts.values())
    summary.rows_by_stream = dict(sorted(counts.items()))
    summary.files = len(writer.files_written)
    summary.bytes = writer.bytes_written
    summary.seconds = time.perf_counter() - t0
    if progress is not None:
        progress(end_ns)
    return summary
