"""Reference-price frames from RTDS and PolyBolt -> ``reference.price`` Events (pure).

Reads two sockets (Polymarket FACTS §4):

- RTDS, ``wss://ws-live-data.polymarket.com``: ``{topic, type, timestamp, payload}`` for the
  topics ``crypto_prices_chainlink``, ``crypto_prices`` (Binance) and the Chainlink TWAPs
  ``crypto_prices_twap_sixty``/``_thirty``; ``type: "update"`` is one price,
  ``type: "subscribe"`` carries a backfill in ``payload.data[]``;
- PolyBolt, ``wss://ws-live-v2.polymarket.com/ws``: ``{v, channel, seq, ts, snapshot?,
  dropped?, payload}`` for the channels ``price.crypto`` (Pyth) and ``price.crypto.twap``; a
  snapshot's ``payload.data[]`` is a backfill, ``dropped > 0`` says the server skipped frames
  (a ``gap`` status row), and acknowledgements ``{"op": ...}`` are ``control`` status rows.

Times are JSON integers of ms; ``key`` is the symbol as sent; ``raw`` is the whole frame.
Which settlement feed a row is: :mod:`polyrl.sources.polymarket.reference`.
"""

from __future__ import annotations

from typing import Any

from polyrl.errors import ParseError
from polyrl.events import CH_RTDS_WS, Event, asset_of_symbol, status_event
from polyrl.sources.polymarket.fields import (
    HEARTBEATS,
    as_object,
    load_json,
    req_num,
    req_str,
    req_time,
    require,
)

__all__ = ["parse_rtds"]

# RTDS topics we read, with the TWAP window each implies when a frame omits ``window_s``.
_RTDS_TOPICS: dict[str, int | None] = {
    "crypto_prices_chainlink": None,
    "crypto_prices": None,
    "crypto_prices_twap_sixty": 60,
    "crypto_prices_twap_thirty": 30,
}

_POLYBOLT_CHANNELS = frozenset({"price.crypto", "price.crypto.twap"})


def parse_rtds(text: str, recv_ns: int, *, channel: str = CH_RTDS_WS) -> list[Event]:
    """A reference-price frame -> ``reference.price`` rows (key = symbol as sent).

    RTDS: ``{topic, type, timestamp, payload}``; ``type: "update"`` -> one row
    (``exch_ns`` = ``payload.timestamp``, ``server_ns`` = top-level ``timestamp``);
    ``type: "subscribe"`` with ``payload.data[]`` -> one backfill row per item.
    PolyBolt: ``{v, channel, seq, ts, snapshot?, dropped?, payload}`` for channels
    ``price.crypto`` and ``price.crypto.twap`` (topic = channel, ``server_ns`` = ``ts``); a
    snapshot's ``payload.data[]`` gives backfill rows; ``dropped > 0`` adds a ``gap`` status
    event before the row; acknowledgements (``{"op": ...}``) give a ``control`` status event
    (``pong`` gives nothing). Text ``PONG``/``PING`` -> ``[]``. Status events name
    ``channel``: the socket the frame came on (RTDS, or PolyBolt's own channel).
    """
    if text in HEARTBEATS or text.strip() in HEARTBEATS:
        return []
    o = load_json(text, "rtds", CH_RTDS_WS)
    if not isinstance(o, dict):
        raise ParseError(
            f"rtds: frame must be an object, got {type(o).__name__}", channel=CH_RTDS_WS, raw=text
        )
    if "topic" in o:
        return _rtds(o, text, recv_ns)
    if "op" in o:  # acknowledgements may name a channel too, so test for them first
        return _polybolt_op(o, text, recv_ns, channel)
    if "channel" in o:
        return _polybolt(o, text, recv_ns, channel)
    raise ParseError("rtds: frame has no 'topic' (RTDS), 'channel' or 'op' (PolyBolt)")


def _full_accuracy(o: dict[str, Any], ctx: str) -> str | None:
    v = o.get("full_accuracy_value")
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)  # an integer is exact either way
    raise ParseError(f"{ctx}: field 'full_accuracy_value' must be a string, got {v!r}")


def _window(v: Any, name: str, ctx: str) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ParseError(f"{ctx}: field {name!r} must be an integer, got {v!r}")
    return v


def _price_row(
    *,
    recv_ns: int,
    exch_ns: int,
    symbol: str,
    topic: str,
    value: float,
    full: str | None,
    window_s: int | None,
    server_ns: int | None,
    backfill: bool,
    raw: str,
) -> Event:
    return Event(
        stream="reference.price",
        recv_ns=recv_ns,
        exch_ns=exch_ns,
        key=symbol,
        asset=asset_of_symbol(symbol),
        fields={
            "topic": topic,
            "value": value,
            "full_accuracy": full,
            "window_s": window_s,
            "server_ns": server_ns,
            "backfill": backfill,
        },
        raw=raw,
    )


def _rtds(o: dict[str, Any], raw: str, recv_ns: int) -> list[Event]:
    topic = req_str(o, "topic", "rtds")
    if topic not in _RTDS_TOPICS:
        raise ParseError(f"rtds: unknown topic {topic[:60]!r}")
    ctx = f"rtds {topic}"
    kind = req_str(o, "type", ctx)
    payload = as_object(require(o, "payload", ctx), f"{ctx} payload")
    pctx = f"{ctx} payload"
    server_ns = req_time(o, "timestamp", ctx) if o.get("timestamp") is not None else None
    window_s = _window(payload.get("window_s"), "window_s", pctx)
    if window_s is None:
        window_s = _RTDS_TOPICS[topic]
    symbol = req_str(payload, "symbol", pctx)
    if kind == "update":
        return [
            _price_row(
                recv_ns=recv_ns,
                exch_ns=req_time(payload, "timestamp", pctx),
                symbol=symbol,
                topic=topic,
                value=req_num(payload, "value", pctx),
                full=_full_accuracy(payload, pctx),
                window_s=window_s,
                server_ns=server_ns,
                backfill=False,
                raw=raw,
            )
        ]
    if kind == "subscribe":
        return _backfill(payload, pctx, recv_ns, symbol, topic, window_s, server_ns, raw)
    raise ParseError(f"{ctx}: unknown type {kind[:40]!r}")


def _backfill(
    payload: dict[str, Any],
    pctx: str,
    recv_ns: int,
    symbol: str,
    topic: str,
    window_s: int | None,
    server_ns: int | None,
    raw: str,
) -> list[Event]:
    data = require(payload, "data", pctx)
    if not isinstance(data, list):
        raise ParseError(f"{pctx}: field 'data' must be a list")
    out = []
    for i, item in enumerate(data):
        ictx = f"{pctx} data[{i}]"
        item = as_object(item, ictx)
        out.append(
            _price_row(
                recv_ns=recv_ns,
                exch_ns=req_time(item, "timestamp", ictx),
                symbol=symbol,
                topic=topic,
                value=req_num(item, "value", ictx),
                full=_full_accuracy(item, ictx),
                window_s=window_s,
                server_ns=server_ns,
                backfill=True,
                raw=raw,
            )
        )
    return out


def _polybolt(o: dict[str, Any], raw: str, recv_ns: int, sock: str) -> list[Event]:
    channel = req_str(o, "channel", "polybolt")
    if channel not in _POLYBOLT_CHANNELS:
        raise ParseError(f"polybolt: unknown channel {channel[:60]!r}")
    ctx = f"polybolt {channel}"
    server_ns = req_time(o, "ts", ctx)
    pctx = f"{ctx} payload"
    payload = as_object(require(o, "payload", ctx), pctx)
    symbol = req_str(payload, "symbol", pctx)
    window_s = _window(payload.get("window_seconds"), "window_seconds", pctx)
    out: list[Event] = []
    snapshot = o.get("snapshot", False) is True
    if snapshot:
        rows = _backfill(payload, pctx, recv_ns, symbol, channel, window_s, server_ns, raw)
    else:
        rows = [
            _price_row(
                recv_ns=recv_ns,
                exch_ns=req_time(payload, "timestamp", pctx),
                symbol=symbol,
                topic=channel,
                value=req_num(payload, "value", pctx),
                full=_full_accuracy(payload, pctx),
                window_s=window_s,
                server_ns=server_ns,
                backfill=False,
                raw=raw,
            )
        ]
    dropped = o.get("dropped")
    if dropped is not None:
        if isinstance(dropped, bool) or not isinstance(dropped, int) or dropped < 0:
            raise ParseError(f"{ctx}: field 'dropped' must be a count, got {dropped!r}")
        if dropped:
            # The server skipped frames for this slow consumer: the series has a hole that
            # ends at this frame's point; when it started is not said.
            out.append(
                status_event(
                    "gap",
                    recv_ns,
                    channel=sock,
                    stream="reference.price",
                    message=f"{channel} {symbol}: server dropped {dropped} frames "
                    f"before seq {o.get('seq')}",
                    gap_end_ns=rows[0].exch_ns if rows else server_ns,
                    raw=raw,
                )
            )
    out.extend(rows)
    return out


def _polybolt_op(o: dict[str, Any], raw: str, recv_ns: int, sock: str) -> list[Event]:
    op = o["op"]
    if op == "pong":
        return []
    if not isinstance(op, str):
        raise ParseError(f"polybolt: field 'op' must be a string, got {op!r}")
    detail = " ".join(
        f"{k}={o[k]}" for k in ("channel", "code", "message", "rid") if o.get(k) is not None
    )
    return [
        status_event(
            "control",
            recv_ns,
            channel=sock,
            stream="reference.price",
            message=f"polybolt {op}" + (f": {detail}" if detail else ""),
            raw=raw,
        )
    ]
