"""Where a recording's data came from, day by day: simulated, recorded or imported.

Every writer of a recording says what it is: ``<root>/provenance/<YYYY-MM-DD>.json`` holds
``{"format": 1, "sources": [entry, ...]}``, one entry per distinct maker of that day's rows.
An entry is a JSON object whose ``kind`` is one of :data:`KINDS`:

- ``simulated`` (``polyrl simulate``, the embedded sample): ``by``, ``seed``, ``start`` and
  ``end`` of the simulated span, ``assets``, ``sim`` (every simulator setting) and
  ``sources`` (the ``[sources]`` settings the simulator follows; venue URLs left out);
- ``recorded`` (``polyrl record``, ``polyrl live``): ``by``, ``venues`` (the URL of every
  venue endpoint connected to), ``non_default_venues`` (the names of those that are not the
  public venues' defaults) and ``clock_speed`` when the clock ran faster than real time
  (only allowed against loopback venue servers);
- ``imported``: reserved for importers of public archives (none exists yet): ``by`` and what
  the importer says about its archive.

:class:`~polyrl.recording.writer.RecordingWriter` adds its entry to a day's file when it
writes the day's first file, so a day two sessions with different venues recorded lists
both; equal entries are kept once (a restarted recorder adds nothing). A day without the
file (a recording made before provenance was written) is ``unknown``: never guessed.
The files are not recording data: no digest, cache key or replay reads them.

:func:`data_section` turns the days a run used into the ``data`` section of its
``summary.json``, naming for simulated days the settings that differ from the simulator's
current defaults (read from its config dataclass, so they follow the defaults as they
change) and the seed.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from polyrl.config import to_dict
from polyrl.errors import RecordingError
from polyrl.recording.reader import list_partitions
from polyrl.sources.config import SourcesConfig
from polyrl.storage import Location, is_uri, locate

PROVENANCE_DIR = "provenance"
FORMAT = 1
KINDS = ("simulated", "recorded", "imported")
"""The kinds of data a recording day can hold; ``unknown`` is what a day without a file is."""

_URL_SUFFIXES = ("_ws", "_rest")


def provenance_path(root: Path | str, date: str) -> Path:
    """The provenance file of one recording day."""
    return Path(root) / PROVENANCE_DIR / f"{date}.json"


def check_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A provenance entry as a plain JSON-ready dict; a bad one is a RecordingError."""
    kind = entry.get("kind")
    if kind not in KINDS:
        raise RecordingError(f"provenance kind {kind!r} is not one of {', '.join(KINDS)}")
    try:
        return dict(json.loads(json.dumps(dict(entry), sort_keys=True)))
    except (TypeError, ValueError) as e:
        raise RecordingError(f"provenance entry is not JSON: {e}") from None


def _read(path: Path) -> list[dict[str, Any]] | None:
    """The entries of a provenance file; None when it cannot be read as one."""
    try:
        return _parse(path.read_bytes())
    except OSError:
        return None


def _parse(text: bytes) -> list[dict[str, Any]] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
        return None
    sources = data["sources"]
    if not all(isinstance(s, dict) and s.get("kind") in KINDS for s in sources):
        return None
    return sources


def note_day(root: Path | str, date: str, entry: Mapping[str, Any], *, fsync: bool = True) -> bool:
    """Add ``entry`` to the provenance of ``date`` under ``root`` (kept once if already there).

    The file is replaced atomically (temporary name, then rename). An existing file that
    cannot be read is left untouched (the day then reads as unknown, never as a guess) and
    False is returned; otherwise True.
    """
    e = check_entry(entry)
    path = provenance_path(root, date)
    sources: list[dict[str, Any]] = []
    if path.exists():
        found = _read(path)
        if found is None:
            return False
        sources = found
    if e in sources:
        return True
    sources.append(e)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    data = json.dumps({"format": FORMAT, "sources": sources}, indent=2, sort_keys=True)
    with open(tmp, "w") as fh:
        fh.write(data + "\n")
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    return True


@dataclass(frozen=True, slots=True)
class DayProvenance:
    """What made one recording day: its entries (empty: unknown) and, when unknown, why."""

    date: str
    sources: tuple[dict[str, Any], ...]
    problem: str = ""

    @property
    def kind(self) -> str:
        """``simulated``, ``recorded`` or ``imported``; ``mixed`` when the day holds
        several kinds; ``unknown`` when nothing says."""
        kinds = sorted({s["kind"] for s in self.sources})
        if not kinds:
            return "unknown"
        return kinds[0] if len(kinds) == 1 else "mixed"


def day_provenance(root: Path | str | Location, date: str) -> DayProvenance:
    """The provenance of one day of ``root`` (unknown, with the reason, when not said);
    ``root`` may be a URI or a :class:`~polyrl.storage.Location` (read through its store)."""
    if isinstance(root, Location) or is_uri(root):
        loc = locate(root)
        if not loc.is_local:
            name = f"{PROVENANCE_DIR}/{date}.json"
            text = loc.read_bytes(name)
            if text is None:
                return DayProvenance(
                    date, (), "no provenance file: made before recordings said what made them"
                )
            got = _parse(text)
            if got is None:
                return DayProvenance(date, (), f"unreadable provenance file {loc.uri}/{name}")
            return DayProvenance(date, tuple(got))
        root = loc.path
    path = provenance_path(root, date)
    if not path.exists():
        return DayProvenance(
            date, (), "no provenance file: made before recordings said what made them"
        )
    found = _read(path)
    if found is None:
        return DayProvenance(date, (), f"unreadable provenance file {path}")
    return DayProvenance(date, tuple(found))


def root_provenance(
    root: Path | str | Location, dates: str | Sequence[str] = "*"
) -> dict[str, DayProvenance]:
    """``{date: DayProvenance}`` for every recording day of ``root`` matching ``dates``."""
    if isinstance(root, str) and not is_uri(root):
        root = Path(root)
    days = sorted({p.date for p in list_partitions(root, dates)})
    return {d: day_provenance(root, d) for d in days}


# -- what makes an entry ---------------------------------------------------------------------


def venue_urls(sources: SourcesConfig) -> dict[str, str]:
    """The venue endpoint URLs of a ``[sources]`` config, by setting name."""
    return {
        f.name: getattr(sources, f.name)
        for f in dataclasses.fields(sources)
        if f.name.endswith(_URL_SUFFIXES)
    }


def simulation_sources(sources: SourcesConfig) -> dict[str, Any]:
    """The ``[sources]`` settings other than venue URLs (what a simulation follows)."""
    urls = venue_urls(sources)
    return {k: v for k, v in to_dict(sources).items() if k not in urls}


def recorded_entry(sources: SourcesConfig, *, by: str, clock_speed: float = 1.0) -> dict[str, Any]:
    """The provenance entry of data recorded from the venues ``sources`` points at."""
    urls = venue_urls(sources)
    defaults = venue_urls(SourcesConfig())
    entry: dict[str, Any] = {
        "kind": "recorded",
        "by": by,
        "venues": urls,
        "non_default_venues": sorted(k for k, v in urls.items() if v != defaults.get(k)),
    }
    if clock_speed != 1.0:
        entry["clock_speed"] = clock_speed
    return entry


def defaults_of(cls: type) -> dict[str, Any]:
    """A config dataclass's field defaults as plain JSON-ready values."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = to_dict(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = to_dict(f.default_factory())
    return out


# -- what a run says -------------------------------------------------------------------------

_NOT_RECORDED = "(not recorded)"


def changed_settings(entry: Mapping[str, Any], sim_class: type | None) -> dict[str, Any]:
    """A simulated entry's settings that differ from today's defaults: simulator settings
    by name, ``[sources]`` ones as ``sources.NAME``. A simulator setting the recording
    predates reads ``(not recorded)``; a ``[sources]`` one it predates is left out (most of
    them are the live adapters', not the simulator's). Without ``sim_class`` only the
    ``[sources]`` settings are compared."""
    out: dict[str, Any] = {}
    if sim_class is not None:
        got, want = entry.get("sim") or {}, defaults_of(sim_class)
        for k in sorted(set(got) | set(want)):
            if k not in got:
                out[k] = _NOT_RECORDED
            elif k not in want or got[k] != want[k]:
                out[k] = got[k]
    got, want = entry.get("sources") or {}, simulation_sources(SourcesConfig())
    for k in sorted(got):
        if k not in want or got[k] != want[k]:
            out[f"sources.{k}"] = got[k]
    return out


def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


def describe_entry(entry: Mapping[str, Any], changed: Mapping[str, Any] | None = None) -> str:
    """One entry in a few words: ``simulated, seed 7, book_lag_s=2.0`` (``changed``: the
    settings that differ from the defaults, :func:`changed_settings`; None when they were
    not compared), ``recorded``, ``recorded from non-default venues (127.0.0.1:9001, ...)``,
    ``imported``."""
    kind = entry["kind"]
    if kind == "simulated":
        text = f"simulated, seed {entry.get('seed', '?')}"
        if changed is None:  # not compared with any defaults: say nothing about them
            text += f", settings in {PROVENANCE_DIR}/"
        elif changed:
            text += ", " + ", ".join(f"{k}={_value(v)}" for k, v in changed.items())
        else:
            text += ", default settings"
        return text
    if kind == "recorded":
        names = entry.get("non_default_venues") or []
        venues = entry.get("venues") or {}
        text = "recorded"
        if names:
            hosts = sorted({_host(str(venues.get(n, n))) for n in names})
            text += f" from non-default venues ({', '.join(hosts)})"
        if entry.get("clock_speed") not in (None, 1.0):
            text += f", clock at {entry['clock_speed']:g}x real time"
        return text
    what = entry.get("archive")
    return f"imported from {what}" if what else "imported"


def describe_day(day: DayProvenance, sim_class: type | None) -> str:
    """A day's provenance in a few words (several makers joined by `` + ``)."""
    if not day.sources:
        return f"unknown ({day.problem})" if day.problem else "unknown"
    parts = []
    for s in day.sources:
        sim = s["kind"] == "simulated" and sim_class is not None
        parts.append(describe_entry(s, changed_settings(s, sim_class) if sim else None))
    return " + ".join(parts)


def data_section(
    root: Path | str | Location, days: Iterable[str], *, sim_class: type | None
) -> dict[str, Any]:
    """The ``data`` section of a run's summary over ``days`` of ``root``.

    ``{"text": one line, "kinds": [...], "days": {date: {"kind", "text", "sources": [index
    into "sources"], and for simulated days "seed" and "changed" (settings that differ from
    the defaults of ``sim_class``, the simulator's config dataclass)}}, "sources": [every
    distinct entry in full]}``. Deterministic: no paths, no times.
    """
    out_days: dict[str, Any] = {}
    sources: list[dict[str, Any]] = []
    for date in sorted(set(days)):
        day = day_provenance(root, date)
        idx = []
        for s in day.sources:
            if s not in sources:
                sources.append(s)
            idx.append(sources.index(s))
        item: dict[str, Any] = {
            "kind": day.kind,
            "text": describe_day(day, sim_class),
            "sources": idx,
        }
        sims = [s for s in day.sources if s["kind"] == "simulated"]
        if len(sims) == 1:
            item["seed"] = sims[0].get("seed")
            if sim_class is not None:
                item["changed"] = changed_settings(sims[0], sim_class)
        out_days[date] = item
    return {
        "text": describe_days({d: v["text"] for d, v in out_days.items()}),
        "kinds": sorted({v["kind"] for v in out_days.values()}),
        "days": out_days,
        "sources": sources,
    }


def describe_days(texts: Mapping[str, str]) -> str:
    """Days' descriptions as one line: one text when every day says the same, else
    ``DATE: text; DATE: text`` with consecutive equal days grouped as ``FIRST..LAST``."""
    if not texts:
        return "no days"
    values = list(dict.fromkeys(texts.values()))
    if len(values) == 1:
        return values[0]
    groups: list[tuple[str, str, str]] = []
    for d, t in sorted(texts.items()):
        if groups and groups[-1][2] == t:
            groups[-1] = (groups[-1][0], d, t)
        else:
            groups.append((d, d, t))
    return "; ".join(f"{a if a == b else f'{a}..{b}'}: {t}" for a, b, t in groups)
