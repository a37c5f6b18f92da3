"""Write-ahead log of raw frames: what makes ``kill -9`` lose at most about a second.

The recorder appends every frame (raw text, channel, receive time, request, and the ``seq``
its first row will get) to the current WAL segment *before* parsing it, hands the bytes to
the OS every ``flush_s`` and fsyncs every ``fsync_s``. At each checkpoint it flushes the
Parquet writer and starts a new segment, deleting the old one: a segment holds exactly the
frames whose rows may not be in Parquet yet. After a crash, the next start re-parses the
leftover segments — with the token map saved in each segment's header and the ``seq`` saved
in each record, so the re-parse assigns the very same ``seq`` values — and writes only the
rows whose ``seq`` is beyond what each stream already has on disk.

Damage never stops a recovery. :func:`scan_segment` yields every intact record and, for
each stretch of bytes that is not one (a torn last record of a killed process, a record whose
checksum fails, a whole file that is not a segment), a :class:`Damaged` span with those bytes
exactly as they are in the file; the recovery keeps them in a quarantine file. Each record
starts with a marker (``\\xf1`` then ``W``: a pair UTF-8 text never holds), so the scan
finds the next intact record after a corrupt one even when its length field is wrong; and
since each record carries its own ``seq``, the records after a lost one keep their true seq.

Segments live in ``<root>/.wal/`` (hidden: readers never look there); quarantined bytes in
``<root>/.wal/quarantine/``.

Record layout (little endian)::

    marker b"\\xf1WR\\x02" | u32 body length | u32 crc32(body) | body
    body = i64 recv_ns | i64 first seq | u16 len(channel) | u32 len(request JSON)
           | channel | request | text          (UTF-8; lone surrogates kept as-is)

Segments of the previous layout (``POLYRL-WAL-1``: no marker, no seq) are still read; in
those a damaged record ends the segment's frames (the bytes after it are quarantined).
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from polyrl.errors import RecordingError
from polyrl.events import Frame

MAGIC = b"POLYRL-WAL-2\n"
MAGIC_V1 = b"POLYRL-WAL-1\n"
MARK = b"\xf1WR\x02"
_HEAD = struct.Struct("<4sII")
_BODY = struct.Struct("<qqHI")
_HEAD_V1 = struct.Struct("<II")
_BODY_V1 = struct.Struct("<qHI")
WAL_DIR = ".wal"
QUARANTINE_DIR = "quarantine"


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """What a re-parse needs to reproduce the live parse exactly."""

    start_seq: int
    tokens: Mapping[str, tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Record:
    """One intact record: a frame and the seq its first row got (None in old segments)."""

    frame: Frame
    first_seq: int | None


@dataclass(frozen=True, slots=True)
class Damaged:
    """Bytes of a segment that are not an intact record, exactly as in the file."""

    offset: int
    data: bytes
    reason: str


def wal_dir(root: Path) -> Path:
    """The WAL directory of a recording root."""
    return Path(root) / WAL_DIR


def quarantine_dir(root: Path) -> Path:
    """Where recovery keeps the bytes of damaged write-ahead records."""
    return wal_dir(root) / QUARANTINE_DIR


def segment_paths(root: Path) -> list[Path]:
    """Leftover segments of a recording root, oldest first."""
    d = wal_dir(root)
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("segment-*.wal"))


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


class WalSegment:
    """One append-only segment file."""

    def __init__(self, path: Path, header: SegmentHeader) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._fh = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - lives with self
        except OSError as e:
            raise RecordingError(f"cannot create write-ahead log {path}: {e}") from None
        head = json.dumps(
            {
                "start_seq": header.start_seq,
                "tokens": {k: list(v) for k, v in header.tokens.items()},
            },
            separators=(",", ":"),
        ).encode()
        self._write(MAGIC + struct.pack("<I", len(head)) + head)
        self.flush()  # a segment on disk always starts with its whole header
        self.frames = 0
        self.bytes = 0

    def _write(self, data: bytes) -> None:
        try:
            self._fh.write(data)
        except OSError as e:
            raise RecordingError(f"cannot append to write-ahead log {self.path}: {e}") from None

    def append(self, frame: Frame, first_seq: int = -1) -> None:
        """Append one frame whose first row gets ``first_seq`` (buffered; reaches the OS on
        :meth:`flush`). Text that UTF-8 cannot encode (a lone surrogate) is kept as is."""
        ch = frame.channel.encode("utf-8", "surrogatepass")
        req = (
            json.dumps(dict(frame.request), separators=(",", ":")).encode()
            if frame.request
            else b""
        )
        text = frame.text
        data = text.encode() if text.isascii() else text.encode("utf-8", "surrogatepass")
        body = _BODY.pack(frame.recv_ns, first_seq, len(ch), len(req)) + ch + req + data
        self._write(_HEAD.pack(MARK, len(body), zlib.crc32(body)) + body)
        self.frames += 1
        self.bytes += len(body) + _HEAD.size

    def flush(self, *, fsync: bool = False) -> None:
        """Hand buffered records to the OS (survives a process kill); fsync for power loss."""
        try:
            self._fh.flush()
            if fsync:
                os.fsync(self._fh.fileno())
        except OSError as e:
            raise RecordingError(f"cannot flush write-ahead log {self.path}: {e}") from None

    def close(self, *, delete: bool) -> None:
        """Close; delete the file when its frames are all safely in Parquet."""
        try:
            self._fh.close()
        finally:
            if delete:
                self.path.unlink(missing_ok=True)


@dataclass(slots=True)
class SegmentScan:
    """A segment as read back: its header (None: cut short while being created, or not a
    segment at all) and its records and damaged spans in file order."""

    header: SegmentHeader | None
    items: list[Record | Damaged]


def _body(body: bytes, v1: bool) -> Record | None:
    """A record body -> its Record; None when its fields do not fit together."""
    try:
        if v1:
            recv_ns, clen, rlen = _BODY_V1.unpack_from(body, 0)
            seq, o = None, _BODY_V1.size
        else:
            recv_ns, seq, clen, rlen = _BODY.unpack_from(body, 0)
            o = _BODY.size
        if o + clen + rlen > len(body):
            return None
        channel = _text(body[o : o + clen])
        o += clen
        request = json.loads(body[o : o + rlen]) if rlen else {}
        if not isinstance(request, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in request.items()
        ):
            return None
        o += rlen
        frame = Frame(channel=channel, recv_ns=recv_ns, text=_text(body[o:]), request=request)
    except (struct.error, ValueError, RecursionError):
        return None
    return Record(frame, seq)


def _record_at(data: bytes, p: int, v1: bool) -> tuple[Record, int] | str:
    """The intact record at ``p`` and the offset after it, else why there is none."""
    n = len(data)
    if v1:
        if p + _HEAD_V1.size > n:
            return "torn"
        blen, crc = _HEAD_V1.unpack_from(data, p)
        start = p + _HEAD_V1.size
    else:
        if p + _HEAD.size > n:
            return "torn" if MARK.startswith(data[p : p + 4]) else "corrupt"
        mark, blen, crc = _HEAD.unpack_from(data, p)
        if mark != MARK:
            return "corrupt"
        start = p + _HEAD.size
    if start + blen > n:
        return "torn"
    body = data[start : start + blen]
    if zlib.crc32(body) != crc:
        return "corrupt"
    rec = _body(body, v1)
    return "corrupt" if rec is None else (rec, start + blen)


_REASONS = {
    "torn": "cut short (the process died while writing it)",
    "corrupt": "corrupt (checksum or layout does not match)",
}


def _records(data: bytes, pos: int, v1: bool) -> list[Record | Damaged]:
    items: list[Record | Damaged] = []
    n = len(data)
    p = pos
    damage_at = -1
    why = ""
    while p < n:
        got = _record_at(data, p, v1)
        if isinstance(got, tuple):
            if damage_at >= 0:
                items.append(Damaged(damage_at, data[damage_at:p], _REASONS[why]))
                damage_at = -1
            items.append(got[0])
            p = got[1]
            continue
        if damage_at < 0:
            damage_at, why = p, got
        if v1:
            break  # no markers: nothing to find the next record by
        q = data.find(MARK, p + 1)
        if q < 0:
            break
        why = "corrupt"  # an intact-looking record follows: this one was not just cut short
        p = q
    if damage_at >= 0:
        items.append(Damaged(damage_at, data[damage_at:], _REASONS[why]))
    return items


def scan_segment(path: Path) -> SegmentScan:
    """Every intact record of a segment, and every damaged span, in file order (see the
    module doc). A file that is not a segment is one Damaged span; never raises on content."""
    data = path.read_bytes()
    n = len(data)
    magic = MAGIC if data.startswith(MAGIC[:12]) else MAGIC_V1
    if not data.startswith(magic[: min(n, len(magic))]):
        return SegmentScan(None, [Damaged(0, data, "not a polyrl write-ahead log segment")])
    pos = len(magic)
    if n < pos + 4:
        return SegmentScan(None, [])  # died while being created: holds nothing
    (hlen,) = struct.unpack_from("<I", data, pos)
    pos += 4
    if n < pos + hlen:
        return SegmentScan(None, [])
    try:
        head = json.loads(data[pos : pos + hlen])
        header = SegmentHeader(
            start_seq=int(head["start_seq"]),
            tokens={k: (v[0], v[1]) for k, v in head.get("tokens", {}).items()},
        )
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError):
        return SegmentScan(None, [Damaged(0, data, "unreadable segment header")])
    return SegmentScan(header, _records(data, pos + hlen, magic == MAGIC_V1))


def read_segment(path: Path) -> tuple[SegmentHeader | None, Iterator[Frame]]:
    """A segment's header and its intact frames (damaged records are skipped).

    A segment cut short inside its header (the process died as it was being created) holds
    no frames: its header is None. A file that does not start like a segment is an error
    naming it (:func:`scan_segment` is the form that never raises).
    """
    scan = scan_segment(path)
    if scan.header is None and scan.items:
        assert isinstance(scan.items[0], Damaged)
        raise RecordingError(f"{path}: {scan.items[0].reason}")
    return scan.header, iter([r.frame for r in scan.items if isinstance(r, Record)])
