"""Raw frame -> Events: the one dispatcher every recorder, simulator and re-parse goes through.

Each venue module exposes pure functions ``(text, recv_ns, ...) -> list[Event]`` that raise
:class:`~polyrl.errors.ParseError` on a frame they cannot read (and may return
``recorder.status`` ``parse_error`` events for bad *parts* of an otherwise good frame, such
as one bad element of a JSON array). :class:`Parser` dispatches on the frame's channel, keeps
the only state parsing needs (which asset and outcome each Polymarket token belongs to,
learned from ``polymarket.market`` rows) and turns every failure into a ``parse_error``
status event that keeps the raw text and names the channel: parsing never raises. Every
parsed event then gets its ``quality`` flags (:mod:`polyrl.sources.quality`).

The venue parsers, one message family per module (each names the wire formats it reads), by
channel:

- ``binance.{spot,futures}.ws``: :func:`polyrl.sources.binance.parse.parse_ws`, its payload
  kinds in ``binance/trades.py``, ``binance/books.py`` and ``binance/futures.py``;
- ``binance.spot.rest.klines``, ``binance.futures.rest.open_interest``:
  :mod:`polyrl.sources.binance.rest`;
- ``polymarket.clob.ws``: :mod:`polyrl.sources.polymarket.clob_ws`;
- ``polymarket.gamma.rest``: :mod:`polyrl.sources.polymarket.gamma`;
- ``polymarket.clob.rest.{market,book}``: :mod:`polyrl.sources.polymarket.clob_rest`;
- ``polymarket.{rtds,polybolt}.ws``: :mod:`polyrl.sources.polymarket.rtds`;
- ``recorder``: :func:`parse_status_frame` (here).

They import :mod:`polyrl.sources.common` (the token map, the ``parse_error`` row),
:mod:`polyrl.sources.jsontext` and their own package's helpers, never this module: the
dispatcher sits above them, so nothing imports in a circle.

A frame whose events hold a value no column can store (an integer beyond int64, text with a
lone surrogate, a string where a number belongs: see :mod:`polyrl.sources.storable`) also
becomes one ``parse_error`` event naming the stream and field, so one poison frame can never
fail the write of the rows around it. A ``parse_error`` row keeps the frame text exactly; a
text that UTF-8 itself cannot encode is stored as a JSON string literal instead (``json.loads``
of it gives the text back) and the message says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from polyrl.errors import ParseError
from polyrl.events import (
    CH_BINANCE_FUTURES_OI,
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_KLINES,
    CH_BINANCE_SPOT_WS,
    CH_POLYBOLT_WS,
    CH_POLYMARKET_CLOB_BOOK,
    CH_POLYMARKET_CLOB_MARKET,
    CH_POLYMARKET_GAMMA,
    CH_POLYMARKET_WS,
    CH_RECORDER,
    CH_RTDS_WS,
    STATUS_STREAM,
    Event,
    Frame,
    status_event,
)
from polyrl.sources.binance.parse import parse_ws
from polyrl.sources.binance.rest import parse_rest_klines, parse_rest_open_interest
from polyrl.sources.common import TokenMap
from polyrl.sources.polymarket.clob_rest import parse_clob_book, parse_clob_market
from polyrl.sources.polymarket.clob_ws import parse_clob_ws
from polyrl.sources.polymarket.gamma import parse_gamma
from polyrl.sources.polymarket.rtds import parse_rtds
from polyrl.sources.quality.checker import DEFAULT_EXCH_TOLERANCE_S, QualityChecker
from polyrl.sources.storable import StoragePlans, first_unstorable, utf8_problem

_Parse = Callable[[Frame, TokenMap], list[Event]]
"""A channel's parser: (frame, token map) -> its events; raises on a frame it cannot read."""


def _dispatch_table() -> dict[str, _Parse]:
    return {
        CH_BINANCE_SPOT_WS: lambda f, t: parse_ws(f.text, f.recv_ns, venue="spot"),
        CH_BINANCE_FUTURES_WS: lambda f, t: parse_ws(f.text, f.recv_ns, venue="futures"),
        CH_BINANCE_SPOT_KLINES: lambda f, t: parse_rest_klines(
            f.text, f.recv_ns, symbol=_req(f, "symbol")
        ),
        CH_BINANCE_FUTURES_OI: lambda f, t: parse_rest_open_interest(f.text, f.recv_ns),
        CH_POLYMARKET_WS: lambda f, t: parse_clob_ws(f.text, f.recv_ns, tokens=t),
        CH_POLYMARKET_GAMMA: lambda f, t: parse_gamma(f.text, f.recv_ns),
        CH_POLYMARKET_CLOB_MARKET: lambda f, t: parse_clob_market(f.text, f.recv_ns, tokens=t),
        CH_POLYMARKET_CLOB_BOOK: lambda f, t: parse_clob_book(f.text, f.recv_ns, tokens=t),
        CH_RTDS_WS: lambda f, t: parse_rtds(f.text, f.recv_ns),
        CH_POLYBOLT_WS: lambda f, t: parse_rtds(f.text, f.recv_ns, channel=CH_POLYBOLT_WS),
        CH_RECORDER: lambda f, t: [parse_status_frame(f.text, f.recv_ns)],
    }


def _req(frame: Frame, name: str) -> str:
    try:
        return frame.request[name]
    except KeyError:
        raise ParseError(
            f"{frame.channel}: frame has no request {name!r} (needed to key its rows)",
            channel=frame.channel,
            raw=frame.text,
        ) from None


class Parser:
    """Turns frames into events for any channel; never raises on bad input.

    The token map (token id -> asset, outcome) grows from every ``polymarket.market`` event
    parsed, so Polymarket book rows get their ``asset`` filled in as soon as the market has
    been seen; it can also be seeded from an existing recording via :meth:`learn`.

    ``storage``: each stream's column types (the recording passes
    ``polyrl.recording.schema.STORAGE_PLANS``); without it values are checked by their Python
    type alone (integers within int64, text UTF-8 can encode). ``exch_tolerance_s`` bounds
    venue time vs receive time for the ``bad_time`` flag.
    """

    def __init__(
        self,
        *,
        storage: StoragePlans | None = None,
        exch_tolerance_s: float = DEFAULT_EXCH_TOLERANCE_S,
    ) -> None:
        self.tokens: dict[str, tuple[str, str]] = {}
        self._table = _dispatch_table()
        self._storage = storage
        self.quality = QualityChecker(exch_tolerance_s=exch_tolerance_s)

    def learn(self, event: Event) -> None:
        """Remember the tokens of a ``polymarket.market`` event (others are ignored)."""
        if event.stream == "polymarket.market" and event.asset is not None:
            self.tokens[event.fields["up_token"]] = (event.asset, "Up")
            self.tokens[event.fields["down_token"]] = (event.asset, "Down")

    def parse(self, frame: Frame) -> list[Event]:
        """All events in a frame; a frame that cannot be read yields one parse_error event."""
        fn = self._table.get(frame.channel)
        if fn is None:
            return [_error(frame, f"unknown channel {frame.channel!r}")]
        try:
            events = fn(frame, self.tokens)
        except ParseError as e:
            return [_error(frame, str(e))]
        except (
            ValueError,
            KeyError,
            TypeError,
            IndexError,
            AttributeError,
            ArithmeticError,  # int(inf), a float beyond range
            RecursionError,  # JSON nested deeper than the decoder goes
        ) as e:
            # A frame of a known kind with a missing or mistyped field.
            return [_error(frame, f"{type(e).__name__}: {e}")]
        poison = first_unstorable(events, self._storage)
        if poison is not None:
            stream, problem = poison
            return [_error(frame, f"value cannot be stored: {problem}", stream=stream)]
        for ev in events:
            if ev.stream == "polymarket.market":
                self.learn(ev)
        return self.quality.check(frame, events)


def _error(frame: Frame, message: str, stream: str | None = None) -> Event:
    raw = frame.text
    bad_text = utf8_problem(raw)
    if bad_text is not None:
        raw = json.dumps(raw)  # ASCII, and json.loads gives the text back exactly
        message = f"{message[:300]} [raw is the frame text as a JSON string literal: {bad_text}]"
    return status_event(
        "parse_error",
        frame.recv_ns,
        channel=_safe_text(frame.channel),
        stream=stream,
        message=_safe_text(message[:500]),
        raw=raw,
    )


def _safe_text(text: str) -> str:
    """``text`` if UTF-8 can encode it, else with each unencodable char as a ``\\uXXXX`` escape."""
    if utf8_problem(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


_STATUS_KEYS = frozenset({"kind", "channel", "stream_id", "message", "gap_start_ns", "gap_end_ns"})


def status_frame(
    kind: str,
    recv_ns: int,
    *,
    channel: str,
    stream: str | None = None,
    message: str = "",
    gap_start_ns: int | None = None,
    gap_end_ns: int | None = None,
) -> Frame:
    """A recorder status as a frame on the ``recorder`` channel.

    The recorder logs its own status this way, so that status rows go through the same
    write-ahead log and parse as venue frames and are recovered with them after a crash.
    """
    body: dict[str, str | int] = {"kind": kind, "channel": channel, "message": message}
    if stream is not None:
        body["stream_id"] = stream
    if gap_start_ns is not None:
        body["gap_start_ns"] = gap_start_ns
    if gap_end_ns is not None:
        body["gap_end_ns"] = gap_end_ns
    return Frame(channel=CH_RECORDER, recv_ns=recv_ns, text=json.dumps(body, separators=(",", ":")))


def parse_status_frame(text: str, recv_ns: int) -> Event:
    """A ``recorder`` channel frame (see :func:`status_frame`) -> its ``recorder.status`` event."""
    try:
        body = json.loads(text)
    except ValueError as e:
        raise ParseError(f"{STATUS_STREAM}: not JSON: {e}", channel=CH_RECORDER, raw=text) from None
    if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
        raise ParseError(f"{STATUS_STREAM}: missing field 'kind'", channel=CH_RECORDER, raw=text)
    extra = set(body) - _STATUS_KEYS
    if extra:
        raise ParseError(
            f"{STATUS_STREAM}: unknown field(s) {sorted(extra)}", channel=CH_RECORDER, raw=text
        )
    for name in ("gap_start_ns", "gap_end_ns"):
        value = body.get(name)
        if value is not None and type(value) is not int:
            # Our own format writes integers; a float (even -0.0 or 1e18) would be stored changed.
            raise ParseError(
                f"{STATUS_STREAM}: field {name!r} is not an integer: {str(value)[:40]}",
                channel=CH_RECORDER,
                raw=text,
            )
    return status_event(
        body["kind"],
        recv_ns,
        channel=str(body.get("channel", CH_RECORDER)),
        stream=body.get("stream_id"),
        message=str(body.get("message", "")),
        gap_start_ns=body.get("gap_start_ns"),
        gap_end_ns=body.get("gap_end_ns"),
        raw=text,
    )
