"""Where the wanted markets' rows lie in a local PMXT hour file, from the ``market`` column's
dictionary pages alone (pure; see :mod:`polyrl.importers.pmxt_read`).

The archive writes ``market`` (``fixed_size_binary[66]``) dictionary-encoded, and the file is
sorted by market, so a row group's ``market`` chunk is a few hundred 66-byte values and data
pages of RLE runs over their indices: a few KB for a million rows. Decoding it as values
costs 66 bytes a row (330 MB for 5 M rows, most of a warm hour's read); reading the page
headers (Thrift compact protocol), the dictionary and the run lengths costs a few ms and
gives each wanted market's rows as ``(start, stop)`` row ranges of the file, from which
the rows' ``market`` column is built without decoding it (:func:`market_column`).

Only the layout the archive writes is read: data pages v1 or v2 whose values are
``RLE_DICTIONARY``/``PLAIN_DICTIONARY``, no null ``market``, a codec Arrow knows. Anything
else (a chunk that fell back to ``PLAIN``, a null, a page type or field not understood, a
truncated file) gives ``None``, and the caller filters the decoded column as before: the
rows are the same either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

_DICT_PAGE, _DATA_PAGE, _DATA_PAGE_V2 = 2, 0, 3
_DICT_ENCODINGS = (2, 8)  # PLAIN_DICTIONARY, RLE_DICTIONARY
_PLAIN = 0
_RLE = 3
_CODECS = {"ZSTD": "zstd", "SNAPPY": "snappy", "GZIP": "gzip", "LZ4_RAW": "lz4_raw",
           "BROTLI": "brotli"}  # fmt: skip


class _Unsupported(Exception):
    """A layout this reader does not decode (the caller falls back)."""


class _Thrift:
    """A Thrift compact-protocol reader over one buffer (only what page headers use)."""

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf, self.pos = buf, pos

    def byte(self) -> int:
        if self.pos >= len(self.buf):
            raise _Unsupported("truncated")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        out = shift = 0
        while True:
            b = self.byte()
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7
            if shift > 70:
                raise _Unsupported("varint too long")

    def zigzag(self) -> int:
        v = self.varint()
        return (v >> 1) ^ -(v & 1)

    def value(self, kind: int) -> Any:
        if kind in (1, 2):  # a bool inside a struct: the type is the value
            return kind == 1
        if kind == 3:
            return self.byte()
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind == 7:
            self.pos += 8
            return None
        if kind == 8:
            n = self.varint()
            self.pos += n
            return None
        if kind in (9, 10):
            head = self.byte()
            n, elem = head >> 4, head & 0x0F
            if n == 15:
                n = self.varint()
            for _ in range(n):
                if elem in (1, 2):  # a bool in a list: one byte each
                    self.byte()
                else:
                    self.value(elem)
            return None
        if kind == 12:
            return self.struct()
        raise _Unsupported(f"thrift type {kind}")

    def struct(self) -> dict[int, Any]:
        out: dict[int, Any] = {}
        fid = 0
        while True:
            head = self.byte()
            if head == 0:
                return out
            kind, delta = head & 0x0F, head >> 4
            fid = fid + delta if delta else self.zigzag()
            out[fid] = self.value(kind)


def _rle_runs(buf: bytes, pos: int, end: int, width: int, count: int) -> list[tuple[int, int]]:
    """An RLE/bit-packed hybrid run of ``count`` values -> ``(value, length)`` runs."""
    runs: list[tuple[int, int]] = []
    got = 0
    nbytes = (width + 7) // 8
    rd = _Thrift(buf, pos)
    while got < count:
        if rd.pos >= end:
            raise _Unsupported("truncated levels")
        head = rd.varint()
        if head & 1:  # bit-packed: groups of 8 values
            n = (head >> 1) * 8
            size = (head >> 1) * width
            raw = np.frombuffer(buf, dtype=np.uint8, count=size, offset=rd.pos)
            rd.pos += size
            bits = np.unpackbits(raw, bitorder="little").reshape(-1, width) if width else None
            vals = (
                np.zeros(n, dtype=np.int64)
                if bits is None
                else (bits.astype(np.int64) << np.arange(width)).sum(axis=1)
            )
            vals = vals[: min(n, count - got)]
            got += len(vals)
            if len(vals):
                cut = np.flatnonzero(np.diff(vals)) + 1
                starts = np.concatenate([[0], cut])
                lens = np.diff(np.append(starts, len(vals)))
                runs.extend(zip(vals[starts].tolist(), lens.tolist(), strict=True))
        else:
            n = head >> 1
            v = int.from_bytes(buf[rd.pos : rd.pos + nbytes], "little")
            rd.pos += nbytes
            n = min(n, count - got)
            got += n
            runs.append((v, n))
    return runs


def _chunk_runs(raw: bytes, codec: str, max_def: int) -> tuple[list[bytes], list[tuple[int, int]]]:
    """One ``market`` column chunk's bytes -> its dictionary values and its index runs."""
    dictionary: list[bytes] | None = None
    runs: list[tuple[int, int]] = []
    pos = 0
    dec = None if codec == "UNCOMPRESSED" else pa.Codec(_CODECS[codec])
    while pos < len(raw):
        rd = _Thrift(raw, pos)
        h = rd.struct()
        pos = rd.pos
        ptype, usize, csize = h.get(1), h.get(2), h.get(3)
        if not isinstance(csize, int) or not isinstance(usize, int) or pos + csize > len(raw):
            raise _Unsupported("page header")
        body = raw[pos : pos + csize]
        pos += csize
        if ptype == _DICT_PAGE:
            dh = h.get(7) or {}
            if dictionary is not None or dh.get(2) not in (_PLAIN, 2):
                raise _Unsupported("dictionary page")
            data = body if dec is None else dec.decompress(body, usize).to_pybytes()
            n = dh.get(1, 0)
            if len(data) != 66 * n:
                raise _Unsupported("dictionary size")
            dictionary = [data[66 * i : 66 * i + 66] for i in range(n)]
        elif ptype == _DATA_PAGE:
            ph = h.get(5) or {}
            if ph.get(2) not in _DICT_ENCODINGS:
                raise _Unsupported("data page encoding")
            data = body if dec is None else dec.decompress(body, usize).to_pybytes()
            n, at = ph.get(1, 0), 0
            if max_def:
                if ph.get(3) != _RLE:
                    raise _Unsupported("definition levels not RLE")
                size = int.from_bytes(data[:4], "little")
                levels = _rle_runs(data, 4, 4 + size, max_def.bit_length(), n)
                if any(v != max_def for v, _ in levels):
                    raise _Unsupported("null market")
                at = 4 + size
            runs.extend(_rle_runs(data, at + 1, len(data), data[at], n))
        elif ptype == _DATA_PAGE_V2:
            ph = h.get(8) or {}
            if ph.get(4) not in _DICT_ENCODINGS or ph.get(2, 0) != 0 or ph.get(6, 0) != 0:
                raise _Unsupported("data page v2")
            levels = ph.get(5, 0)
            data = body[levels:]
            if dec is not None and ph.get(7, True):
                data = dec.decompress(data, usize - levels).to_pybytes()
            runs.extend(_rle_runs(data, 1, len(data), data[0], ph.get(1, 0)))
        else:
            raise _Unsupported(f"page type {ptype}")
    if dictionary is None:
        raise _Unsupported("no dictionary page")
    return dictionary, runs


def market_runs(
    path: Path, meta: pq.FileMetaData, groups: list[int], condition_ids: list[str]
) -> list[tuple[int, int, bytes]] | None:
    """The ``(start, stop, market)`` file row ranges, in file order (one per run of a market,
    a run that goes on in the next row group joined), of the rows in row groups ``groups``
    whose ``market`` is one of ``condition_ids``; None when the chunks are not in the layout
    this module reads (see the module docstring)."""
    want = {c.encode() for c in condition_ids}
    col = meta.schema.names.index("market")
    max_def = meta.schema.column(col).max_definition_level
    if meta.schema.column(col).max_repetition_level or max_def > 1:
        return None
    first = np.concatenate([[0], np.cumsum([meta.row_group(i).num_rows for i in
                                            range(meta.num_row_groups)])])  # fmt: skip
    out: list[tuple[int, int, bytes]] = []
    try:
        with open(path, "rb") as f:
            for g in groups:
                cc = meta.row_group(g).column(col)
                if cc.compression != "UNCOMPRESSED" and cc.compression not in _CODECS:
                    return None
                start = cc.dictionary_page_offset if cc.has_dictionary_page else None
                start = cc.data_page_offset if start is None else min(start, cc.data_page_offset)
                f.seek(start)
                raw = f.read(cc.total_compressed_size)
                dictionary, runs = _chunk_runs(raw, cc.compression, max_def)
                row = int(first[g])
                total = 0
                for v, n in runs:
                    if v >= len(dictionary):
                        return None
                    m = dictionary[v]
                    if m in want and n:
                        if out and out[-1][1] == row and out[-1][2] == m:
                            out[-1] = (out[-1][0], row + n, m)
                        else:
                            out.append((row, row + n, m))
                    row += n
                    total += n
                if total != meta.row_group(g).num_rows:
                    return None
    except (_Unsupported, OSError, ValueError, KeyError, IndexError, pa.ArrowException):
        return None
    return out


def merged(runs: list[tuple[int, int, bytes]]) -> list[tuple[int, int]]:
    """The runs' row ranges, joined where they touch."""
    out: list[tuple[int, int]] = []
    for a, b, _ in runs:
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def market_column(runs: list[tuple[int, int, bytes]]) -> pa.Array:
    """The ``market`` values of the runs' rows, in order, as ``fixed_size_binary[66]``."""
    if not runs:
        return pa.array([], pa.binary(66))
    values = np.frombuffer(b"".join(m for _, _, m in runs), dtype="S66")
    rows = np.repeat(values, [b - a for a, b, _ in runs])
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(66), len(rows), [None, pa.py_buffer(rows.tobytes())]
    )
