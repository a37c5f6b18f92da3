"""What a recording holds: per stream and asset (or key) rows, span, rate, silences, latency,
and from ``recorder.status`` the gaps, reconnects and parse errors per channel, and each
channel's failures (connection failures, HTTP errors, alerts, runs it never connected); and per
stream the rows whose ``quality`` flags are set, counted per flag.

Works one hour partition at a time so a month of recordings inspects in bounded memory.
Latency is ``recv_ns - exch_ns`` in ms (p50/p99, 1 ms resolution, clipped to +-60 s): it
includes the recorder's clock offset, so read it as a relative measure unless the host
clock is disciplined.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from polyrl.events import NS_PER_MS, NS_PER_S, STATUS_STREAM, ns_to_iso
from polyrl.recording.origin import StreamOrigin, format_origins, stream_origins
from polyrl.recording.provenance import day_provenance, describe_day
from polyrl.recording.reader import list_partitions, read_frame
from polyrl.sources.quality.flags import FLAGS
from polyrl.storage import Location, locate

_LAT_MAX_MS = 60_000
_LAT_BINS = 2 * _LAT_MAX_MS + 1


@dataclass(slots=True)
class StreamStats:
    """Statistics of one stream for one group (an asset, or a key)."""

    stream: str
    group: str
    rows: int = 0
    first_ns: int = 0
    last_ns: int = 0
    max_silence_s: float = 0.0
    max_silence_at_ns: int = 0
    latency_ms_p50: float | None = None
    latency_ms_p99: float | None = None
    mean_rate_per_s: float = 0.0
    _lat_hist: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("_lat_hist")
        d["first"] = ns_to_iso(self.first_ns) if self.rows else None
        d["last"] = ns_to_iso(self.last_ns) if self.rows else None
        return d


@dataclass(slots=True)
class ChannelStatus:
    """What ``recorder.status`` says about one channel."""

    channel: str
    connects: int = 0
    disconnects: int = 0
    reconnects: int = 0
    gaps: int = 0
    gap_seconds: float = 0.0
    parse_errors: int = 0
    parse_errors_by_stream: dict[str, int] = field(default_factory=dict)
    starts: int = 0
    stops: int = 0
    connect_failures: int = 0
    """Failed connection attempts (``connect_failed`` rows)."""
    http_errors: int = 0
    """REST requests answered with an error or not at all (``http_error`` rows)."""
    alerts: int = 0
    """Outages that lasted the recorder's ``alert_after_s`` (``alert`` rows)."""
    never_connected: int = 0
    """Recorder runs in which the channel was never reached (``never_connected`` rows)."""


@dataclass(slots=True)
class FlaggedRows:
    """Rows of one stream whose ``quality`` is not 0, in all and per flag name."""

    stream: str
    rows: int = 0
    by_flag: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class InspectReport:
    """The whole answer of ``polyrl inspect``."""

    root: str
    dates: list[str]
    by: str
    streams: list[StreamStats]
    channels: list[ChannelStatus]
    hours: int
    flagged: list[FlaggedRows] = field(default_factory=list)
    """Streams with flagged rows (none listed: every row is clean)."""
    data: dict[str, str] = field(default_factory=dict)
    """Per day, what made it (:mod:`polyrl.recording.provenance`): simulated, recorded,
    imported, or unknown."""
    origins: list[StreamOrigin] = field(default_factory=list)
    """Per day and stream, the hours written here (recorded or simulated) and imported, per
    import source (:mod:`polyrl.recording.origin`)."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "root": self.root,
                "dates": self.dates,
                "by": self.by,
                "hours": self.hours,
                "streams": [s.to_json() for s in self.streams],
                "channels": [asdict(c) for c in self.channels],
                "flagged": [asdict(f) for f in self.flagged],
                "data": self.data,
                "origins": [o.to_json() for o in self.origins],
            },
            indent=2,
        )


def inspect_recording(
    root: Path | str | Location,
    dates: str | Sequence[str] = "*",
    *,
    by: Literal["asset", "key"] = "asset",
    sim_class: type | None = None,
) -> InspectReport:
    """Summarise a recording root (see module doc). Errors name the root, glob or file.
    ``sim_class``: the simulator's config dataclass, to name a simulated day's settings that
    differ from its defaults."""
    if by not in ("asset", "key"):
        raise ValueError(f"by: {by!r} is neither 'asset' nor 'key'")
    loc = locate(root)
    if not loc.is_local:
        root = loc
    parts = list_partitions(loc, dates)
    globs = [dates] if isinstance(dates, str) else list(dates)
    stats: dict[tuple[str, str], StreamStats] = {}
    channels: dict[str, ChannelStatus] = {}
    flagged: dict[str, FlaggedRows] = {}
    for p in parts:
        cols = ["recv_ns", "exch_ns", "key", "asset", "quality"]
        if p.stream == STATUS_STREAM:
            cols += ["kind", "stream_id", "gap_start_ns", "gap_end_ns"]
        frames = [read_frame(f, p.stream, cols, p.fs) for f in p.files]
        df = pl.concat(frames) if len(frames) > 1 else frames[0]
        if p.stream == STATUS_STREAM:
            _status(df, channels)
            _failures(df, channels)
        _accumulate(p.stream, df, by, stats)
        _count_flags(p.stream, df, flagged)
    for s in stats.values():
        span = (s.last_ns - s.first_ns) / NS_PER_S
        s.mean_rate_per_s = s.rows / span if span > 0 else float(s.rows)
        if s._lat_hist is not None and s._lat_hist.sum():
            s.latency_ms_p50 = _quantile(s._lat_hist, 0.5)
            s.latency_ms_p99 = _quantile(s._lat_hist, 0.99)
    # Each recorder start opens every channel once; further connects are reconnects.
    runs = max(1, sum(c.starts for c in channels.values()))
    for c in channels.values():
        c.reconnects = max(0, c.connects - runs)
    ordered = sorted(stats.values(), key=lambda s: (s.stream, s.group))
    return InspectReport(
        root=loc.uri if not loc.is_local else str(root),
        dates=globs,
        by=by,
        streams=ordered,
        channels=sorted(channels.values(), key=lambda c: c.channel),
        hours=len({(p.date, p.hour) for p in parts}),
        flagged=sorted(flagged.values(), key=lambda f: f.stream),
        data={
            d: describe_day(day_provenance(root, d), sim_class)
            for d in sorted({p.date for p in parts})
        },
        origins=stream_origins(parts),
    )


def _accumulate(
    stream: str, df: pl.DataFrame, by: str, stats: dict[tuple[str, str], StreamStats]
) -> None:
    group = pl.col("key") if by == "key" else pl.coalesce(pl.col("asset"), pl.col("key"))
    df = df.with_columns(group.alias("_g")).sort(["_g", "recv_ns"])
    agg = df.group_by("_g", maintain_order=True).agg(
        pl.len().alias("rows"),
        pl.col("recv_ns").first().alias("first"),
        pl.col("recv_ns").last().alias("last"),
        pl.col("recv_ns").diff().max().alias("silence"),
        pl.col("recv_ns").diff().arg_max().alias("silence_idx"),
    )
    lat = df.filter(pl.col("exch_ns").is_not_null()).select(
        "_g",
        ((pl.col("recv_ns") - pl.col("exch_ns")) // NS_PER_MS)
        .clip(-_LAT_MAX_MS, _LAT_MAX_MS)
        .alias("lat"),
    )
    for row in agg.iter_rows(named=True):
        g = row["_g"]
        s = stats.get((stream, g))
        first, last = int(row["first"]), int(row["last"])
        if s is None:
            s = stats[(stream, g)] = StreamStats(stream, g, first_ns=first, last_ns=first)
        elif first - s.last_ns > s.max_silence_s * NS_PER_S:
            # A silence spanning the boundary between two hour partitions.
            s.max_silence_s = (first - s.last_ns) / NS_PER_S
            s.max_silence_at_ns = s.last_ns
        silence = row["silence"]
        if silence is not None and silence / NS_PER_S > s.max_silence_s:
            s.max_silence_s = silence / NS_PER_S
            sub = df.filter(pl.col("_g") == g)["recv_ns"]
            s.max_silence_at_ns = int(sub[int(row["silence_idx"]) - 1])
        s.rows += int(row["rows"])
        s.first_ns = min(s.first_ns, first)
        s.last_ns = max(s.last_ns, last)
    if lat.height:
        for (g,), part in lat.group_by(["_g"]):
            s = stats[(stream, str(g))]
            h = np.bincount(part["lat"].to_numpy() + _LAT_MAX_MS, minlength=_LAT_BINS)
            s._lat_hist = h if s._lat_hist is None else s._lat_hist + h


def _quantile(hist: np.ndarray, q: float) -> float:
    c = np.cumsum(hist)
    idx = int(np.searchsorted(c, q * c[-1], side="left"))
    return float(idx - _LAT_MAX_MS)


def _status(df: pl.DataFrame, channels: dict[str, ChannelStatus]) -> None:
    for row in df.iter_rows(named=True):
        c = channels.setdefault(row["key"], ChannelStatus(row["key"]))
        kind = row["kind"]
        if kind == "connect":
            c.connects += 1
        elif kind == "disconnect":
            c.disconnects += 1
        elif kind == "gap":
            c.gaps += 1
            if row["gap_start_ns"] is not None and row["gap_end_ns"] is not None:
                c.gap_seconds += (row["gap_end_ns"] - row["gap_start_ns"]) / NS_PER_S
        elif kind == "parse_error":
            c.parse_errors += 1
            k = row["stream_id"] or "?"
            c.parse_errors_by_stream[k] = c.parse_errors_by_stream.get(k, 0) + 1
        elif kind == "start":
            c.starts += 1
        elif kind == "stop":
            c.stops += 1


_FAILURE_FIELDS = {
    "connect_failed": "connect_failures",
    "http_error": "http_errors",
    "alert": "alerts",
    "never_connected": "never_connected",
}


def _failures(df: pl.DataFrame, channels: dict[str, ChannelStatus]) -> None:
    """Count each channel's failure rows (see :data:`_FAILURE_FIELDS`)."""
    counts = (
        df.filter(pl.col("kind").is_in(list(_FAILURE_FIELDS)))
        .group_by("key", "kind")
        .agg(pl.len().alias("n"))
    )
    for key, kind, n in counts.iter_rows():
        c = channels.setdefault(key, ChannelStatus(key))
        attr = _FAILURE_FIELDS[kind]
        setattr(c, attr, getattr(c, attr) + int(n))


def format_failures(report: InspectReport) -> list[str]:
    """The per-channel failure table (empty when no channel ever failed)."""
    failing = [
        c
        for c in report.channels
        if c.connect_failures or c.http_errors or c.alerts or c.never_connected
    ]
    if not failing:
        return []
    lines = [
        "",
        f"{'channel failures':<36} {'conn. fail':>10} {'http err':>9} {'alerts':>7} "
        f"{'never conn.':>11}",
    ]
    for c in failing:
        lines.append(
            f"{c.channel:<36} {c.connect_failures:>10} {c.http_errors:>9} {c.alerts:>7} "
            f"{c.never_connected:>11}"
        )
    return lines


def _count_flags(stream: str, df: pl.DataFrame, flagged: dict[str, FlaggedRows]) -> None:
    q = df["quality"].to_numpy()
    q = q[q != 0]
    if not q.shape[0]:
        return
    f = flagged.setdefault(stream, FlaggedRows(stream))
    f.rows += int(q.shape[0])
    for flag in FLAGS:
        n = int(np.count_nonzero(q & flag.mask))
        if n:
            f.by_flag[flag.name] = f.by_flag.get(flag.name, 0) + n


def format_flagged(report: InspectReport) -> list[str]:
    """The flagged-rows section of the text report (one line per stream with flags)."""
    if not report.flagged:
        return ["", "quality flags: none (every row is clean)"]
    lines = ["", f"{'flagged rows (quality)':<30} {'rows':>10}  per flag"]
    for f in report.flagged:
        per = ", ".join(f"{name} {n:,}" for name, n in f.by_flag.items())
        lines.append(f"{f.stream:<30} {f.rows:>10,}  {per}")
    return lines


def format_report(report: InspectReport) -> str:
    """A plain-text table of a report (what ``polyrl inspect`` prints without ``--json``)."""
    lines = [
        f"{report.root}  dates {', '.join(report.dates)}  ({report.hours} hour partition(s))",
        "",
    ]
    head = (
        f"{'stream':<30} {report.by:<26} {'rows':>10} {'first (UTC)':<20} {'last (UTC)':<20} "
        f"{'rate/s':>9} {'max silence':>12} {'lat p50/p99 ms':>16}"
    )
    lines += [head, "-" * len(head)]
    for s in report.streams:
        group = s.group if len(s.group) <= 26 else s.group[:12] + "…" + s.group[-13:]
        lat = (
            f"{s.latency_ms_p50:.0f}/{s.latency_ms_p99:.0f}"
            if s.latency_ms_p50 is not None and s.latency_ms_p99 is not None
            else "-"
        )
        lines.append(
            f"{s.stream:<30} {group:<26} {s.rows:>10,} {ns_to_iso(s.first_ns)[:19]:<20} "
            f"{ns_to_iso(s.last_ns)[:19]:<20} {s.mean_rate_per_s:>9.2f} "
            f"{s.max_silence_s:>11.1f}s {lat:>16}"
        )
    if report.channels:
        lines += [
            "",
            f"{'channel':<30} {'connects':>8} {'reconn.':>8} {'disconn.':>8} "
            f"{'gaps':>5} {'gap s':>8} {'parse err':>9}",
        ]
        for c in report.channels:
            lines.append(
                f"{c.channel:<30} {c.connects:>8} {c.reconnects:>8} {c.disconnects:>8} "
                f"{c.gaps:>5} {c.gap_seconds:>8.1f} {c.parse_errors:>9}"
            )
    lines += format_failures(report)
    lines += format_flagged(report)
    if report.data:
        lines += ["", "data (what made each day):"]
        lines += [f"  {d}  {text}" for d, text in report.data.items()]
    lines += format_origins(report.root, report.origins)
    return "\n".join(lines)
