"""The taker fee schedule Polymarket publishes for its crypto Up/Down markets, by date.

A market says ``feesEnabled`` and carries its own ``feeSchedule {rate, exponent, takerOnly,
rebateRate}`` (Gamma; ``fee_enabled``/``fee_schedule`` on a ``new_market`` frame). One that
says fees are enabled but carries no schedule still charges its takers: it is charged the
crypto category's published schedule in force at its window's start and flagged
``fee_schedule_assumed``, never a silent zero fee. A market's own schedule always wins.

The published crypto schedules (rate ``r``, ``C`` shares at price ``p``):

* from 2026-03-30: ``fee = C * r * p * (1 - p)``, ``r = 0.07``, takers only, makers get a
  20 % rebate — https://docs.polymarket.com/trading/fees;
* from the introduction of taker fees on the 15-minute crypto markets (2026-01) until then:
  ``fee_equivalent = C * p * r * (p * (1 - p))**2``, ``r = 0.25`` — the maker rebates table
  of https://docs.polymarket.com/llms-full.txt.
"""

from __future__ import annotations

from polyrl.events import iso_to_ns

CRYPTO_FEE_SCHEDULES: tuple[tuple[int, float, float, float], ...] = (
    (iso_to_ns("2026-03-30T00:00:00Z"), 0.07, 1.0, 0.2),
    (-(2**63), 0.25, 2.0, 0.2),
)
"""(from_ns, rate, exponent, rebate rate), newest first: the crypto schedule in force from
``from_ns`` (see the module doc for the sources)."""


def crypto_fee_schedule(start_ns: int) -> dict[str, float | bool]:
    """The fee columns of the crypto schedule in force at ``start_ns`` (a window's start)."""
    for from_ns, rate, exponent, rebate in CRYPTO_FEE_SCHEDULES:
        if start_ns >= from_ns:
            return {
                "fee_rate": rate,
                "fee_exponent": exponent,
                "fee_taker_only": True,
                "fee_rebate_rate": rebate,
            }
    raise AssertionError("the oldest schedule starts at the earliest time")  # pragma: no cover
