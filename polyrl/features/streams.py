"""The streams a feature set needs, and the refusal of days that lack one.

Each feature names the streams it ``needs`` (without them it cannot be computed) and those it
reads only if present (``optional``: the 1 m kline warm-up); every set also needs
:data:`~polyrl.features.sets.MARKET_STREAMS` (the windows traded and their books). ``train``,
``backtest`` and ``live`` refuse, before any work, days that lack a needed stream
(:func:`missing_streams`, :func:`refusal`): a feature computed from nothing would be NaN on
every tick and the market never ready, which looks like a quiet day rather than an error.
"""

from __future__ import annotations

from polyrl.features.sets import FEATURE_SETS, FeatureSet

SPARSE_STREAMS = ("binance.futures.liquidation",)
"""Streams with rows only when something happens: a day the recorder or the simulator made
(both always subscribe them) has them even without a partition; an imported day only with
one (:func:`polyrl.replay.day_streams`)."""


def missing_streams(fset: FeatureSet, present: dict[str, set[str]]) -> dict[str, list[str]]:
    """``{stream: the days lacking it}`` for every stream ``fset`` needs that some day of
    ``present`` (``{day: the streams it has}``) lacks; empty when every day has them all."""
    out: dict[str, list[str]] = {}
    for stream in fset.needs():
        days = [d for d in sorted(present) if stream not in present[d]]
        if days:
            out[stream] = days
    return out


def _days_text(days: list[str]) -> str:
    return ", ".join(days) if len(days) <= 4 else f"{', '.join(days[:3])} and {len(days) - 3} more"


def refusal(fset: FeatureSet, present: dict[str, set[str]], where: str) -> str | None:
    """The one-line reason ``fset`` cannot run on the days of ``present`` (recorded at
    ``where``), naming each missing stream, the features that need it and the days that lack
    it, and the built-in sets that would work; None when nothing is missing."""
    missing = missing_streams(fset, present)
    if not missing:
        return None
    needs = fset.needs()
    parts = [
        f"{s} (needed by {', '.join(needs[s])}) is missing from {_days_text(days)}"
        for s, days in missing.items()
    ]
    fits = [
        n for n, fs in FEATURE_SETS.items() if n != fset.name and not missing_streams(fs, present)
    ]
    hint = (
        "use " + " or ".join(f"--feature-set {n}" for n in fits)
        if fits
        else "no built-in feature set has every stream it needs there"
    )
    return f"feature set {fset.name} cannot run on {where}: {'; '.join(parts)}; {hint}"
