"""The episodes the replay environment plays: every asset's 15-minute window of a set of
recorded days, as flat per-episode arrays over the day caches.

An episode's steps are its window's *tradable* decision ticks (the Engine forces HOLD
everywhere else). Episodes that overlap a recording gap, or whose window could not be
settled, are left out by default. Pure data: built once from the caches, read by
:class:`polyrl.rl.env.ReplayEnv` and :func:`polyrl.rl.env.evaluate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from polyrl.broker import DECIDED
from polyrl.errors import RecordingError
from polyrl.features.cache import DayCache


@dataclass(slots=True)
class EpisodeStore:
    """Every playable episode of a set of day caches.

    Per episode (arrays [E]): ``day``, ``slot``, ``window`` (row of that day's windows
    table), ``first`` (offset into ``ticks``) and ``length`` (tradable ticks), ``up_won``,
    ``split`` (a 50-50 resolution: $0.50 a share), ``settle`` (False: void, no payout) and
    the venue rules; ``ticks`` [sum of lengths] holds
    each step's tick index within its day.
    """

    caches: list[DayCache]
    day: np.ndarray
    slot: np.ndarray
    window: np.ndarray
    first: np.ndarray
    length: np.ndarray
    up_won: np.ndarray
    split: np.ndarray
    settle: np.ndarray
    fee_rate: np.ndarray
    fee_exponent: np.ndarray
    fees_enabled: np.ndarray
    min_size: np.ndarray
    ticks: np.ndarray
    info: pl.DataFrame

    @property
    def n(self) -> int:
        return int(self.day.shape[0])

    @classmethod
    def build(
        cls,
        caches: Sequence[DayCache],
        *,
        exclude_gap: bool = True,
        exclude_missing: bool = True,
    ) -> EpisodeStore:
        """Collect the episodes; an empty selection is an error naming the days."""
        cols: dict[str, list[Any]] = {k: [] for k in (
            "day", "slot", "window", "first", "length", "up_won", "split", "settle", "fee_rate",
            "fee_exponent", "fees_enabled", "min_size")}  # fmt: skip
        info: dict[str, list[Any]] = {k: [] for k in (
            "date", "asset", "condition_id", "slug", "start_ns", "end_ns", "outcome",
            "outcome_source", "gap", "reference_mismatch", "reference_stale", "steps")}  # fmt: skip
        ticks: list[np.ndarray] = []
        offset = 0
        for d, c in enumerate(caches):
            window = np.asarray(c.arrays["window"])
            tradable = np.asarray(c.arrays["tradable"])
            wins = c.windows
            for row in wins.iter_rows(named=True):
                if exclude_gap and row["gap"]:
                    continue
                outcome = row["outcome"]
                decided = outcome in DECIDED
                if exclude_missing and not decided:
                    continue
                ks = np.flatnonzero(
                    (window[:, row["slot"]] == row["index"]) & tradable[:, row["slot"]]
                )
                if ks.shape[0] == 0:
                    continue
                cols["day"].append(d)
                cols["slot"].append(row["slot"])
                cols["window"].append(row["index"])
                cols["first"].append(offset)
                cols["length"].append(int(ks.shape[0]))
                cols["up_won"].append(outcome == "Up")
                cols["split"].append(outcome == "split")
                cols["settle"].append(decided)
                cols["fee_rate"].append(row["fee_rate"])
                cols["fee_exponent"].append(row["fee_exponent"])
                cols["fees_enabled"].append(row["fees_enabled"])
                cols["min_size"].append(row["min_size"])
                for k in (
                    "asset",
                    "condition_id",
                    "slug",
                    "start_ns",
                    "end_ns",
                    "outcome",
                    "outcome_source",
                    "gap",
                ):
                    info[k].append(row[k])
                for k in ("reference_mismatch", "reference_stale"):  # absent from older tables
                    info[k].append(bool(row.get(k) or False))
                info["date"].append(c.date)
                info["steps"].append(int(ks.shape[0]))
                ticks.append(ks.astype(np.int64))
                offset += int(ks.shape[0])
        if not cols["day"]:
            days = ", ".join(c.date for c in caches) or "none"
            raise RecordingError(f"no playable episodes in the selected days ({days})")
        return cls(
            caches=list(caches),
            day=np.array(cols["day"], dtype=np.int64),
            slot=np.array(cols["slot"], dtype=np.int64),
            window=np.array(cols["window"], dtype=np.int64),
            first=np.array(cols["first"], dtype=np.int64),
            length=np.array(cols["length"], dtype=np.int64),
            up_won=np.array(cols["up_won"], dtype=bool),
            split=np.array(cols["split"], dtype=bool),
            settle=np.array(cols["settle"], dtype=bool),
            fee_rate=np.array(cols["fee_rate"], dtype=np.float64),
            fee_exponent=np.array(cols["fee_exponent"], dtype=np.float64),
            fees_enabled=np.array(cols["fees_enabled"], dtype=bool),
            min_size=np.array(cols["min_size"], dtype=np.float64),
            ticks=np.concatenate(ticks),
            info=pl.DataFrame(info),
        )
