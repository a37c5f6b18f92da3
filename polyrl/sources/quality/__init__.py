"""Quality flags: pure checks that mark rows holding impossible values (pure: no I/O).

Every stored row carries ``quality``, a bitmask of the checks it failed (0 = clean). Three
modules, one idea each:

- :mod:`~polyrl.sources.quality.flags`: the bits and what each means (:data:`FLAGS`, printed
  by ``polyrl schema``), the contract the store, ``inspect`` and the features read;
- :mod:`~polyrl.sources.quality.values`: the stateless value checks of one row's fields, per
  stream (:data:`VALUE_CHECKS`), which the importers run too;
- :mod:`~polyrl.sources.quality.checker`: :class:`QualityChecker`, which the parser runs on
  every frame's events: value, time and symbol checks, and the sequential ones per
  connection.

This package re-exports their public names, so ``from polyrl.sources.quality import X``
keeps working; code of this package imports from the module that defines a name.
"""

from polyrl.sources.quality.checker import DEFAULT_EXCH_TOLERANCE_S, QualityChecker
from polyrl.sources.quality.flags import (
    BAD_TIME,
    BAD_VALUE,
    CROSSED,
    DEPTH_IDS,
    DUPLICATE,
    FLAG_BY_NAME,
    FLAGS,
    PRICE_RANGE,
    SEQ_GAP,
    SYMBOL,
    Flag,
    names,
)
from polyrl.sources.quality.values import VALUE_CHECKS

__all__ = [
    "BAD_TIME",
    "BAD_VALUE",
    "CROSSED",
    "DEFAULT_EXCH_TOLERANCE_S",
    "DEPTH_IDS",
    "DUPLICATE",
    "FLAGS",
    "FLAG_BY_NAME",
    "PRICE_RANGE",
    "SEQ_GAP",
    "SYMBOL",
    "VALUE_CHECKS",
    "Flag",
    "QualityChecker",
    "names",
]
