"""Which Parquet files of a recording are visible: the store's file layout, read by both
the writer (compaction, the next ``seq``) and the reader.

A partition directory ``<root>/<stream>/date=<d>/hour=<h>/`` holds ``part-<first>.parquet``
files and compacted ``part-<first>-<last>.parquet`` ones; names starting with ``.`` are
temporaries no reader sees.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def _name_range(name: str) -> tuple[int, int] | None:
    """``part-<first>.parquet`` -> (first, first); ``part-<first>-<last>.parquet`` -> range."""
    stem = name[: -len(".parquet")]
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


def visible_names(names: Iterable[str]) -> list[str]:
    """Of one partition directory's file names, the visible Parquet files in seq order.

    Hidden temporaries are skipped, and so are parts already covered by a compacted file
    ``part-<first>-<last>.parquet`` (left behind if a compaction was interrupted after its
    result became visible but before the parts it replaced were deleted).
    """
    files = [n for n in names if n.endswith(".parquet") and not n.startswith(".")]
    ranges = {n: _name_range(n) for n in files}
    compacted = [r for r in ranges.values() if r is not None and r[0] != r[1]]

    def covered(n: str) -> bool:
        r = ranges[n]
        if r is None or r[0] != r[1]:
            return False
        return any(a <= r[0] <= b for a, b in compacted)

    keep = [n for n in files if not covered(n)]
    return sorted(keep, key=lambda n: ((ranges[n] or (1 << 62, 0))[0], n))


def partition_files(directory: Path) -> list[Path]:
    """The visible Parquet files of one local partition directory, in seq order (see
    :func:`visible_names`)."""
    return [directory / n for n in visible_names(p.name for p in directory.glob("*.parquet"))]


def recording_files(root: Path) -> list[Path]:
    """Every visible Parquet file under a recording root (see :func:`partition_files`)."""
    out: list[Path] = []
    for d in sorted(Path(root).glob("*/date=*/hour=*")):
        if d.is_dir():
            out.extend(partition_files(d))
    return out
