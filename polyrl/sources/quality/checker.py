"""The stateful quality checker: sets ``quality`` on the events the parser makes from a frame.

Per row, :class:`QualityChecker` runs the stream's value checks
(:data:`~polyrl.sources.quality.values.VALUE_CHECKS`), the time check (``bad_time``) and the
symbol checks (``symbol``), and for Binance trades and depth diffs the sequential checks
(``duplicate``, ``seq_gap``); the bits are :mod:`polyrl.sources.quality.flags`. Sequential
checks keep state per channel and start afresh on every ``recorder.status`` ``connect``,
``disconnect`` or ``connect_failed`` of that channel (and on a recorder ``start``): ids are
only comparable within one connection. The checks cost a few comparisons per row; a row is
copied only when it is flagged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
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
from polyrl.sources.quality.flags import BAD_TIME, BAD_VALUE, DUPLICATE, SEQ_GAP, SYMBOL
from polyrl.sources.quality.values import VALUE_CHECKS

DEFAULT_EXCH_TOLERANCE_S = 300.0
"""Default bound on ``|exch_ns - recv_ns|`` (seconds): far above any normal latency or clock
offset, far below the years a corrupt timestamp is off by."""

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
