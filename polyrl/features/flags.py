"""What the FeatureEngine does with rows whose ``quality`` flags are set (see
:mod:`polyrl.sources.quality.flags` for the bits).

A flagged row is stored as it arrived; the engine decides per flag whether to use it. The
rule, flag by flag (:data:`POLICY`):

=============  =======  =========================================================================
flag           engine   why
=============  =======  =========================================================================
bad_value      skip     the price or size cannot be true: a mid, a flow or a book built on it
                        would be wrong
price_range    skip     a Polymarket price outside [0, 1] cannot be a probability
bad_time       skip     when the row happened is unknown (reference ticks are placed in their
                        window by this very time)
symbol         skip     which instrument the row is about is unknown
depth_ids      skip     an update with ``U > u`` is no update the venue can have sent
seq_gap        keep     the row itself is genuine; updates are missing *before* it. The engine
                        keeps no Binance diff book, so nothing it computes depends on the chain
duplicate      skip     the trade was already counted once: counting it again doubles its flow
crossed        skip     a crossed quote has no meaningful mid or spread, and a crossed book
                        would let a fill buy below the bid (an edge no account could get)
=============  =======  =========================================================================

A skipped Polymarket ``book`` or ``price_change`` row is not simply dropped: the true book is
then unknown, so its token's book is unsynced (as after a disconnect) until the next clean
full ``book`` arrives, and the market is not tradable meanwhile (:class:`~polyrl.features.
markets.MarketLog`). Every other skipped row is removed from the batch before any feature
sees it, in live and replay alike. Rows without flags (all simulated data) pass untouched, so
a recording without flags gives exactly the features it gave before flags existed.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from polyrl.recording.reader import MergedBatch
from polyrl.sources.quality.flags import FLAG_BY_NAME, FLAGS

POLICY: dict[str, tuple[bool, str]] = {
    "bad_value": (True, "price or size cannot be true"),
    "price_range": (True, "a Polymarket price outside [0, 1] is no probability"),
    "bad_time": (True, "when the row happened is unknown"),
    "symbol": (True, "which instrument the row is about is unknown"),
    "depth_ids": (True, "U > u is no update the venue can have sent"),
    "seq_gap": (False, "the row is genuine; no feature depends on the diff chain"),
    "duplicate": (True, "the trade was already counted"),
    "crossed": (True, "a crossed quote has no mid; a crossed book would give impossible fills"),
}
"""Flag name -> (skipped by the FeatureEngine, why). Every flag is listed."""

SKIP_MASK = sum(FLAG_BY_NAME[n].mask for n, (skip, _) in POLICY.items() if skip)
"""The bits that make the FeatureEngine skip a row."""

UNSYNC_STREAMS = ("polymarket.book", "polymarket.price_change")
"""Streams whose skipped rows unsync their token's book instead of vanishing."""

assert set(POLICY) == {f.name for f in FLAGS}, "every quality flag needs a feature policy"


def _skipped(batch: MergedBatch, stream: str) -> np.ndarray | None:
    """Boolean [rows of ``stream`` in the batch]: rows to skip; None when there are none."""
    if batch.live is not None:
        evs = batch.live.get(stream, ())
        if not any(e.quality & SKIP_MASK for e in evs):
            return None
        return np.array([bool(e.quality & SKIP_MASK) for e in evs], dtype=bool)
    t = batch.tables.get(stream)
    if t is None or "quality" not in t.columns:
        return None
    q = t["quality"].to_numpy()
    bad = (q & SKIP_MASK) != 0
    return bad if bad.any() else None


def without_skipped(batch: MergedBatch, *, keep: tuple[str, ...] = UNSYNC_STREAMS) -> MergedBatch:
    """``batch`` without the rows the policy skips (streams in ``keep`` excepted: their
    consumer handles flagged rows itself). The batch itself when nothing is skipped."""
    drops = {}
    for s in batch.streams:
        if s in keep:
            continue
        bad = _skipped(batch, s)
        if bad is not None:
            drops[s] = bad
    if not drops:
        return batch
    keep_rows = np.ones(len(batch), dtype=bool)
    tables = dict(batch.tables)
    live = dict(batch.live) if batch.live is not None else None
    for s, bad in drops.items():
        pos = np.flatnonzero(batch.stream_code == batch.streams.index(s))
        keep_rows[pos[bad]] = False
        if s in tables:
            kept = tables[s].filter(pl.Series(~bad))
            if kept.height:
                tables[s] = kept
            else:
                del tables[s]
        if live is not None:
            evs = [e for e, b in zip(live[s], bad.tolist(), strict=True) if not b]
            if evs:
                live[s] = evs
            else:
                del live[s]
    return MergedBatch(
        batch.streams,
        batch.stream_code[keep_rows],
        batch.recv_ns[keep_rows],
        batch.seq[keep_rows],
        tables,
        live,
    )
