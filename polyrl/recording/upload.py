"""Shipping a local recording's closed hours to an object store as complete objects.

A partition of an hour that ended more than ``grace_s`` ago (the recorder compacts it then,
see ``[recording] compact_grace_s``) is closed: its visible Parquet files are uploaded one
object each, under the same relative key below the destination, and so are the days'
provenance files. Each object is written in one put (a multipart upload completes
atomically), so no reader of the store ever sees part of one; then it is read back and its
hash compared with the local file's before it counts as uploaded. What was verified is noted
in ``<root>/.upload/<destination hash>.json`` (written atomically), so a run interrupted by a
crash or a dropped connection resumes where it stopped and re-sends nothing verified. Local
files are never deleted here: what to do with the local copy once the store holds it
verified is left to the operator.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from polyrl.errors import RecordingError, StorageError
from polyrl.events import NS_PER_S, iso_to_ns
from polyrl.recording.reader import list_partitions
from polyrl.storage import Location, locate, storage_error

UPLOAD_DIR = ".upload"
PROVENANCE_DIR = "provenance"
HOUR_NS = 3600 * NS_PER_S


@dataclass(slots=True)
class UploadReport:
    """What one :func:`upload_closed_hours` pass did."""

    uploaded: list[str] = field(default_factory=list)
    """Keys (relative to the root) sent and verified in this pass."""
    already: int = 0
    """Files skipped: verified by an earlier pass, unchanged since."""
    open_hours: int = 0
    """Partitions left for a later pass: their hour has not closed yet."""
    bytes: int = 0


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def manifest_path(root: Path, dest: Location) -> Path:
    """Where the verified uploads of ``root`` to ``dest`` are noted."""
    return Path(root) / UPLOAD_DIR / f"{hashlib.sha1(dest.uri.encode()).hexdigest()[:16]}.json"


def _load(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def _save(path: Path, dest: Location, done: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"destination": dest.uri, "files": done}, indent=1, sort_keys=True))
    os.replace(tmp, path)


def put_verified(dest: Location, key: str, data: bytes) -> None:
    """Write ``data`` as the object ``key`` below ``dest`` in one put, read it back and
    compare hashes; a mismatch or a failed request is a :class:`StorageError` naming it."""
    path = f"{dest.path}/{key}"
    shown = dest.show(path)
    try:
        with dest.fs.open_output_stream(path) as out:
            out.write(data)
        with dest.fs.open_input_stream(path) as fh:
            back = bytes(fh.read())
    except OSError as e:
        raise storage_error(shown, e) from None
    if _digest(back) != _digest(data):
        raise StorageError(f"{shown}: read back {len(back)} bytes that differ from the upload")


def upload_closed_hours(
    root: Path,
    dest: Location | str,
    *,
    now_ns: int,
    grace_s: float,
    progress: Callable[[str], None] | None = None,
) -> UploadReport:
    """Upload every closed hour of ``root`` not yet verified at ``dest`` (see module doc).
    The manifest is saved after each verified object, so an error part way (a
    :class:`StorageError`) loses nothing already shipped."""
    root = Path(root)
    loc = locate(dest)
    mpath = manifest_path(root, loc)
    done = _load(mpath)
    report = UploadReport()
    try:
        parts = list_partitions(root)
    except StorageError:
        raise
    except RecordingError:
        parts = []
    grace = int(grace_s * NS_PER_S)
    todo: list[Path] = []
    days: set[str] = set()
    for p in parts:
        end = iso_to_ns(f"{p.date}T00:00:00Z") + (p.hour + 1) * HOUR_NS
        if end + grace > now_ns:
            report.open_hours += 1
            continue
        todo.extend(Path(f) for f in p.files)
        days.add(p.date)
    todo.extend(root / PROVENANCE_DIR / f"{d}.json" for d in sorted(days))
    for f in todo:
        if not f.exists():
            continue
        key = f.relative_to(root).as_posix()
        try:
            data = f.read_bytes()
        except FileNotFoundError:  # a part just replaced by its hour's compacted file
            continue
        digest = _digest(data)
        if done.get(key) == digest:
            report.already += 1
            continue
        put_verified(loc, key, data)
        done[key] = digest
        _save(mpath, loc, done)
        report.uploaded.append(key)
        report.bytes += len(data)
        if progress is not None:
            progress(f"uploaded {loc.show(f'{loc.path}/{key}')}")
    return report
