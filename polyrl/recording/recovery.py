"""Recovery of a killed recorder's write-ahead log: the rows its leftover segments hold that
are not in Parquet yet are written with their own ``seq``; bytes that are not an intact record
are quarantined verbatim, never a reason to stop.

Run by the :class:`~polyrl.recording.recorder.Recorder` before it records (and safe to run on
its own, repeatedly).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from polyrl.errors import RecordingError
from polyrl.events import CH_RECORDER
from polyrl.recording.schema import STORAGE_PLANS
from polyrl.recording.wal import Damaged, Record, quarantine_dir, scan_segment, segment_paths
from polyrl.recording.writer import RecordingConfig, RecordingWriter, max_seq_by_stream
from polyrl.sources.parse import Parser, parse_status_frame, status_frame


@dataclass(frozen=True, slots=True)
class Quarantined:
    """Bytes of a write-ahead segment recovery could not read, kept verbatim in ``path``."""

    path: Path
    segment: str
    offset: int
    size: int
    reason: str


@dataclass(slots=True)
class RecoveryReport:
    """What :func:`recover` did."""

    segments: int = 0
    frames: int = 0
    rows_written: int = 0
    rows_already_on_disk: int = 0
    files: list[Path] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)


def _quarantine(root: Path, seg: Path, bad: Damaged, config: RecordingConfig) -> Quarantined:
    """Keep damaged bytes verbatim under ``.wal/quarantine/`` (idempotent: same name, same
    bytes, if a recovery is itself interrupted and run again)."""
    qdir = quarantine_dir(root)
    qdir.mkdir(parents=True, exist_ok=True)
    path = qdir / f"{seg.stem}-at-{bad.offset:012d}.bin"
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(bad.data)
            if config.fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise RecordingError(f"cannot quarantine damaged write-ahead log bytes: {e}") from None
    return Quarantined(path, seg.name, bad.offset, len(bad.data), bad.reason)


def recover(root: Path, config: RecordingConfig) -> RecoveryReport:
    """Write the rows of leftover WAL segments that are not in Parquet yet; delete them.

    Never stops on a frame: a frame that does not parse becomes a ``parse_error`` row, as it
    did live; bytes that are not an intact record (a torn tail, a corrupt record, a file that
    is not a segment) are kept verbatim in ``<root>/.wal/quarantine/`` and named in a
    ``recorder.status`` row of kind ``quarantine`` (at the receive time of the last intact
    frame before them), and the records after them are recovered with their own ``seq``.
    Also removes hidden temporaries a killed write left behind. Safe to run repeatedly.
    """
    report = RecoveryReport()
    root = Path(root)
    for tmp in root.glob("*/date=*/hour=*/.*.tmp"):
        tmp.unlink(missing_ok=True)
    segs = segment_paths(root)
    if not segs:
        return report
    on_disk = max_seq_by_stream(root)
    writer: RecordingWriter | None = None
    notes: list[tuple[int, Quarantined]] = []
    for path in segs:
        scan = scan_segment(path)
        report.segments += 1
        header = scan.header
        last_ns = path.stat().st_mtime_ns
        if header is not None:
            if writer is None:
                writer = RecordingWriter(root, config=config, start_seq=header.start_seq)
            parser = Parser(storage=STORAGE_PLANS, exch_tolerance_s=config.exch_time_tolerance_s)
            parser.tokens.update(header.tokens)
            seq = header.start_seq
            first = next((r for r in scan.items if isinstance(r, Record)), None)
            if first is not None:
                last_ns = first.frame.recv_ns
        for item in scan.items:
            if isinstance(item, Damaged):
                q = _quarantine(root, path, item, config)
                report.quarantined.append(q)
                notes.append((last_ns, q))
                continue
            assert header is not None and writer is not None
            report.frames += 1
            last_ns = item.frame.recv_ns
            if item.first_seq is not None and item.first_seq >= 0:
                seq = item.first_seq
            for ev in parser.parse(item.frame):
                if seq > on_disk.get(ev.stream, -1) and seq >= writer.next_seq:
                    writer.append(ev, seq=seq)
                    report.rows_written += 1
                else:
                    report.rows_already_on_disk += 1
                seq += 1
    if notes:
        if writer is None:
            writer = RecordingWriter(root, config=config)
        seq = max(writer.next_seq, max(on_disk.values(), default=-1) + 1)
        for recv_ns, q in notes:
            message = (
                f"{q.size} byte(s) of write-ahead segment {q.segment} at offset {q.offset} "
                f"{q.reason}: kept verbatim in {q.path}"
            )
            ev = parse_status_frame(
                status_frame("quarantine", recv_ns, channel=CH_RECORDER, message=message).text,
                recv_ns,
            )
            writer.append(ev, seq=seq)
            seq += 1
    if writer is not None:
        writer.close()
        report.files = list(writer.files_written)
    for path in segs:
        path.unlink(missing_ok=True)
    return report
