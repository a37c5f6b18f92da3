"""The bits of the ``quality`` column: what each flag means (pure data, no checks).

A venue or an archive sometimes sends what cannot be true: an exchange time of 0 (1970), a
price of -1 or 0, a book level at price 0, a payload whose symbol is not its stream's, a
depth diff with ``U > u``, a trade id sent twice. Such a row is still stored exactly as it
arrived, but never silently as if true: every row carries ``quality``, a bitmask of the
checks it failed (0 = clean), set once by :class:`~polyrl.sources.parse.Parser` through a
:class:`~polyrl.sources.quality.checker.QualityChecker`. The bits (:data:`FLAGS`, printed by
``polyrl schema``; the store, the schema, ``inspect`` and the features read only this module):

==============  ===  =========================================================================
name            bit  meaning
==============  ===  =========================================================================
bad_value       0    a price or size that is 0, negative, NaN or infinite where the wire
                     cannot mean that (any book level included). A size of 0 that *removes* a
                     level (a Binance ``depthUpdate``, a Polymarket price_change) is not a
                     defect; in a spot partial book, a REST snapshot or a Polymarket book it is.
price_range     1    a Polymarket price (level, trade, reported best bid/ask, tick, final
                     price) outside [0, 1]. A price of -1 sets this and bad_value.
bad_time        2    ``exch_ns`` <= 0 (a 1970 time), or further than the configured tolerance
                     from ``recv_ns`` where the venue time is a send time (not for REST klines,
                     CLOB/Gamma resolutions or RTDS backfill, whose times are rightly old).
symbol          3    the payload names another symbol than its stream: a Binance combined-
                     stream name vs the payload's ``s``, a REST request's symbol vs the
                     response's, or a Polymarket row whose ``market`` is not its token's.
depth_ids       4    a Binance depth update whose first id exceeds its last (``U > u``).
seq_gap         5    a Binance depth diff that does not follow the previous diff of its stream
                     on this connection (spot: ``U != previous u + 1``; futures:
                     ``pu != previous u``): updates are missing before it.
duplicate       6    a Binance trade (or aggTrade) id already seen on this connection.
crossed         7    best bid >= best ask, where one row shows both: a book snapshot or partial
                     book, the levels a diff leaves, a book ticker, a reported best bid/ask.
==============  ===  =========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

BAD_VALUE = 1 << 0
PRICE_RANGE = 1 << 1
BAD_TIME = 1 << 2
SYMBOL = 1 << 3
DEPTH_IDS = 1 << 4
SEQ_GAP = 1 << 5
DUPLICATE = 1 << 6
CROSSED = 1 << 7


@dataclass(frozen=True, slots=True)
class Flag:
    """One bit of the ``quality`` column."""

    name: str
    bit: int
    doc: str

    @property
    def mask(self) -> int:
        return 1 << self.bit


FLAGS: tuple[Flag, ...] = (
    Flag(
        "bad_value",
        0,
        "price or size 0, negative, NaN or infinite where the wire cannot mean that "
        "(book levels too; size 0 removing a level in a depthUpdate or price_change is fine)",
    ),
    Flag("price_range", 1, "Polymarket price (level, trade, best bid/ask, tick) outside [0, 1]"),
    Flag(
        "bad_time",
        2,
        "exch_ns <= 0 (1970), or further than [recording] exch_time_tolerance_s from recv_ns "
        "where the venue time is a send time",
    ),
    Flag(
        "symbol",
        3,
        "payload symbol differs from its stream's (combined-stream name vs `s`, REST request "
        "vs response; Polymarket `market` not the token's)",
    ),
    Flag("depth_ids", 4, "Binance depth update with U > u"),
    Flag(
        "seq_gap",
        5,
        "Binance depth diff not following the previous one on this connection (spot U != "
        "prev u + 1, futures pu != prev u): updates missing before it",
    ),
    Flag("duplicate", 6, "Binance trade/aggTrade id already seen on this connection"),
    Flag(
        "crossed",
        7,
        "best bid >= best ask in one row (book snapshot, a diff's levels, book ticker, "
        "reported best bid/ask)",
    ),
)
FLAG_BY_NAME: dict[str, Flag] = {f.name: f for f in FLAGS}


def names(quality: int) -> list[str]:
    """The names of the flags set in ``quality`` (in bit order)."""
    return [f.name for f in FLAGS if quality & f.mask]
