"""Fill books: the token books as they stand at tick + latency, for several latencies at once.

An order decided at tick t fills at the book as it stands when the order arrives, t + L.
:class:`FillBooks` keeps one sequential market log per latency (only the Polymarket and
status rows: books, their deltas, unsync flags and disconnects), so a latency of any size —
also a tick or more — never moves the state the features read, and a sweep over latencies
replays only the market log, not the features.

**Batch independence.** The book at t + L must see every event received by then: the caller
asks for tick t only once every event with ``recv_ns <= t + L`` has been ingested (the
replay clock's ``lookahead_ns``; live mode ingests up to t + L before deciding). Then the
result does not depend on how the events were batched.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from polyrl.features.flags import without_skipped
from polyrl.features.markets import MarketLog
from polyrl.recording.reader import MergedBatch
from polyrl.sources.polymarket.book import TokenBook


class FillBooks:
    """Books at tick + latency for each of ``latencies_ns`` (slot i = assets[i])."""

    def __init__(self, assets: tuple[str, ...], latencies_ns: Sequence[int], depth: int) -> None:
        if any(lat < 0 for lat in latencies_ns):
            raise ValueError("fill latencies must be >= 0")
        self.assets = tuple(assets)
        self.depth = depth
        self.logs = {int(lat): MarketLog(self.assets) for lat in latencies_ns}

    def ingest(self, batch: MergedBatch, *, filtered: bool = False) -> None:
        """Log a batch's market rows (``filtered``: skipped rows already removed)."""
        if len(batch) == 0:
            return
        if not filtered:
            batch = without_skipped(batch)
        for log in self.logs.values():
            log.ingest(batch)

    def observe(
        self, lat: int, ticks: np.ndarray, tokens: Sequence[Sequence[tuple[str, str] | None]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(px, size) float64 [T, M, 2, 2, L] at ``ticks + lat`` for the (Up, Down) token
        pairs ``tokens[k][m]`` (None: no window, NaN prices). Ticks must increase across
        calls."""
        log = self.logs[lat]
        T, M, L = len(ticks), len(self.assets), self.depth
        px = np.full((T, M, 2, 2, L), np.nan)
        size = np.zeros((T, M, 2, 2, L))
        for k, t in enumerate(np.asarray(ticks).tolist()):
            log.advance(t + lat)
            for m in range(M):
                pair = tokens[k][m]
                if pair is not None:
                    write_book(px, size, k, m, *log.token_books(*pair), L)
            for a in self.assets:
                log.current(a, t)  # forget the books of windows long over
        return px, size


def write_book(
    px: np.ndarray,
    size: np.ndarray,
    k: int,
    m: int,
    up: TokenBook | None,
    dn: TokenBook | None,
    depth: int,
) -> None:
    """Write the top ``depth`` levels of both tokens' books at tick k, market m."""
    for j, lv in ((0, up), (1, dn)):
        if lv is None or not lv.synced:
            continue
        bp, bs, ap, as_ = lv.top(depth)
        px[k, m, j, 0] = bp
        size[k, m, j, 0] = bs
        px[k, m, j, 1] = ap
        size[k, m, j, 1] = as_
