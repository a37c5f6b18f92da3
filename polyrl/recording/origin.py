"""Per day and stream: were the rows recorded here, or imported, and from which archive.

Told from the files themselves, so it cannot drift from the data: the recording writer
(``polyrl record``, ``live``, ``simulate``) names its files ``part-*.parquet``; importers name
theirs ``import-<source>-<unit>.parquet`` (:data:`IMPORT_FILE_PREFIX`; ``<source>`` is
``pmxt``, ``gamma`` or ``binance``). Where a source's rows came from is in the day's
provenance entries of kind ``imported`` (their ``source`` and ``archive``); whether the
writer's rows were simulated or recorded is in the day's other entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import urlsplit

from polyrl.recording.provenance import day_provenance
from polyrl.recording.reader import Partition

IMPORT_FILE_PREFIX = "import-"
"""File-name prefix of imported rows (``import-<source>-<unit>.parquet``)."""


def import_source(path: PurePath) -> str | None:
    """``import-pmxt-2026-05-01T13.parquet`` -> ``pmxt``; a writer's file -> None."""
    name = path.name
    if not name.startswith(IMPORT_FILE_PREFIX):
        return None
    return name[len(IMPORT_FILE_PREFIX) :].split("-", 1)[0]


@dataclass(slots=True)
class StreamOrigin:
    """Hours of one stream on one day, by who wrote them."""

    date: str
    stream: str
    written_hours: int = 0
    """Hours holding rows of polyrl's writer (recorded or simulated)."""
    imported_hours: dict[str, int] = field(default_factory=dict)
    """Hours holding imported rows, per import source."""

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "stream": self.stream,
            "written_hours": self.written_hours,
            "imported_hours": dict(self.imported_hours),
        }


def stream_origins(parts: Sequence[Partition]) -> list[StreamOrigin]:
    """One :class:`StreamOrigin` per (day, stream) of ``parts``, sorted."""
    out: dict[tuple[str, str], StreamOrigin] = {}
    for p in parts:
        o = out.setdefault((p.date, p.stream), StreamOrigin(p.date, p.stream))
        sources = {import_source(f) for f in p.files}
        if None in sources:
            o.written_hours += 1
        for s in sorted(x for x in sources if x is not None):
            o.imported_hours[s] = o.imported_hours.get(s, 0) + 1
    return [out[k] for k in sorted(out)]


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def day_archives(root: Path | str, date: str) -> tuple[dict[str, str], str]:
    """For one day: ``{import source: archive}`` from its provenance, and what wrote the
    writer's rows (``recorded``, ``simulated``, both, or ``unknown``)."""
    day = day_provenance(root, date)
    archives: dict[str, str] = {}
    written = sorted({s["kind"] for s in day.sources if s["kind"] != "imported"})
    for s in day.sources:
        if s["kind"] != "imported":
            continue
        where = {str(s["source"]): s.get("archive")} if s.get("source") else {}
        if s.get("gamma"):  # the Polymarket importer reads markets and outcomes from Gamma
            where["gamma"] = s["gamma"]
        for name, loc in where.items():
            loc = str(loc or "?")
            archives[name] = _host(loc) if "://" in loc else loc
    return archives, " + ".join(written) or "unknown"


def describe_origin(o: StreamOrigin, archives: Mapping[str, str], written: str) -> str:
    """``imported (pmxt) from r2v2.pmxt.dev, 24 h`` / ``recorded, 3 h`` / both joined."""
    parts = []
    if o.written_hours:
        parts.append(f"{written}, {o.written_hours} h")
    for src, n in sorted(o.imported_hours.items()):
        where = archives.get(src)
        parts.append(f"imported ({src})" + (f" from {where}" if where else "") + f", {n} h")
    text = " + ".join(parts)
    if o.written_hours and o.imported_hours:
        text += "  MIXED"
    return text


def format_origins(root: Path | str, origins: Sequence[StreamOrigin]) -> list[str]:
    """The text report's origin section: one line per day and stream."""
    if not origins:
        return []
    lines = ["", "origin (per day and stream):"]
    cache: dict[str, tuple[dict[str, str], str]] = {}
    for o in origins:
        if o.date not in cache:
            cache[o.date] = day_archives(root, o.date)
        archives, written = cache[o.date]
        lines.append(f"  {o.date}  {o.stream:<30} {describe_origin(o, archives, written)}")
    return lines
