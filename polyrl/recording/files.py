"""Which Parquet files of a recording are visible: the store's file layout, read by both
the writer (compaction, the next ``seq``) and the reader.

A partition directory ``<root>/<stream>/date=<d>/hour=<h>/`` holds ``part-<first>.parquet``
files and compacted ``part-<first>-<last>.parquet`` ones; names starting with ``.`` are
temporaries no reader sees.
"""

from __future__ import annotations

from pathlib import Path


def _name_range(path: Path) -> tuple[int, int] | None:
    """``part-<first>.parquet`` -> (first, first); ``part-<first>-<last>.parquet`` -> range."""
    stem = path.name[: -len(".parquet")]
    if not stem.startswith("part-"):
        return None
    bits = stem[5:].split("-")
    try:
        if len(bits) == 1:
            v = int(bits[0])
            return v, v
        if len(bits) == 2:
            return int(bits[0]), int(bits[1])
    except ValueError:
        return None
    return None


def partition_files(directory: Path) -> list[Path]:
    """The visible Parquet files of one partition directory, in seq order.

    Hidden temporaries are skipped, and so are parts already covered by a compacted file
    ``part-<first>-<last>.parquet`` (left behind if a compaction was interrupted after its
    result became visible but before the parts it replaced were deleted).
    """
    files = [p for p in directory.glob("*.parquet") if not p.name.startswith(".")]
    ranges = {p: _name_range(p) for p in files}
    compacted = [r for r in ranges.values() if r is not None and r[0] != r[1]]

    def covered(p: Path) -> bool:
        r = ranges[p]
        if r is None or r[0] != r[1]:
            return False
        return any(a <= r[0] <= b for a, b in compacted)

    keep = [p for p in files if not covered(p)]
    return sorted(keep, key=lambda p: (ranges[p] or (1 << 62, 0))[0])


def recording_files(root: Path) -> list[Path]:
    """Every visible Parquet file under a recording root (see :func:`partition_files`)."""
    out: list[Path] = []
    for d in sorted(Path(root).glob("*/date=*/hour=*")):
        if d.is_dir():
            out.extend(partition_files(d))
    return out
