"""The markets as known at a tick: windows, token books, resolutions and connectivity.

Polymarket and status events are kept as one sequential log in ``(recv_ns, seq)`` order
and applied up to each decision tick (:meth:`MarketLog.advance`): market discovery (which
15-minute window each asset is in), the token books (for the broker's fills and the book
features), recorded resolutions, and which venue channels are connected. A disconnect (or
a recorder restart) unsyncs every Polymarket book until its next full ``book``: no decision
is made on a book that was not re-synchronised after a gap. So does a ``book`` or
``price_change`` row whose quality flags make the engine skip it (:mod:`polyrl.features.flags`):
the true book is then unknown. An outage overlapping a window flags it (:attr:`Window.gap`)
so training can leave it out. So does an importer's ``gap`` row (``import.<source>``: an
archive hour or day missing, a market the archive lacks), which also unsyncs the books of the
windows it covers: no decision is made on them inside the gap.

Stale books. A token's *age* at tick t is ``t - recv_ns`` of the last market-channel row for
that token applied by t: ``book``, ``price_change``, ``last_trade_price``, ``tick_size_change``
or ``best_bid_ask`` (:meth:`MarketLog.fresh`). A market whose Up or Down token is older than
``book_stale_s`` is not tradable: a channel that stops delivering without a disconnect is
caught after that age, not after the adapter's watchdog.

Dating outages. A reconnect writes a ``gap`` row whose ``gap_start_ns`` is the last frame
received before the silence (the ``disconnect`` row came later, when the watchdog fired).
Outages and window flags are dated from ``gap_start_ns``: a window that ended inside the
silence, before the disconnect row, is flagged ``gap``. Tradability does not use it: the
``gap`` row arrives at the reconnect, and at tick t only rows received by t may count (no
look-ahead); during the silence the stale-book rule is what stops trading, ``book_stale_s``
after the last frame. Flags may therefore be set on windows already past when the row
arrives; they feed the windows table (training exclusion) and reports, never a decision.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyrl.events import (
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_WS,
    CH_POLYMARKET_WS,
    CH_RECORDER,
    WINDOW_NS,
)
from polyrl.features.flags import SKIP_MASK
from polyrl.recording.reader import MergedBatch
from polyrl.sources.polymarket.book import TokenBook
from polyrl.sources.polymarket.reference import INSTANT, market_feed

TRADE_DEPENDENT_CHANNELS = (CH_BINANCE_SPOT_WS, CH_BINANCE_FUTURES_WS, CH_POLYMARKET_WS)
"""Channels whose outage makes every market not tradable."""

IMPORT_CHANNEL_PREFIX = "import."
"""``recorder.status`` key prefix of an importer's rows (``import.pmxt``, ``import.binance``)."""

TOUCH_STREAMS = ("polymarket.trade", "polymarket.tick_size", "polymarket.best_bid_ask")
"""Market-channel streams that move no book level but prove the token's feed is alive (they
count toward a book's age with ``book`` and ``price_change``; see :meth:`MarketLog.fresh`)."""

LOG_STREAMS = (
    "polymarket.market",
    "polymarket.book",
    "polymarket.price_change",
    "polymarket.resolution",
    "recorder.status",
    *TOUCH_STREAMS,
)
"""The streams applied sequentially (everything else is a vectorised series)."""

# Log entry kinds: (recv_ns, kind, ...).
_MARKET, _BOOK, _CHANGE, _RESOLUTION, _STATUS, _UNSYNC, _TOUCH = range(7)

_COLUMNS = {
    "polymarket.market": ["recv_ns", "key", "asset", "slug", "up_token", "down_token",
                          "window_start_ns", "window_end_ns", "tick_size", "min_size",
                          "fees_enabled", "fee_rate", "fee_exponent", "fee_schedule_assumed",
                          "twap_seconds"],
    "polymarket.book": ["recv_ns", "key", "bid_px", "bid_size", "ask_px", "ask_size",
                        "quality"],
    "polymarket.price_change": ["recv_ns", "key", "side", "price", "size", "quality"],
    "polymarket.resolution": ["recv_ns", "key", "outcome", "source"],
    "recorder.status": ["recv_ns", "key", "kind", "gap_start_ns", "gap_end_ns"],
    **{s: ["recv_ns", "key"] for s in TOUCH_STREAMS},
}  # fmt: skip
_BOOK_STREAMS = frozenset({"polymarket.book", "polymarket.price_change"})
_TOKEN_KINDS = frozenset({_BOOK, _CHANGE, _UNSYNC, _TOUCH})


@dataclass(slots=True)
class Window:
    """One asset's 15-minute market, as known from ``polymarket.market`` rows."""

    index: int
    asset: str
    slot: int
    condition_id: str
    slug: str
    up_token: str
    down_token: str
    start_ns: int
    end_ns: int
    known_ns: int
    tick_size: float
    min_size: float
    fees_enabled: bool
    fee_rate: float
    fee_exponent: float
    outcome: str | None = None
    outcome_source: str | None = None
    outcome_ns: int | None = None
    gap: bool = False
    """A venue outage overlapped the window (training may leave it out); the outage is dated
    from the recorder's ``gap_start_ns`` when its ``gap`` row arrives (see the module doc)."""
    fee_schedule_assumed: bool = False
    """Fees enabled without a published ``feeSchedule``: the fee fields hold the crypto
    schedule in force at the window's start (see :mod:`polyrl.sources.polymarket.fees`)."""
    reference_feed: str = INSTANT
    """The feed the market settles on (``chainlink``, ``twap60``...), from its Gamma
    ``cryptoMarketConfig`` (see :mod:`polyrl.sources.polymarket.reference`)."""
    reference_mismatch: bool = False
    """No outcome: the reference fallback was refused because the recording holds ticks of
    another feed only (e.g. instantaneous ticks for a TWAP market)."""
    reference_stale: bool = False
    """Settled by the reference fallback from a boundary tick older than
    ``[features] reference_max_age_s``."""


def window_fields(w: Window) -> dict[str, Any]:
    """A window's fields by name (to copy it with some replaced)."""
    return {f: getattr(w, f) for f in Window.__dataclass_fields__}


class MarketLog:
    """The sequential state of the markets of ``assets`` (slot i = assets[i])."""

    def __init__(self, assets: tuple[str, ...]) -> None:
        self.slot_of = {a: i for i, a in enumerate(assets)}
        self.windows: list[Window] = []
        """Every window seen, in order of discovery (``Window.index`` is the position)."""
        self.outages: list[tuple[str, int, int]] = []
        """(channel, start_ns, end_ns) of every outage that ended: from the disconnect row to
        the reconnect, widened back to ``gap_start_ns`` once the reconnect's gap row arrives."""
        self.cursor_ns = -(2**62)
        """Everything logged up to this time has been applied."""
        self._log: deque[tuple[Any, ...]] = deque()
        self._by_cid: dict[str, Window] = {}
        self._live: dict[str, list[Window]] = {a: [] for a in assets}
        self._tokens: dict[str, TokenBook] = {}
        self._heard_ns: dict[str, int] = {}
        """Per token, the recv_ns of the last market-channel row applied for it."""
        # Unknown at first (a replay may start mid-recording): up until a status says not.
        self._down: set[str] = set()
        self._down_since: dict[str, int] = {}
        self._import_gaps: list[tuple[int, int]] = []
        """Spans an importer's ``gap`` rows said the archive lacks (see :meth:`_import_gap`)."""

    # -- ingest -------------------------------------------------------------------------------

    def ingest(self, batch: MergedBatch) -> None:
        """Log a batch's Polymarket and status rows (in merged order) to apply later."""
        present = [s for s in LOG_STREAMS if s in batch.columns]
        if not present:
            return
        codes = {batch.streams.index(s): s for s in present}
        sel = np.flatnonzero(np.isin(batch.stream_code, list(codes)))
        cols = {s: batch.columns[s].lists(_COLUMNS[s]) for s in present}
        counter = dict.fromkeys(present, 0)
        log = self._log
        for code in batch.stream_code[sel].tolist():
            s = codes[code]
            i = counter[s]
            counter[s] = i + 1
            c = cols[s]
            if s in _BOOK_STREAMS and c["quality"][i] & SKIP_MASK:
                log.append((c["recv_ns"][i], _UNSYNC, c["key"][i]))
            elif s == "polymarket.price_change":
                log.append((c["recv_ns"][i], _CHANGE, c["key"][i], c["side"][i] == "BUY",
                            c["price"][i], c["size"][i]))  # fmt: skip
            elif s == "polymarket.book":
                log.append((c["recv_ns"][i], _BOOK, c["key"][i], c["bid_px"][i],
                            c["bid_size"][i], c["ask_px"][i], c["ask_size"][i]))  # fmt: skip
            elif s == "recorder.status":
                log.append((c["recv_ns"][i], _STATUS, c["key"][i], c["kind"][i],
                            c["gap_start_ns"][i], c["gap_end_ns"][i]))  # fmt: skip
            elif s in TOUCH_STREAMS:
                log.append((c["recv_ns"][i], _TOUCH, c["key"][i]))
            elif s == "polymarket.market":
                log.append((c["recv_ns"][i], _MARKET, *(c[n][i] for n in _COLUMNS[s][1:])))
            else:
                log.append((c["recv_ns"][i], _RESOLUTION, c["key"][i], c["outcome"][i],
                            c["source"][i]))  # fmt: skip

    # -- apply --------------------------------------------------------------------------------

    def advance(self, t: int) -> None:
        """Apply every logged event with recv_ns <= t."""
        log = self._log
        tokens = self._tokens
        heard = self._heard_ns
        while log and log[0][0] <= t:
            e = log.popleft()
            kind = e[1]
            if kind in _TOKEN_KINDS:
                heard[e[2]] = e[0]
            if kind == _CHANGE:
                lv = tokens.get(e[2])
                if lv is not None:
                    lv.set_level(e[3], e[4], e[5])
            elif kind == _BOOK:
                lv = tokens.get(e[2])
                if lv is None:
                    lv = tokens[e[2]] = TokenBook(e[2])
                lv.replace(e[3], e[4], e[5], e[6])
            elif kind == _STATUS:
                self._status(e[0], e[2], e[3], e[4], e[5])
            elif kind == _UNSYNC:
                lv = tokens.get(e[2])
                if lv is not None:
                    lv.reset()
            elif kind == _MARKET:
                self._market(e)
            elif kind == _TOUCH:
                pass
            else:
                w = self._by_cid.get(e[2])
                if w is not None and w.outcome is None:
                    w.outcome, w.outcome_source, w.outcome_ns = e[3], e[4], e[0]
        self.cursor_ns = t

    def _status(
        self, t: int, channel: str, kind: str, gap_start: int | None, gap_end: int | None
    ) -> None:
        if kind == "gap":
            if channel.startswith(IMPORT_CHANNEL_PREFIX) and gap_start is not None:
                self._import_gap(channel, gap_start, gap_end if gap_end is not None else t)
            elif channel in TRADE_DEPENDENT_CHANNELS and gap_start is not None:
                self._dated_outage(channel, gap_start, gap_end if gap_end is not None else t)
            return
        if kind == "start" and channel == CH_RECORDER:
            # A (re)started recorder: nothing is connected yet, every book must resync.
            for ch in TRADE_DEPENDENT_CHANNELS:
                self._down_since.setdefault(ch, t)
            self._down |= set(TRADE_DEPENDENT_CHANNELS)
            for lv in self._tokens.values():
                lv.reset()
        elif kind in ("disconnect", "connect_failed"):
            if channel in TRADE_DEPENDENT_CHANNELS:
                self._down.add(channel)
                self._down_since.setdefault(channel, t)
            if channel == CH_POLYMARKET_WS:
                for lv in self._tokens.values():
                    lv.reset()
        elif kind == "connect":
            if channel in self._down:
                self._down.discard(channel)
                since = self._down_since.pop(channel, None)
                if since is not None and self.windows:
                    self._outage(channel, since, t)

    def _outage(self, channel: str, a: int, b: int) -> None:
        self.outages.append((channel, a, b))
        self._flag(a, b)

    def _dated_outage(self, channel: str, a: int, b: int) -> None:
        """A ``gap`` row's span: it widens the outage its reconnect just closed (which began
        only at the later disconnect row), or is a new outage; windows it overlaps are
        flagged, even those that ended before the row arrived (flags only, never tradability)."""
        for i in range(len(self.outages) - 1, -1, -1):
            ch, a0, b0 = self.outages[i]
            if ch == channel and a0 <= b and a <= b0:
                self.outages[i] = (ch, min(a, a0), max(b, b0))
                break
        else:
            self.outages.append((channel, a, b))
        self._flag(a, b)

    def _import_gap(self, channel: str, a: int, b: int) -> None:
        """An import's ``gap`` row (an archive hour or day missing, a market it lacks): the
        windows it overlaps are flagged, those known by now and those discovered later, and
        their token books unsync (nothing in the archive re-synchronises them until the
        next snapshot), so none of them is tradable inside the gap."""
        self.outages.append((channel, a, b))
        self._import_gaps.append((a, b))
        for w in self.windows[-64:]:
            if w.start_ns < b and a < w.end_ns:
                w.gap = True
                for tok in (w.up_token, w.down_token):
                    lv = self._tokens.get(tok)
                    if lv is not None:
                        lv.reset()

    def _flag(self, a: int, b: int) -> None:
        for w in self.windows[-64:]:
            if w.start_ns < b and a < w.end_ns:
                w.gap = True

    def _market(self, e: tuple[Any, ...]) -> None:
        (recv, _, cid, asset, slug, up, down, ws, we, tick, min_size, fees_on, rate, expo,
         assumed, twap) = e  # fmt: skip
        known = self._by_cid.get(cid)
        if known is not None and twap is not None:
            # A market first seen without its config (a CLOB new_market frame) learns its
            # TWAP from a later Gamma row.
            known.reference_feed = market_feed(twap)
        if asset not in self.slot_of or known is not None or we - ws != WINDOW_NS:
            return
        w = Window(
            index=len(self.windows),
            asset=asset,
            slot=self.slot_of[asset],
            condition_id=cid,
            slug=slug,
            up_token=up,
            down_token=down,
            start_ns=ws,
            end_ns=we,
            known_ns=recv,
            tick_size=tick,
            min_size=min_size,
            fees_enabled=fees_on,
            fee_rate=rate,
            fee_exponent=expo,
            fee_schedule_assumed=bool(assumed),
            reference_feed=market_feed(twap),
        )
        for ch, since in self._down_since.items():
            if since < we and ch in self._down and self.windows:
                w.gap = True
        if any(a < we and ws < b for a, b in self._import_gaps[-64:]):
            w.gap = True
        self.windows.append(w)
        self._by_cid[cid] = w
        live = self._live[asset]
        live.append(w)
        live.sort(key=lambda x: x.start_ns)
        for tok in (up, down):
            self._tokens.setdefault(tok, TokenBook(tok))

    # -- read ---------------------------------------------------------------------------------

    def channels_up(self) -> bool:
        """No channel a decision depends on is down."""
        return not (self._down & set(TRADE_DEPENDENT_CHANNELS))

    def current(self, asset: str, t: int) -> Window | None:
        """The asset's window open at ``t`` (None between known windows)."""
        live = self._live[asset]
        cur = None
        for w in live:
            if w.start_ns <= t < w.end_ns:
                cur = w
        # Forget windows that ended a while ago (their books are no longer needed).
        while live and live[0].end_ns < t - WINDOW_NS:
            old = live.pop(0)
            for tok in (old.up_token, old.down_token):
                self._tokens.pop(tok, None)
                self._heard_ns.pop(tok, None)
        return cur

    def fresh(self, w: Window, t: int, max_age_ns: int) -> bool:
        """Both of ``w``'s tokens heard from within ``max_age_ns`` of ``t``: the last
        market-channel row for each (``book``, ``price_change``, ``last_trade_price``,
        ``tick_size_change``, ``best_bid_ask``) has ``t - recv_ns <= max_age_ns`` (rows
        applied up to ``t`` only). A token never heard from is not fresh."""
        heard = self._heard_ns
        lo = t - max_age_ns
        return heard.get(w.up_token, lo - 1) >= lo and heard.get(w.down_token, lo - 1) >= lo

    def books(self, w: Window) -> tuple[TokenBook | None, TokenBook | None]:
        """The Up and Down token books of ``w`` (None before any was seen)."""
        return self.token_books(w.up_token, w.down_token)

    def token_books(self, up: str, down: str) -> tuple[TokenBook | None, TokenBook | None]:
        """The books of two tokens by id (None before any was seen)."""
        return self._tokens.get(up), self._tokens.get(down)
