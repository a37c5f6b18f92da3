"""Value checks: the stateless checks of one row's fields, per stream (pure: no I/O, no state).

Each check returns the :mod:`~polyrl.sources.quality.flags` bits one row fails (0 when
clean): ``bad_value``, ``price_range``, ``depth_ids`` and ``crossed``. The
:class:`~polyrl.sources.quality.checker.QualityChecker` runs them on every parsed row, and
the importers run them on the rows they convert (:data:`VALUE_CHECKS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from polyrl.sources.quality.flags import BAD_VALUE, CROSSED, DEPTH_IDS, PRICE_RANGE

_INF = float("inf")


def _pos(x: Any) -> int:
    """BAD_VALUE unless ``x`` is a finite number > 0."""
    return 0 if 0 < x < _INF else BAD_VALUE


def _nonneg(x: Any) -> int:
    """BAD_VALUE unless ``x`` is a finite number >= 0."""
    return 0 if 0 <= x < _INF else BAD_VALUE


def _opt_pos(x: Any) -> int:
    return 0 if x is None or 0 < x < _INF else BAD_VALUE


def _opt_nonneg(x: Any) -> int:
    return 0 if x is None or 0 <= x < _INF else BAD_VALUE


def _finite(x: Any) -> int:
    return 0 if x is None or -_INF < x < _INF else BAD_VALUE


def _unit(x: Any) -> int:
    """PRICE_RANGE when a Polymarket price is outside [0, 1] (None is no price)."""
    return 0 if x is None or 0 <= x <= 1 else PRICE_RANGE


def _levels(px: list[float], qty: list[float], *, removals: bool) -> int:
    """Every level's price > 0 and size > 0 (>= 0 where 0 removes the level), all finite.

    ``min``/``sum`` run in C: a NaN anywhere makes the sum NaN, an infinity makes it inf.
    """
    if not px:
        return 0
    q = 0
    if not (min(px) > 0 and sum(px) < _INF):
        q = BAD_VALUE
    lo = min(qty)
    if not ((lo >= 0 if removals else lo > 0) and sum(qty) < _INF):
        q = BAD_VALUE
    return q


def _best(px: list[float], qty: list[float]) -> float | None:
    """The best real level's price: the first (sides are sorted best first) whose price and
    size are > 0, so a removal or a bad level never counts as a quote."""
    for p, s in zip(px, qty, strict=False):
        if s > 0 and p > 0:
            return p
    return None


def _crossed(bid: float | None, ask: float | None) -> int:
    """CROSSED when two real quotes (> 0) cross or lock; 0 may stand for an empty side."""
    if bid is not None and ask is not None and 0 < ask <= bid:
        return CROSSED
    return 0


# The hottest checks test the all-clean case in one expression and name the bits only when
# something is off.


def _trade(f: Mapping[str, Any]) -> int:
    if 0 < f["price"] < _INF and 0 < f["qty"] < _INF and f.get("qty_no_rpi") is None:
        return 0
    return _pos(f["price"]) | _pos(f["qty"]) | _opt_nonneg(f.get("qty_no_rpi"))


def _book_ticker(f: Mapping[str, Any]) -> int:
    bid, ask = f["bid_px"], f["ask_px"]
    if 0 < bid < ask < _INF and 0 < f["bid_qty"] < _INF and 0 < f["ask_qty"] < _INF:
        return 0
    q = _pos(bid) | _pos(ask) | _pos(f["bid_qty"]) | _pos(f["ask_qty"])
    return q | _crossed(bid, ask)


def _depth(f: Mapping[str, Any]) -> int:
    bp, bq, ap, aq = f["bid_px"], f["bid_qty"], f["ask_px"], f["ask_qty"]
    first = f["first_update_id"]
    if (
        first is None  # a partial book or snapshot, both sides present: the usual row
        and bp
        and ap
        and 0 < bp[-1]
        and bp[0] < ap[0]
        and min(bq) > 0
        and min(aq) > 0
        and sum(bp) + sum(ap) + sum(bq) + sum(aq) < _INF  # NaN or inf anywhere fails this
    ):
        return 0
    # Every depthUpdate-shaped payload (diffs, and futures top-N books, which share the form)
    # may carry size 0 to remove a level; a spot partial book or a REST snapshot may not.
    removals = first is not None
    q = _levels(bp, bq, removals=removals) | _levels(ap, aq, removals=removals)
    if first is not None and first > f["last_update_id"]:
        q |= DEPTH_IDS
    if bp and ap:  # for a diff: the levels it leaves behind must not cross each other
        q |= _crossed(_best(bp, bq), _best(ap, aq))
    return q


def _kline(f: Mapping[str, Any]) -> int:
    q = _pos(f["open"]) | _pos(f["high"]) | _pos(f["low"]) | _pos(f["close"])
    q |= _nonneg(f["volume"]) | _nonneg(f["quote_volume"])
    return q | _nonneg(f["taker_buy_base"]) | _nonneg(f["taker_buy_quote"])


def _mark(f: Mapping[str, Any]) -> int:
    q = _pos(f["mark_px"]) | _pos(f["index_px"]) | _opt_pos(f["settle_px"])
    return q | _opt_pos(f["mark_avg_px"]) | _finite(f["funding_rate"])


def _liquidation(f: Mapping[str, Any]) -> int:
    q = _pos(f["qty"]) | _pos(f["price"]) | _nonneg(f["avg_price"])
    return q | _nonneg(f["last_filled_qty"]) | _nonneg(f["filled_qty"])


def _open_interest(f: Mapping[str, Any]) -> int:
    return _nonneg(f["open_interest"])


def _pm_market(f: Mapping[str, Any]) -> int:
    return _pos(f["tick_size"]) | _unit(f["tick_size"]) | _nonneg(f["min_size"])


def _pm_book(f: Mapping[str, Any]) -> int:
    bp, bs, ap, as_ = f["bid_px"], f["bid_size"], f["ask_px"], f["ask_size"]
    q = _levels(bp, bs, removals=False) | _levels(ap, as_, removals=False)
    if bp:
        q |= _unit(bp[0]) | _unit(bp[-1])
    if ap:
        q |= _unit(ap[0]) | _unit(ap[-1])
        if bp:
            q |= _crossed(_best(bp, bs), _best(ap, as_))
    return q | _opt_pos(f["tick_size"]) | _unit(f["last_trade_price"])


def _pm_price_change(f: Mapping[str, Any]) -> int:
    p = f["price"]
    bid, ask = f["best_bid"], f["best_ask"]
    if 0 < p <= 1 and 0 <= f["size"] < _INF and bid is not None and ask is not None:
        if 0 <= bid < ask <= 1 or (0 <= bid <= 1 and 0 <= ask <= 1 and (bid == 0 or ask == 0)):
            return 0
    q = _pos(p) | _unit(p) | _nonneg(f["size"])
    return q | _unit(bid) | _unit(ask) | _crossed(bid, ask)


def _pm_trade(f: Mapping[str, Any]) -> int:
    p = f["price"]
    return _pos(p) | _unit(p) | _pos(f["size"])


def _pm_tick_size(f: Mapping[str, Any]) -> int:
    old, new = f["old_tick_size"], f["new_tick_size"]
    return _pos(old) | _pos(new) | _unit(old) | _unit(new)


def _pm_best_bid_ask(f: Mapping[str, Any]) -> int:
    bid, ask = f["best_bid"], f["best_ask"]
    return _unit(bid) | _unit(ask) | _crossed(bid, ask)


def _pm_resolution(f: Mapping[str, Any]) -> int:
    return _unit(f["up_price"]) | _unit(f["down_price"])


def _reference(f: Mapping[str, Any]) -> int:
    return _pos(f["value"])


VALUE_CHECKS: dict[str, Callable[[Mapping[str, Any]], int]] = {
    "binance.spot.trade": _trade,
    "binance.futures.trade": _trade,
    "binance.spot.book_ticker": _book_ticker,
    "binance.futures.book_ticker": _book_ticker,
    "binance.spot.depth": _depth,
    "binance.futures.depth": _depth,
    "binance.spot.kline": _kline,
    "binance.futures.kline": _kline,
    "binance.futures.mark": _mark,
    "binance.futures.liquidation": _liquidation,
    "binance.futures.open_interest": _open_interest,
    "polymarket.market": _pm_market,
    "polymarket.book": _pm_book,
    "polymarket.price_change": _pm_price_change,
    "polymarket.trade": _pm_trade,
    "polymarket.tick_size": _pm_tick_size,
    "polymarket.best_bid_ask": _pm_best_bid_ask,
    "polymarket.resolution": _pm_resolution,
    "reference.price": _reference,
}
"""Stream -> the stateless value checks of one row's fields (streams not listed have none)."""
