"""Quality flags: pure checks that mark rows holding impossible values (pure: no I/O).

A venue or an archive sometimes sends what cannot be true: an exchange time of 0 (1970), a
price of -1 or 0, a book level at price 0, a payload whose symbol is not its stream's, a
depth diff with ``U > u``, a trade id sent twice. Such a row is still stored exactly as it
arrived, but never silently as if true: every row carries ``quality``, a bitmask of the
checks it failed (0 = clean), set once by :class:`~polyrl.sources.parse.Parser` through a
:class:`QualityChecker`. The bits (:data:`FLAGS`, printed by ``polyrl schema``):

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

Sequential checks (``seq_gap``, ``duplicate``) keep state per channel and start afresh on
every ``recorder.status`` ``connect``, ``disconnect`` or ``connect_failed`` of that channel
(and on a recorder ``start``): ids are only comparable within one connection. The checks cost
a few comparisons per row; a row is copied only when it is flagged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from polyrl.events import (
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_KLINES,
    CH_BINANCE_SPOT_WS,
    CH_POLYMARKET_CLOB_MARKET,
    CH_POLYMARKET_GAMMA,
    CH_RECORDER,
    NS_PER_S,
    STATUS_STREAM,
    Event,
    Frame,
)

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

DEFAULT_EXCH_TOLERANCE_S = 300.0
"""Default bound on ``|exch_ns - recv_ns|`` (seconds): far above any normal latency or clock
offset, far below the years a corrupt timestamp is off by."""

_INF = float("inf")
_RECENT_TRADE_IDS = 4096
"""Trade ids remembered per stream and connection (a resend arrives within seconds)."""
_MAX_MARKETS = 100_000
"""Polymarket tokens whose market is remembered (about 130 days of four assets)."""

# Channels whose rows carry a venue time that is rightly far from the receive time: REST
# klines (bar close times, up to the warm-up length ago), resolutions read long after the
# window closed.
_OLD_TIME_CHANNELS = frozenset(
    {CH_BINANCE_SPOT_KLINES, CH_POLYMARKET_CLOB_MARKET, CH_POLYMARKET_GAMMA}
)
_BINANCE_WS = frozenset({CH_BINANCE_SPOT_WS, CH_BINANCE_FUTURES_WS})
_STREAM_NAME = re.compile(r'\{\s*"stream"\s*:\s*"([^"\\]+)"').match
_RESET_KINDS = frozenset({"connect", "disconnect", "connect_failed"})
_PM_MARKET_STREAMS = frozenset(
    {
        "polymarket.book",
        "polymarket.price_change",
        "polymarket.trade",
        "polymarket.tick_size",
        "polymarket.best_bid_ask",
    }
)


def names(quality: int) -> list[str]:
    """The names of the flags set in ``quality`` (in bit order)."""
    return [f.name for f in FLAGS if quality & f.mask]


# ---------------------------------------------------------------------------------------------
# Value checks: each returns the bits one row fails (0 when clean).


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

# What else a stream's rows go through besides their value checks (one lookup per row).
_PLAIN, _TRADE, _DEPTH, _PM_TOKEN, _PM_MARKET, _REFERENCE = range(6)
_KIND: dict[str, int] = {
    "binance.spot.trade": _TRADE,
    "binance.futures.trade": _TRADE,
    "binance.spot.depth": _DEPTH,
    "binance.futures.depth": _DEPTH,
    "polymarket.market": _PM_MARKET,
    "reference.price": _REFERENCE,
    **dict.fromkeys(_PM_MARKET_STREAMS, _PM_TOKEN),
}
_PLAN: dict[str, tuple[Callable[[Mapping[str, Any]], int], int]] = {
    s: (fn, _KIND.get(s, _PLAIN)) for s, fn in VALUE_CHECKS.items()
}


# ---------------------------------------------------------------------------------------------
# The stateful checker


class _Recent:
    """Recent trade ids of one stream on one connection (about the last
    ``_RECENT_TRADE_IDS``: ids only grow, so older ones are dropped below the top)."""

    __slots__ = ("ids", "top")

    def __init__(self) -> None:
        self.ids: set[int] = set()
        self.top = -(2**63)

    def seen(self, i: int) -> bool:
        """True when ``i`` was seen before; otherwise remember it."""
        ids = self.ids
        if i > self.top:  # the usual case: the next id
            self.top = i
            ids.add(i)
            if len(ids) > 2 * _RECENT_TRADE_IDS:
                floor = i - _RECENT_TRADE_IDS
                self.ids = {x for x in ids if x > floor}
            return False
        if i in ids:
            return True
        ids.add(i)
        return False


class QualityChecker:
    """Sets ``quality`` on the events of each frame (see the module doc); never raises.

    ``exch_tolerance_s`` bounds ``|exch_ns - recv_ns|`` for rows whose venue time is a send
    time. State: per channel, the last depth update id and the recent trade ids of each
    stream (keyed by the combined-stream name where the frame has one, so ``@trade`` and
    ``@aggTrade`` ids, or two depth speeds, are never compared), and the market of every
    Polymarket token seen in a ``polymarket.market`` row.
    """

    def __init__(self, *, exch_tolerance_s: float = DEFAULT_EXCH_TOLERANCE_S) -> None:
        if not exch_tolerance_s > 0:
            raise ValueError("exch_tolerance_s must be > 0")
        self.tolerance_ns = int(exch_tolerance_s * NS_PER_S)
        self._last_u: dict[str, dict[Any, int]] = {}
        self._trades: dict[str, dict[Any, _Recent]] = {}
        self._market_of: dict[str, str] = {}
        self._symbols: dict[str, str] = {}

    def reset(self, channel: str | None = None) -> None:
        """Forget the sequential state of one channel (of every channel when None)."""
        if channel is None:
            self._last_u.clear()
            self._trades.clear()
        else:
            self._last_u.pop(channel, None)
            self._trades.pop(channel, None)

    def check(self, frame: Frame, events: list[Event]) -> list[Event]:
        """``events`` (parsed from ``frame``) with each one's ``quality`` set; flagged events
        are replaced by copies in the same list, clean ones are returned as they are."""
        channel = frame.channel
        name: str | None = None
        symbol: str | None = None
        try:
            if channel in _BINANCE_WS:
                name = _stream_name(frame.text)
                if name is not None:
                    symbol = self._symbol_of(name)
            elif frame.request:
                req = frame.request.get("symbol")
                symbol = req.upper() if req else None
        except (TypeError, AttributeError):  # no readable name or request: nothing to compare
            name = symbol = None
        far = channel not in _OLD_TIME_CHANNELS
        tol = self.tolerance_ns
        for i, ev in enumerate(events):
            plan = _PLAN.get(ev.stream)
            if plan is None:
                if ev.stream == STATUS_STREAM:
                    self._status(ev)
                continue
            fn, kind = plan
            try:
                f = ev.fields
                q = fn(f)
                exch = ev.exch_ns
                if exch is not None:
                    d = exch - ev.recv_ns
                    if exch <= 0 or (
                        (d > tol or d < -tol) and far and not (kind == _REFERENCE and f["backfill"])
                    ):
                        q |= BAD_TIME
                if symbol is not None and ev.key != symbol and ev.stream[0] == "b":
                    q |= SYMBOL
                if kind == _TRADE:
                    q |= self._trade_id(channel, name or (ev.stream, ev.key), f["trade_id"])
                elif kind == _DEPTH:
                    if f["update_kind"] == "diff":
                        q |= self._sequence(channel, name or (ev.stream, ev.key), f)
                elif kind == _PM_TOKEN:
                    m = self._market_of.get(ev.key)
                    if m is not None and f["market"] != m:
                        q |= SYMBOL
                elif kind == _PM_MARKET:
                    self._learn_market(ev)
            except (TypeError, ValueError, KeyError, IndexError, AttributeError):
                # A field the checks cannot read as a number is no value to vouch for.
                q = BAD_VALUE
            if q:
                events[i] = _with_quality(ev, q)
        return events

    # -- sequential state ---------------------------------------------------------------------

    def _status(self, ev: Event) -> None:
        kind = ev.fields.get("kind")
        if kind in _RESET_KINDS:
            self.reset(ev.key)
        elif kind == "start" and ev.key == CH_RECORDER:
            self.reset()

    def _trade_id(self, channel: str, key: Any, trade_id: int) -> int:
        per = self._trades.get(channel)
        if per is None:
            per = self._trades[channel] = {}
        recent = per.get(key)
        if recent is None:
            recent = per[key] = _Recent()
        return DUPLICATE if recent.seen(trade_id) else 0

    def _sequence(self, channel: str, key: Any, f: Mapping[str, Any]) -> int:
        per = self._last_u.get(channel)
        if per is None:
            per = self._last_u[channel] = {}
        prev = per.get(key)
        last = f["last_update_id"]
        per[key] = last
        if prev is None:
            return 0
        pu = f["prev_update_id"]
        if pu is not None:  # futures: pu chains each diff to the previous one's u
            return 0 if pu == prev else SEQ_GAP
        return 0 if f["first_update_id"] == prev + 1 else SEQ_GAP

    def _learn_market(self, ev: Event) -> None:
        m = self._market_of
        if len(m) >= _MAX_MARKETS:
            for k in list(m)[: _MAX_MARKETS // 2]:  # the oldest half: long-closed markets
                del m[k]
        m[ev.fields["up_token"]] = ev.key
        m[ev.fields["down_token"]] = ev.key

    def _symbol_of(self, name: str) -> str | None:
        """``btcusdt@depth5@100ms`` -> ``BTCUSDT``; None for an all-market ``!...`` stream."""
        hit = self._symbols.get(name)
        if hit is None:
            if len(self._symbols) >= 4096:
                self._symbols.clear()
            hit = self._symbols[name] = "" if name[0] == "!" else name.partition("@")[0].upper()
        return hit or None


def _stream_name(text: str) -> str | None:
    """The combined-stream name at the head of a Binance frame (``{"stream":"<name>"``);
    None for a raw payload (or members in another order: then no symbol is compared)."""
    if text.startswith('{"stream":"'):  # the venue's own compact form: no regex needed
        end = text.find('"', 11)
        return text[11:end] if end > 11 else None
    m = _STREAM_NAME(text)
    return m.group(1) if m is not None else None


def _with_quality(ev: Event, q: int) -> Event:
    return Event(
        stream=ev.stream,
        recv_ns=ev.recv_ns,
        exch_ns=ev.exch_ns,
        key=ev.key,
        asset=ev.asset,
        fields=ev.fields,
        raw=ev.raw,
        seq=ev.seq,
        quality=ev.quality | q,
    )
