"""``polyrl import polymarket``: Gamma markets and outcomes + PMXT hours -> a recording root.

For every UTC hour of ``[start, end)``:

1. a ``gamma`` unit: each asset's four windows starting in the hour looked up on Gamma
   (:mod:`polyrl.importers.gamma`) -> ``polymarket.market`` and ``polymarket.resolution``
   rows; a window Gamma does not know is a gap (``market absent from Gamma``);
2. a ``pmxt`` unit: the hour's archive file (:mod:`polyrl.importers.pmxt_read`), only the row
   groups that can hold the markets of interest (windows overlapping the hour, and the next
   hour's first window, whose market trades before it opens), converted
   (:mod:`polyrl.importers.pmxt`). A missing hour is a gap over the hour; a window starting in
   the hour whose market has no row in it is a gap over the window (``market absent from
   the archive``).

Each unit goes through :func:`polyrl.importers.store.write_unit` (deterministic ``seq``,
atomic, idempotent, never mixed with recorded rows unless asked) and a unit with a
done-marker is skipped unless ``force``: an interrupted import resumes where it stopped.
Gamma units come first (the PMXT units need their condition ids; a done Gamma unit keeps
them in its marker).
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from polyrl.events import NS_PER_S
from polyrl.importers.fetch import Archive
from polyrl.importers.gamma import (
    MARKET_LEAD_S,
    WINDOW_S,
    GammaWindow,
    events_table,
    fetch_window,
)
from polyrl.importers.pmxt import convert_hour
from polyrl.importers.pmxt_format import STREAMS, hour_object
from polyrl.importers.pmxt_read import read_hour
from polyrl.importers.store import (
    Gap,
    Unit,
    import_entry,
    system_allocator,
    unit_done,
    write_unit,
)

BY = "polyrl import polymarket"
HOUR_S = 3600
PRE_WINDOW_S = WINDOW_S
"""Rows of a market are read from this long before its window opens (trading starts early)."""


@dataclass(slots=True)
class ImportSummary:
    """What an import did (the CLI prints it)."""

    hours: int = 0
    windows: int = 0
    """Windows whose market Gamma knows and whose rows the archive holds."""
    gap_windows: int = 0
    missing_hours: list[str] = field(default_factory=list)
    absent_gamma: list[str] = field(default_factory=list)
    absent_archive: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    bytes_fetched: int = 0
    bytes_total: int = 0
    skipped_units: int = 0
    seconds: float = 0.0

    def add_rows(self, rows: dict[str, int]) -> None:
        for s, n in rows.items():
            self.rows[s] = self.rows.get(s, 0) + n


Progress = Callable[[str], None]


def _utc(t: _dt.date | _dt.datetime) -> _dt.datetime:
    if isinstance(t, _dt.datetime):
        t = t if t.tzinfo is not None else t.replace(tzinfo=_dt.UTC)
        return t.astimezone(_dt.UTC).replace(minute=0, second=0, microsecond=0)
    return _dt.datetime(t.year, t.month, t.day, tzinfo=_dt.UTC)


def _hours(start: _dt.date | _dt.datetime, end: _dt.date | _dt.datetime) -> list[_dt.datetime]:
    t, stop = _utc(start), _utc(end)
    out = []
    while t < stop:
        out.append(t)
        t += _dt.timedelta(hours=1)
    return out


def _market_info(w: GammaWindow) -> dict[str, Any]:
    m = w.market
    assert m is not None
    return {
        "slug": w.slug,
        "asset": w.asset,
        "condition_id": m.key,
        "start_ns": w.start_ns,
        "end_ns": w.end_ns,
    }


def _gamma_unit(gamma: Archive, hour: _dt.datetime, assets: Sequence[str]) -> Unit:
    h0 = int(hour.timestamp())
    windows = [fetch_window(gamma, a, s) for s in range(h0, h0 + HOUR_S, WINDOW_S) for a in assets]
    markets = [w.market for w in windows if w.market is not None]
    resolutions = [w.resolution for w in windows if w.resolution is not None]
    tables = {}
    if markets:
        tables["polymarket.market"] = events_table("polymarket.market", markets)
    if resolutions:
        tables["polymarket.resolution"] = events_table("polymarket.resolution", resolutions)
    gaps = [
        Gap(w.start_ns, w.end_ns, f"market {w.slug} absent from Gamma", "polymarket.market")
        for w in windows
        if w.market is None
    ]
    return Unit(
        source="gamma",
        date=hour.strftime("%Y-%m-%d"),
        hour=hour.hour,
        tables=tables,
        objects=[{"url": gamma.location("markets"), "requests": len(windows)}],
        gaps=gaps,
        info={
            "markets": [_market_info(w) for w in windows if w.market is not None],
            "absent": [w.slug for w in windows if w.market is None],
        },
    )


def _pmxt_unit(
    archive: Archive, hour: _dt.datetime, markets: list[dict[str, Any]]
) -> tuple[Unit, dict[str, Any]]:
    date, h = hour.strftime("%Y-%m-%d"), hour.hour
    h0 = int(hour.timestamp()) * NS_PER_S
    h1 = h0 + HOUR_S * NS_PER_S
    pre = PRE_WINDOW_S * NS_PER_S
    wanted = [m for m in markets if m["start_ns"] - pre < h1 and m["end_ns"] > h0]
    cids = sorted({m["condition_id"] for m in wanted})
    assets = {m["condition_id"]: m["asset"] for m in wanted}
    rel = hour_object(date, h)
    read = read_hour(archive, rel, cids)
    stats = {"bytes": read.bytes_fetched, "size": read.size, "rows": 0, "missing": False}
    if read.table is None:
        stats["missing"] = True
        gap = Gap(h0, h1, f"hour {date}T{h:02d} missing from the archive")
        unit = Unit("pmxt", date, h, {}, [], [gap], {"missing": True, "file": rel})
        return unit, stats
    tables = convert_hour(read.table, assets)
    # The distinct markets first (a few), not a Python object per row.
    markets_col = read.table.column("market")
    present = set(pc.unique(markets_col).cast("binary").to_pylist()) if cids else set()
    present_s = {p.decode() for p in present}
    gaps = [
        Gap(m["start_ns"], m["end_ns"], f"market {m['slug']} absent from the archive")
        for m in wanted
        if h0 <= m["start_ns"] < h1 and m["condition_id"] not in present_s
    ]
    obj = {
        ("url" if read.location.startswith("http") else "file"): read.location,
        "etag": read.etag,
        "size": read.size,
        "bytes_fetched": read.bytes_fetched,
        "row_groups": f"{read.row_groups_read}/{read.row_groups}",
    }
    stats["rows"] = sum(t.num_rows for t in tables.values())
    info = {
        "file": rel,
        "markets": len(cids),
        "absent": [m["slug"] for m in wanted if h0 <= m["start_ns"] < h1 and m["condition_id"]
                   not in present_s],
    }  # fmt: skip
    return Unit("pmxt", date, h, tables, [obj], gaps, info), stats


def import_range(
    out: Path | str,
    start: _dt.date | _dt.datetime,
    end: _dt.date | _dt.datetime,
    *,
    assets: Sequence[str],
    archive: Archive,
    gamma: Archive,
    allow_mixed: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import the UTC hours of ``[start, end)`` (days, or times truncated to the hour) into
    ``out`` (see the module docstring)."""
    t_start = time.monotonic()
    say = progress or (lambda _msg: None)
    out = Path(out)
    summary = ImportSummary()
    entry = import_entry("pmxt", archive.base, by=BY, gamma=gamma.base)
    hours = _hours(start, end)
    summary.hours = len(hours)
    markets: list[dict[str, Any]] = []
    for hour in hours:
        unit = Unit("gamma", hour.strftime("%Y-%m-%d"), hour.hour)
        done = None if force else unit_done(out, unit)
        if done is None:
            unit = _gamma_unit(gamma, hour, assets)
            write_unit(out, unit, entry=entry, allow_mixed=allow_mixed)
            done = unit_done(out, unit)
            assert done is not None
        else:
            summary.skipped_units += 1
        markets.extend(done["info"]["markets"])
        summary.absent_gamma.extend(done["info"]["absent"])
        summary.add_rows({s: n for s, n in done["rows"].items() if s.startswith("polymarket.")})
    for hour in hours:
        label = hour.strftime("%Y-%m-%dT%H")
        unit = Unit("pmxt", hour.strftime("%Y-%m-%d"), hour.hour)
        done = None if force else unit_done(out, unit)
        t0 = time.monotonic()
        if done is not None:
            summary.skipped_units += 1
            say(f"{label}: done before, skipped (--force imports it again)")
        else:
            # Arrow's buffers from the system allocator, as the store's (and the Binance
            # importer's): an hour's first-touched pages cost less than with mimalloc.
            with system_allocator():
                unit, stats = _pmxt_unit(archive, hour, markets)
            write_unit(out, unit, entry=entry, allow_mixed=allow_mixed)
            done = unit_done(out, unit)
            assert done is not None
            if stats["missing"]:
                say(f"{label}: missing from the archive (a gap), {time.monotonic() - t0:.1f} s")
            else:
                pct = 100.0 * stats["bytes"] / stats["size"] if stats["size"] else 0.0
                say(
                    f"{label}: {stats['rows']:,} rows, fetched {stats['bytes']:,} of "
                    f"{stats['size']:,} bytes ({pct:.1f}%), {time.monotonic() - t0:.1f} s"
                )
        info = done["info"]
        if info.get("missing"):
            summary.missing_hours.append(label)
        summary.absent_archive.extend(info.get("absent", []))
        for obj in done["objects"]:
            summary.bytes_fetched += int(obj.get("bytes_fetched", 0))
            summary.bytes_total += int(obj.get("size", 0))
        summary.add_rows({s: n for s, n in done["rows"].items() if s in STREAMS})
    in_missing = 0
    for m in markets:
        hour_label = _dt.datetime.fromtimestamp(m["start_ns"] // NS_PER_S, _dt.UTC).strftime(
            "%Y-%m-%dT%H"
        )
        if hour_label in summary.missing_hours:
            in_missing += 1
    absent = set(summary.absent_archive)
    summary.gap_windows = len(summary.absent_gamma) + len(absent) + in_missing
    summary.windows = len(markets) - len(absent) - in_missing
    summary.seconds = time.monotonic() - t_start
    return summary


__all__ = ["BY", "MARKET_LEAD_S", "ImportSummary", "import_range"]
