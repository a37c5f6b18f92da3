"""One asset's settlement reference feeds: their live ticks, the verdict they give a window,
and the reference move read from them at many ticks (as-of lookups only: no look-ahead).

:class:`ReferenceFeeds` keeps, per feed (``chainlink``, ``twap60``...: see
:mod:`polyrl.sources.polymarket.reference`), an append-only
:class:`~polyrl.features.series.Series` of live ticks for ``ref_move``, and the raw
(recv_ns, exch_ns, value) ticks of the last ~3 h for the settlement fallback
(:meth:`ReferenceFeeds.verdict`). :class:`~polyrl.features.history.AssetHistory` holds one
per asset. Every definition is documented in :mod:`polyrl.features.definitions`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from polyrl.events import NS_PER_S
from polyrl.features.series import Series
from polyrl.recording.columns import StreamCols
from polyrl.sources.polymarket.reference import INSTANT, is_settlement_feed, row_feed

REFERENCE_KEEP_NS = 3 * 3600 * NS_PER_S
"""Reference ticks kept for the settlement fallback."""


@dataclass(frozen=True, slots=True)
class ReferenceVerdict:
    """What the reference feed says of a window.

    ``outcome``: Up/Down, None when the feed has no tick at or before the start or none in
    the window. ``mismatch``: no verdict from the window's own feed although the recording
    holds ticks of another Chainlink feed that would have given one (e.g. only
    instantaneous ticks for a TWAP market). ``stale``: a boundary tick (the open or the
    close one) was stamped more than the allowed age before its boundary.
    """

    outcome: str | None
    mismatch: bool
    stale: bool


def _verdict(
    ticks: Iterable[tuple[int, int, float]], start_ns: int, end_ns: int, t_ns: int
) -> tuple[str, int, int] | None:
    """(outcome, open tick stamp, close tick stamp) from ticks received by ``t_ns``."""
    open_v = close_v = None
    best_o = best_c = -(2**62)
    for recv, exch, value in ticks:
        if recv > t_ns:
            break
        if best_o <= exch <= start_ns:
            best_o, open_v = exch, value
        if best_c <= exch <= end_ns:
            best_c, close_v = exch, value
    if open_v is None or close_v is None or best_c < start_ns:
        return None
    return ("Up" if close_v >= open_v else "Down"), best_o, best_c


@dataclass(slots=True)
class ReferenceFeeds:
    """The reference ticks of one asset, per feed (see the module docstring)."""

    refs: dict[str, Series] = field(default_factory=dict)
    """Live reference ticks per feed; a market reads only its own feed's."""
    ref_ticks: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)
    """Per feed, (recv_ns, exch_ns, value) of live reference ticks, kept ~3 h for the
    settlement fallback."""

    def add(self, c: StreamCols, r: np.ndarray) -> None:
        """Live reference ticks (backfilled ones, re-sent on subscribe, are left out), each
        kept in the series of its own feed (topic and TWAP window)."""
        r = r[~c.obj("backfill")[r].astype(bool)]
        if r.shape[0] == 0:
            return
        topics = c.obj("topic")[r]
        wins = c.num("window_s", np.int64, fill=0)[r]
        feeds = np.array(
            [row_feed(t, int(w) if w else None) for t, w in zip(topics, wins, strict=True)]
        )
        for feed in dict.fromkeys(feeds.tolist()):
            self._add_feed(feed, c, r[feeds == feed])

    def _add_feed(self, feed: str, c: StreamCols, r: np.ndarray) -> None:
        ref = self.refs.get(feed)
        if ref is None:
            ref = self.refs[feed] = Series("exch", "value", "exch_env")
        exch = c.num("exch_ns", np.int64, fill=0)[r].astype(np.float64)
        prev = ref.last("exch_env") if len(ref) else -np.inf
        env = np.maximum.accumulate(np.maximum(exch, prev))
        recv = c.num("recv_ns", np.int64)[r]
        value = c.num("value")[r]
        ref.append(recv, exch, value, env)
        self.ref_ticks.setdefault(feed, []).extend(
            zip(recv.tolist(), exch.astype(np.int64).tolist(), value.tolist(), strict=True)
        )

    def trim(self, t: int, keep: int) -> None:
        """Forget the series before ``keep`` (no tick after ``t`` looks further back) and the
        raw ticks received more than :data:`REFERENCE_KEEP_NS` before ``t``."""
        for s in self.refs.values():
            s.trim_before(keep)
        cut = t - REFERENCE_KEEP_NS
        for feed, ticks in self.ref_ticks.items():
            if ticks and ticks[0][0] < cut:
                self.ref_ticks[feed] = [r for r in ticks if r[0] >= cut]

    def verdict(
        self, start_ns: int, end_ns: int, t_ns: int, feed: str, max_age_ns: int
    ) -> ReferenceVerdict:
        """Up/Down of the window [start, end) from the ``feed`` ticks received by ``t_ns``:
        the last tick stamped at or before the end against the last stamped at or before the
        start; Up iff close >= open (see :class:`ReferenceVerdict` for the flags)."""
        got = _verdict(self.ref_ticks.get(feed, ()), start_ns, end_ns, t_ns)
        if got is None:
            other = any(
                f != feed
                and is_settlement_feed(f)
                and _verdict(ticks, start_ns, end_ns, t_ns) is not None
                for f, ticks in self.ref_ticks.items()
            )
            return ReferenceVerdict(outcome=None, mismatch=other, stale=False)
        outcome, open_ns, close_ns = got
        stale = start_ns - open_ns > max_age_ns or end_ns - close_ns > max_age_ns
        return ReferenceVerdict(outcome=outcome, mismatch=False, stale=stale)

    def move(
        self, q: np.ndarray, ws: np.ndarray, has_w: np.ndarray, feed: str = INSTANT
    ) -> np.ndarray:
        """ln(R(t) / R_open), both from the ``feed`` ticks received by t only (the feed the
        window settles on; a replay batch holds ticks received later): R(t) is the one
        stamped last, R_open the one stamped last at or before the window start (ties: the
        later received). R_open is known once a tick stamped at or after the start has been
        received, never earlier: before that the feature is undefined. A tick that arrives
        out of stamp order counts from its receive time, and only where its stamp puts it."""
        ref = self.refs.get(feed)
        if ref is None or len(ref) == 0:
            return np.full(q.shape, np.nan)
        exch = ref.col("exch")
        env = ref.col("exch_env")
        iq = ref.asof(q)
        latest = _best_at_or_before(exch, np.inf)[np.maximum(iq, 0)]
        now = np.where(iq >= 0, ref.col("value")[np.maximum(latest, 0)], np.nan)
        wsf = ws.astype(np.float64)
        seen_start = (iq >= 0) & (env[np.maximum(iq, 0)] >= wsf)
        j = np.full(q.shape, -1, dtype=np.int64)
        for w in np.unique(ws[has_w & seen_start]).tolist():
            at = has_w & seen_start & (ws == w)
            j[at] = _best_at_or_before(exch, float(w))[iq[at]]
        ok = has_w & seen_start & (j >= 0)
        opened = np.where(ok, ref.col("value")[np.maximum(j, 0)], np.nan)
        return np.where(ok, np.log(now / opened), np.nan)


def _best_at_or_before(exch: np.ndarray, bound: float) -> np.ndarray:
    """For each row i, the row among 0..i with the largest stamp <= ``bound`` (ties: the
    last such row); -1 where none. ``exch`` [n] stamps in receive order -> int64 [n]."""
    key = np.where(exch <= bound, exch, -np.inf)
    best = np.maximum.accumulate(key)
    attains = (key == best) & np.isfinite(key)
    return np.maximum.accumulate(np.where(attains, np.arange(exch.shape[0]), -1))
