"""Write-ahead log of raw frames: what makes ``kill -9`` lose at most about a second.

The recorder appends every frame (raw text, channel, receive time, request) to the current
WAL segment *before* parsing it, hands the bytes to the OS every ``flush_s`` and fsyncs
every ``fsync_s``. At each checkpoint it flushes the Parquet writer and starts a new segment,
deleting the old one: a segment holds exactly the frames whose rows may not be in Parquet
yet. After a crash, the next start re-parses the leftover segments — with the token map
and starting ``seq`` saved in each segment's header, so the re-parse assigns the very same
``seq`` values — and writes only the rows whose ``seq`` is beyond what each stream already
has on disk. A torn last record (the process died mid-write) fails its CRC and is dropped.

Segments live in ``<root>/.wal/`` (hidden: readers never look there).

Record layout (little endian)::

    u32 body length | u32 crc32(body) | body
    body = i64 recv_ns | u16 len(channel) | u32 len(request JSON) | channel | request | text
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

MAGIC = b"POLYRL-WAL-1\n"
_HEAD = struct.Struct("<II")
_BODY = struct.Struct("<qHI")
WAL_DIR = ".wal"


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """What a re-parse needs to reproduce the live parse exactly."""

    start_seq: int
    tokens: Mapping[str, tuple[str, str]]


def wal_dir(root: Path) -> Path:
    """The WAL directory of a recording root."""
    return Path(root) / WAL_DIR


def segment_paths(root: Path) -> list[Path]:
    """Leftover segments of a recording root, oldest first."""
    d = wal_dir(root)
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("segment-*.wal"))


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

    def append(self, frame: Frame) -> None:
        """Append one frame (buffered; reaches the OS on :meth:`flush`)."""
        ch = frame.channel.encode()
        req = (
            json.dumps(dict(frame.request), separators=(",", ":")).encode()
            if frame.request
            else b""
        )
        body = _BODY.pack(frame.recv_ns, len(ch), len(req)) + ch + req + frame.text.encode()
        self._write(_HEAD.pack(len(body), zlib.crc32(body)) + body)
        self.frames += 1
        self.bytes += len(body) + 8

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


def read_segment(path: Path) -> tuple[SegmentHeader | None, Iterator[Frame]]:
    """A segment's header and its intact frames (a torn or corrupt tail is dropped).

    A segment cut short inside its header (the process died as it was being created) holds
    no frames: its header is None. Anything else that does not start like a segment is an
    error naming the file.
    """
    data = path.read_bytes()
    n = len(data)
    if not data.startswith(MAGIC[: min(n, len(MAGIC))]):
        raise RecordingError(f"{path} is not a polyrl write-ahead log segment")
    if n < len(MAGIC) + 4:
        return None, iter(())
    pos = len(MAGIC)
    (hlen,) = struct.unpack_from("<I", data, pos)
    pos += 4
    if n < pos + hlen:
        return None, iter(())
    try:
        head = json.loads(data[pos : pos + hlen])
    except ValueError:
        raise RecordingError(f"{path}: unreadable segment header") from None
    pos += hlen
    header = SegmentHeader(
        start_seq=int(head["start_seq"]),
        tokens={k: (v[0], v[1]) for k, v in head.get("tokens", {}).items()},
    )

    def frames() -> Iterator[Frame]:
        p = pos
        n = len(data)
        while p + 8 <= n:
            blen, crc = _HEAD.unpack_from(data, p)
            body = data[p + 8 : p + 8 + blen]
            if len(body) < blen or zlib.crc32(body) != crc:
                return  # torn tail: the process died while writing this record
            recv_ns, clen, rlen = _BODY.unpack_from(body, 0)
            o = _BODY.size
            channel = body[o : o + clen].decode()
            o += clen
            request = json.loads(body[o : o + rlen]) if rlen else {}
            o += rlen
            yield Frame(channel=channel, recv_ns=recv_ns, text=body[o:].decode(), request=request)
            p += 8 + blen

    return header, frames()
