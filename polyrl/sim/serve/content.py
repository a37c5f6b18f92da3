"""What the loopback venues serve: the simulator (:class:`SimContent`) or a recording
(:class:`RecordingContent`).

A content source gives the WebSocket frames in receive order (:meth:`frames`, lazily: never
a whole day in memory) and answers the REST endpoints by request at the server's current
time. Both keep the REST answers consistent with the frames the sockets push: the same
token and condition ids, Gamma's best bid/ask, last trade and volume read from the CLOB
books the feed has built (:class:`~polyrl.sim.serve.books.BookStore`), and the same
outcome as the reference feed decides.

**Simulator.** Frames are :meth:`polyrl.sim.frames.Simulation.frames` (its REST frames,
which stand for the polls a recorder would make, are not served; REST is answered from the
simulator's state instead): klines from the price path (bars closed before now), open
interest of the current second, and each window's market listed on Gamma from
``listing_time_ns`` (``SimConfig.listing_lead_s`` ahead, 24 h by default), ``closed`` with
decided ``outcomePrices`` from its ``closedTime``, and the CLOB ``/markets/<condition_id>``
view of the same market (``tokens[].winner`` once closed). Only windows open during the
simulated span exist (others are unknown: ``[]``/404), and klines only within the
simulator's price path (from ``kline_warmup_minutes`` before the start).

**Recording.** Each row's raw text goes back out on the connection its stream implies, once
per distinct raw (several rows parsed from one frame share it; elements of a JSON-array
frame were recorded with their own texts and go out as separate frames). REST rows (klines,
open interest, Gamma, CLOB market) are not pushed: they become the answers of their
endpoints from their receive time on (the latest at or before now wins). ``parse_error``
status rows of WebSocket channels are pushed too (their raw is the bad frame as received).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from polyrl.config import Config
from polyrl.events import (
    CH_BINANCE_FUTURES_OI,
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_KLINES,
    CH_BINANCE_SPOT_WS,
    CH_POLYMARKET_CLOB_BOOK,
    CH_POLYMARKET_CLOB_MARKET,
    CH_POLYMARKET_GAMMA,
    CH_POLYMARKET_WS,
    CH_RTDS_WS,
    NS_PER_MS,
    NS_PER_S,
    WINDOW_NS,
    Event,
    Frame,
    window_start_ns,
)
from polyrl.recording.reader import RecordingReader
from polyrl.sim.binance_rest import kline_rows, open_interest_text
from polyrl.sim.frames import Simulation
from polyrl.sim.polymarket import closed_time_ns, gamma_market, listing_time_ns, market_ids
from polyrl.sim.reference import resolve, settle_e18
from polyrl.sim.serve.books import BookStore
from polyrl.sim.specs import SPECS
from polyrl.sources.jsontext import iter_json_array
from polyrl.sources.polymarket.slug import parse_updown_slug

MINUTE_NS = 60 * NS_PER_S
WS_CHANNELS = frozenset({CH_BINANCE_SPOT_WS, CH_BINANCE_FUTURES_WS, CH_POLYMARKET_WS, CH_RTDS_WS})
REST_CHANNELS = frozenset(
    {
        CH_BINANCE_SPOT_KLINES,
        CH_BINANCE_FUTURES_OI,
        CH_POLYMARKET_GAMMA,
        CH_POLYMARKET_CLOB_MARKET,
        CH_POLYMARKET_CLOB_BOOK,
    }
)


class VenueContent(Protocol):
    """A source of venue frames and REST answers (see the module docstring)."""

    def frames(self) -> Iterator[Frame]:
        """Every frame in nondecreasing ``recv_ns`` (WebSocket and REST channels)."""
        ...

    def observe(self, frame: Frame) -> None:
        """A REST-channel frame has fallen due (its time has come on the server clock)."""
        ...

    def klines(
        self, symbol: str, now_ns: int, *, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[str] | None:
        """1m kline rows (JSON text) closed before ``now_ns``; None for an unknown symbol."""
        ...

    def open_interest(self, symbol: str, now_ns: int) -> str | None:
        """``/fapi/v1/openInterest`` response text; None for an unknown symbol."""
        ...

    def gamma_market(self, slug: str, now_ns: int, books: BookStore) -> dict[str, Any] | None:
        """The Gamma market object of ``slug`` as listed at ``now_ns``; None if not listed."""
        ...

    def clob_market(
        self, condition_id: str, now_ns: int, books: BookStore
    ) -> dict[str, Any] | str | None:
        """CLOB ``/markets/<condition_id>`` (an object, or recorded text); None if unknown."""
        ...


# ---------------------------------------------------------------------------------------------
# Shared REST helpers


def select_bars(
    first_open_ns: int,
    last_open_ns: int,
    *,
    start_ms: int | None,
    end_ms: int | None,
    limit: int,
) -> np.ndarray:
    """Open times of the bars ``GET /api/v3/klines`` returns, oldest first.

    Bars open on minutes in ``[first_open_ns, last_open_ns]``; ``endTime`` keeps bars opening
    at or before it; with ``startTime`` the oldest ``limit`` bars from it, else the newest.
    """
    lo = -(-first_open_ns // MINUTE_NS) * MINUTE_NS
    hi = last_open_ns // MINUTE_NS * MINUTE_NS
    if end_ms is not None:
        hi = min(hi, end_ms * NS_PER_MS // MINUTE_NS * MINUTE_NS)
    if start_ms is not None:
        lo = max(lo, -(-start_ms * NS_PER_MS // MINUTE_NS) * MINUTE_NS)
        hi = min(hi, lo + (limit - 1) * MINUTE_NS)
    else:
        lo = max(lo, hi - (limit - 1) * MINUTE_NS)
    if hi < lo or limit <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.arange(lo, hi + 1, MINUTE_NS, dtype=np.int64)


def clob_market_from_gamma(m: dict[str, Any]) -> dict[str, Any]:
    """The CLOB ``GET /markets/<condition_id>`` object of a Gamma market object.

    ``tokens[]`` pair ``clobTokenIds`` with ``outcomes`` and ``outcomePrices``; once the
    market is closed with decided prices (``1``/``0``) the token priced 1 is the winner.
    """
    outcomes = json.loads(m["outcomes"])
    tokens = json.loads(m["clobTokenIds"])
    prices = [float(p) for p in json.loads(m.get("outcomePrices") or "[]")] or [0.5, 0.5]
    closed = bool(m.get("closed"))
    decided = closed and sorted(prices) == [0.0, 1.0]

    def num(x: float) -> float | int:
        return int(x) if x.is_integer() else x

    return {
        "enable_order_book": bool(m.get("enableOrderBook", True)),
        "active": bool(m.get("active", True)),
        "closed": closed,
        "archived": False,
        "accepting_orders": bool(m.get("acceptingOrders", False)),
        "accepting_order_timestamp": m.get("acceptingOrdersTimestamp"),
        "minimum_order_size": m.get("orderMinSize", 5),
        "minimum_tick_size": m.get("orderPriceMinTickSize", 0.01),
        "condition_id": m["conditionId"],
        "question_id": m.get("questionID", ""),
        "question": m.get("question", ""),
        "description": m.get("description", ""),
        "market_slug": m.get("slug", ""),
        "end_date_iso": m.get("endDate"),
        "game_start_time": m.get("eventStartTime"),
        "seconds_delay": 0,
        "maker_base_fee": m.get("makerBaseFee", 0),
        "taker_base_fee": m.get("takerBaseFee", 0),
        "neg_risk": bool(m.get("negRisk", False)),
        "is_50_50_outcome": False,
        "tokens": [
            {
                "token_id": str(t),
                "outcome": str(o),
                "price": num(p),
                "winner": decided and p == 1.0,
            }
            for t, o, p in zip(tokens, outcomes, prices, strict=True)
        ],
    }


def gamma_event(m: dict[str, Any]) -> dict[str, Any]:
    """The Gamma event wrapping one market (15m up/down events hold exactly one market;
    the event id is the market id here)."""
    return {
        "id": m["id"],
        "ticker": m["slug"],
        "slug": m["slug"],
        "title": m.get("question", ""),
        "description": m.get("description", ""),
        "startDate": m.get("startDate"),
        "creationDate": m.get("createdAt"),
        "endDate": m.get("endDate"),
        "active": m.get("active", True),
        "closed": m.get("closed", False),
        "markets": [m],
    }


# ---------------------------------------------------------------------------------------------
# The simulator


class SimContent:
    """The simulated venues over ``[start_ns, end_ns)`` (see the module docstring).

    ``config`` gives the assets, ``[sim]`` and ``[sources]`` (its URLs are irrelevant; its
    leads and stream choices shape the frames exactly as in ``polyrl simulate``).
    """

    def __init__(
        self,
        config: Config,
        *,
        start_ns: int,
        end_ns: int,
        seed: int,
        assets: Sequence[str] | None = None,
    ) -> None:
        self.config = config
        self.sim = Simulation(
            config.sim,
            config.sources,
            assets=list(assets) if assets is not None else list(config.assets),
            start_ns=start_ns,
            end_ns=end_ns,
            seed=seed,
        )
        self.start_ns, self.end_ns, self.seed = start_ns, end_ns, seed
        self._symbols = {SPECS[a].symbol: a for a in self.sim.assets}
        self._windows: dict[str, tuple[str, int]] = {}
        """condition id -> (asset, window start) of every window served."""
        for ws in range(window_start_ns(start_ns), end_ns, WINDOW_NS):
            for a in self.sim.assets:
                self._windows[market_ids(seed, a, ws).condition_id] = (a, ws)

    def frames(self) -> Iterator[Frame]:
        return self.sim.frames()

    def observe(self, frame: Frame) -> None:
        # The simulator's REST frames are the polls of a simulated recorder; real clients
        # poll the HTTP server, which answers from the simulator's state instead.
        return

    def klines(
        self, symbol: str, now_ns: int, *, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[str] | None:
        asset = self._symbols.get(symbol.upper())
        if asset is None:
            return None
        sk = self.sim.skeleton
        last = min(now_ns, sk.t_end_ns) // MINUTE_NS * MINUTE_NS - MINUTE_NS
        opens = select_bars(sk.t0_ns, last, start_ms=start_ms, end_ms=end_ms, limit=limit)
        return kline_rows(sk, self.sim.cfg, SPECS[asset], self.seed, opens)

    def open_interest(self, symbol: str, now_ns: int) -> str | None:
        asset = self._symbols.get(symbol.upper())
        if asset is None:
            return None
        return open_interest_text(self.sim.skeleton, SPECS[asset], now_ns)

    def _window_of_slug(self, slug: str) -> tuple[str, int] | None:
        parsed = parse_updown_slug(slug)
        if parsed is None or parsed.interval_s != 900 or parsed.asset not in self.sim.assets:
            return None
        ws = parsed.start_ns
        if ws % WINDOW_NS or not window_start_ns(self.start_ns) <= ws < self.end_ns:
            return None
        return parsed.asset, ws

    def gamma_market(self, slug: str, now_ns: int, books: BookStore) -> dict[str, Any] | None:
        found = self._window_of_slug(slug)
        return None if found is None else self._gamma(*found, now_ns, books)

    def _gamma(self, asset: str, ws: int, now_ns: int, books: BookStore) -> dict[str, Any] | None:
        cfg = self.sim.cfg
        if now_ns < listing_time_ns(cfg, self.seed, asset, ws):
            return None
        ids = market_ids(self.seed, asset, ws)
        up = books.book(ids.up_token)
        touch = up.touch() if up is not None else None
        bid_ask = touch if touch is not None else (0.49, 0.51)
        last = float(up.last_trade) if up is not None and up.last_trade else sum(bid_ask) / 2
        tick = float(up.tick) if up is not None else 0.01
        i = SPECS[asset].index
        closed = closed_time_ns(cfg, self.seed, i, ws)
        outcome = None
        if now_ns >= closed:
            sk = self.sim.skeleton
            outcome = resolve(settle_e18(sk, i, ws), settle_e18(sk, i, ws + WINDOW_NS))
        return gamma_market(
            ids,
            cfg,
            self.sim.sources,
            self.seed,
            now_ns=now_ns,
            tick=tick,
            bid_ask=bid_ask,
            last_trade=last,
            volume=books.volume.get(ids.condition_id, 0.0),
            closed_ns=closed if outcome is not None else None,
            outcome=outcome,
        )

    def clob_market(
        self, condition_id: str, now_ns: int, books: BookStore
    ) -> dict[str, Any] | str | None:
        found = self._windows.get(condition_id)
        if found is None:
            return None
        m = self._gamma(*found, now_ns, books)
        return None if m is None else clob_market_from_gamma(m)


# ---------------------------------------------------------------------------------------------
# A recording


_POLY_WS_STREAMS = frozenset(
    {
        "polymarket.price_change",
        "polymarket.trade",
        "polymarket.best_bid_ask",
        "polymarket.tick_size",
    }
)


def channel_of(ev: Event) -> str | None:
    """The channel a recorded row's raw text arrived on (None: not a venue frame)."""
    s = ev.stream
    if s.startswith("binance.spot."):
        if s == "binance.spot.kline" and ev.raw.lstrip()[:1] == "[":
            return CH_BINANCE_SPOT_KLINES
        return CH_BINANCE_SPOT_WS
    if s == "binance.futures.open_interest":
        return CH_BINANCE_FUTURES_OI
    if s.startswith("binance.futures."):
        return CH_BINANCE_FUTURES_WS
    if s in _POLY_WS_STREAMS:
        return CH_POLYMARKET_WS
    if s == "polymarket.book":
        return CH_POLYMARKET_CLOB_BOOK if ev.fields.get("origin") == "rest" else CH_POLYMARKET_WS
    if s == "polymarket.market":
        return CH_POLYMARKET_GAMMA if ev.exch_ns is None else CH_POLYMARKET_WS
    if s == "polymarket.resolution":
        src = ev.fields.get("source")
        return {"gamma": CH_POLYMARKET_GAMMA, "clob": CH_POLYMARKET_CLOB_MARKET}.get(
            str(src), CH_POLYMARKET_WS
        )
    if s == "reference.price":
        return CH_RTDS_WS
    if s == "recorder.status" and ev.fields.get("kind") == "parse_error" and ev.key in WS_CHANNELS:
        return ev.key
    return None


class RecordingContent:
    """A recording's frames served again (see the module docstring).

    ``dates`` selects partitions as :class:`RecordingReader` does. Frames are read one hour
    partition at a time.
    """

    def __init__(self, root: Path | str, *, dates: str | Sequence[str] = "*") -> None:
        self.reader = RecordingReader(
            root, dates=dates, columns=["origin", "source", "kind"], raw=True
        )
        self._klines: dict[str, dict[int, str]] = {}
        self._oi: dict[str, str] = {}
        self._gamma: dict[str, dict[str, Any]] = {}
        self._cid_slug: dict[str, str] = {}
        self._clob: dict[str, str] = {}

    def frames(self) -> Iterator[Frame]:
        last: tuple[int, str, str] | None = None
        for batch in self.reader.batches():
            for ev in batch.events():
                ch = channel_of(ev)
                if ch is None or not ev.raw:
                    continue
                key = (ev.recv_ns, ch, ev.raw)
                if key == last:
                    continue  # another row parsed from the same frame
                last = key
                request = {"symbol": ev.key} if ch in (CH_BINANCE_SPOT_KLINES,) else {}
                yield Frame(channel=ch, recv_ns=ev.recv_ns, text=ev.raw, request=request)

    def observe(self, frame: Frame) -> None:
        ch = frame.channel
        try:
            if ch == CH_BINANCE_SPOT_KLINES:
                bars = self._klines.setdefault(frame.request.get("symbol", "").upper(), {})
                data = json.loads(frame.text)
                # A recorded row keeps only its own bar's text; a whole response is an array.
                rows = (
                    iter_json_array(frame.text)
                    if data and isinstance(data[0], list)
                    else [(data, frame.text)]
                )
                for row, raw in rows:
                    bars[int(row[0])] = raw
            elif ch == CH_BINANCE_FUTURES_OI:
                self._oi[str(json.loads(frame.text)["symbol"]).upper()] = frame.text
            elif ch == CH_POLYMARKET_GAMMA:
                data = json.loads(frame.text)
                for m in _gamma_objects(data):
                    self._gamma[m["slug"]] = m
                    self._cid_slug[m["conditionId"]] = m["slug"]
            elif ch == CH_POLYMARKET_CLOB_MARKET:
                self._clob[str(json.loads(frame.text)["condition_id"])] = frame.text
        except (ValueError, KeyError, TypeError, IndexError):
            return  # a recorded bad response answers nothing

    def klines(
        self, symbol: str, now_ns: int, *, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[str] | None:
        bars = self._klines.get(symbol.upper())
        if bars is None:
            return None
        closed = [t for t in bars if (t + 60_000) * NS_PER_MS <= now_ns]
        if not closed:
            return []
        opens = select_bars(
            min(closed) * NS_PER_MS,
            max(closed) * NS_PER_MS,
            start_ms=start_ms,
            end_ms=end_ms,
            limit=limit,
        )
        return [bars[t] for t in (opens // NS_PER_MS).tolist() if t in bars]

    def open_interest(self, symbol: str, now_ns: int) -> str | None:
        return self._oi.get(symbol.upper())

    def gamma_market(self, slug: str, now_ns: int, books: BookStore) -> dict[str, Any] | None:
        return self._gamma.get(slug)

    def clob_market(
        self, condition_id: str, now_ns: int, books: BookStore
    ) -> dict[str, Any] | str | None:
        if condition_id in self._clob:
            return self._clob[condition_id]
        slug = self._cid_slug.get(condition_id)
        return None if slug is None else clob_market_from_gamma(self._gamma[slug])


def _gamma_objects(data: Any) -> Iterator[dict[str, Any]]:
    for item in data if isinstance(data, list) else [data]:
        if not isinstance(item, dict):
            continue
        if "conditionId" in item and "slug" in item:
            yield item
        elif isinstance(item.get("markets"), list):
            yield from (m for m in item["markets"] if isinstance(m, dict) and "slug" in m)
