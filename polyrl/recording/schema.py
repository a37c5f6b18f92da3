"""One Arrow schema per stream, documented field by field (``polyrl schema [STREAM]``).

Every stream's rows start with the common columns and end with ``raw``:

``recv_ns``  int64   local wall-clock receive time, ns since the epoch (UTC)
``seq``      int64   recorder-wide sequence number, strictly increasing in write order
``exch_ns``  int64?  the venue's own time for the event, ns (which venue field: see stream)
``key``      string  what the row is about: a symbol, token id, condition id or channel
``asset``    string? ``btc``/``eth``/``sol``/``xrp`` when known
``quality``  uint16  bitmask of impossible values found in the row, 0 = clean (the bits:
                     :data:`polyrl.sources.quality.flags.FLAGS`, printed by ``polyrl schema``)
...          typed fields of the stream
``raw``      string  the exact JSON text the row was parsed from

Rows of one stream are totally ordered by ``(recv_ns, seq)``; so is a merge of all streams.
Prices and sizes are float64 in the venue's units (USDT for Binance, USDC probability for
Polymarket tokens); book sides are lists ordered best level first.

A schema may grow: a nullable column added later reads as nulls from older files, and a
column of :data:`ABSENT_VALUES` as its value there (``quality`` reads 0 from files written
before it existed). A column whose type changed, or another non-nullable column missing from
a file, is a :class:`~polyrl.errors.SchemaMismatch` naming the stream and column.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from polyrl.errors import ConfigError
from polyrl.sources.quality.flags import FLAGS
from polyrl.sources.storable import plans_from_arrow

F64 = pa.float64()
I64 = pa.int64()
I32 = pa.int32()
I8 = pa.int8()
U16 = pa.uint16()
STR = pa.string()
BOOL = pa.bool_()
LF64 = pa.list_(pa.float64())


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a stream: name, Arrow type, nullability and its meaning (units!)."""

    name: str
    type: pa.DataType
    doc: str
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """A stream: its dotted id, what produces it, and its columns in storage order."""

    id: str
    doc: str
    key_doc: str
    exch_doc: str
    columns: tuple[Column, ...]

    @property
    def field_names(self) -> tuple[str, ...]:
        """Names of the stream-specific typed fields (without the common columns)."""
        return tuple(c.name for c in self.columns)

    def all_columns(self) -> tuple[Column, ...]:
        """Common columns, typed fields, then ``raw``: the stored column order."""
        head = (
            Column("recv_ns", I64, "local receive time, ns since the epoch (UTC)"),
            Column("seq", I64, "recorder-wide sequence number, strictly increasing"),
            Column("exch_ns", I64, self.exch_doc, nullable=True),
            Column("key", STR, self.key_doc),
            Column("asset", STR, "btc, eth, sol or xrp when known", nullable=True),
            Column("quality", U16, "quality flags: bitmask of impossible values, 0 = clean"),
        )
        tail = (Column("raw", STR, "exact JSON text the row was parsed from"),)
        return head + self.columns + tail

    def arrow_schema(self) -> pa.Schema:
        """The stream's Arrow schema, with each column's doc in its field metadata."""
        return pa.schema(
            [
                pa.field(c.name, c.type, nullable=c.nullable, metadata={"doc": c.doc})
                for c in self.all_columns()
            ],
            metadata={"stream": self.id},
        )


def _trade_columns(futures: bool) -> tuple[Column, ...]:
    cols: tuple[Column, ...] = (
        Column("trade_ns", I64, "trade time `T`, ns"),
        Column("trade_id", I64, "aggregate trade id `a` (or trade id `t` for @trade frames)"),
        Column("price", F64, "price `p`, quote currency (USDT)"),
        Column("qty", F64, "quantity `q`, base currency"),
        Column("first_id", I64, "first trade id `f` (= trade_id for @trade frames)"),
        Column("last_id", I64, "last trade id `l` (= trade_id for @trade frames)"),
        Column("buyer_maker", BOOL, "`m`: buyer was the maker, so the taker sold"),
        Column("side", I8, "taker side: +1 buy, -1 sell (-1 iff buyer_maker)"),
    )
    if futures:
        cols = cols + (
            Column("qty_no_rpi", F64, "`nq`: quantity without RPI orders (2025-12-31+)", True),
        )
    return cols


_BOOK_TICKER = (
    Column("update_id", I64, "order book update id `u`"),
    Column("bid_px", F64, "best bid price `b`"),
    Column("bid_qty", F64, "best bid quantity `B`"),
    Column("ask_px", F64, "best ask price `a`"),
    Column("ask_qty", F64, "best ask quantity `A`"),
    Column("trans_ns", I64, "transaction time `T`, ns (futures only)", True),
)

_DEPTH = (
    Column(
        "update_kind",
        STR,
        "`partial` (depth<N> top-N snapshot), `diff` (depthUpdate deltas, absolute sizes, "
        "0 removes) or `snapshot` (REST depth)",
    ),
    Column("levels", I32, "N of a depth<N> stream; 0 for diffs and full snapshots"),
    Column("first_update_id", I64, "`U`, first update id in a diff", True),
    Column("last_update_id", I64, "`u` of a diff, or `lastUpdateId` of a partial/snapshot"),
    Column("prev_update_id", I64, "`pu`, previous diff's final id (futures)", True),
    Column("trans_ns", I64, "transaction time `T`, ns (futures)", True),
    Column("bid_px", LF64, "bid prices, best (highest) first"),
    Column("bid_qty", LF64, "bid quantities, aligned with bid_px"),
    Column("ask_px", LF64, "ask prices, best (lowest) first"),
    Column("ask_qty", LF64, "ask quantities, aligned with ask_px"),
)

_KLINE = (
    Column("interval", STR, "kline interval, e.g. `1m`"),
    Column("open_ns", I64, "bar open time, ns"),
    Column("close_ns", I64, "bar close time, ns (Binance: open + interval - 1 ms)"),
    Column("open", F64, "open price"),
    Column("high", F64, "high price"),
    Column("low", F64, "low price"),
    Column("close", F64, "close price (last price so far for an open bar)"),
    Column("volume", F64, "base volume"),
    Column("quote_volume", F64, "quote volume"),
    Column("trades", I64, "number of trades"),
    Column("taker_buy_base", F64, "taker-buy base volume (sell volume = volume - this)"),
    Column("taker_buy_quote", F64, "taker-buy quote volume"),
    Column("closed", BOOL, "bar is final (always true for REST rows of past bars)"),
)

_SYMBOL = "Binance symbol, upper case (e.g. BTCUSDT)"
_TOKEN = "Polymarket token (asset) id, decimal string"

STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec(
        "binance.spot.trade",
        "Binance spot `<symbol>@aggTrade` (one taker order at one price); `@trade` frames too.",
        _SYMBOL,
        "event time `E`",
        _trade_columns(futures=False),
    ),
    StreamSpec(
        "binance.spot.depth",
        "Binance spot order book: `<symbol>@depth<N>@100ms` partial books (no event time and "
        "no symbol on the wire: the symbol comes from the combined-stream name and the time "
        "from recv_ns), and `@depth@100ms` diffs where subscribed.",
        _SYMBOL,
        "event time `E` (null for partial books)",
        _DEPTH,
    ),
    StreamSpec(
        "binance.spot.book_ticker",
        "Binance spot `<symbol>@bookTicker` best bid/offer (no event time on the wire).",
        _SYMBOL,
        "null (spot bookTicker carries no time)",
        _BOOK_TICKER,
    ),
    StreamSpec(
        "binance.spot.kline",
        "Binance spot 1m klines: REST `GET /api/v3/klines` at start for warm-up (one row per "
        "bar) and `<symbol>@kline_1m` frames where subscribed.",
        _SYMBOL,
        "event time `E` for WS frames; bar close time for REST rows",
        _KLINE,
    ),
    StreamSpec(
        "binance.futures.trade",
        "Binance USD-M `<symbol>@aggTrade` (same price and side aggregated per 100 ms).",
        _SYMBOL,
        "event time `E`",
        _trade_columns(futures=True),
    ),
    StreamSpec(
        "binance.futures.mark",
        "Binance USD-M `<symbol>@markPrice@1s`: mark, index, funding rate, next funding time.",
        _SYMBOL,
        "event time `E`",
        (
            Column("mark_px", F64, "mark price `p`"),
            Column("index_px", F64, "index price `i`"),
            Column("settle_px", F64, "estimated settle price `P`", True),
            Column("mark_avg_px", F64, "mark price moving average `ap` (2026-03+)", True),
            Column(
                "funding_rate",
                F64,
                "current funding rate `r`, fraction per period (empty `r`, as sent for "
                "delivery contracts, is null)",
                True,
            ),
            Column("next_funding_ns", I64, "next funding time `T`, ns"),
        ),
    ),
    StreamSpec(
        "binance.futures.liquidation",
        "Binance USD-M `<symbol>@forceOrder`: the largest liquidation per symbol per second "
        "(a sample, not a complete tape). SELL = a long was liquidated.",
        _SYMBOL,
        "event time `E`",
        (
            Column("side", STR, "order side `S`: BUY or SELL"),
            Column("order_type", STR, "order type `o` (LIMIT)"),
            Column("time_in_force", STR, "time in force `f` (IOC)"),
            Column("qty", F64, "original quantity `q`"),
            Column("price", F64, "order price `p`"),
            Column("avg_price", F64, "average fill price `ap`"),
            Column("status", STR, "order status `X`"),
            Column("last_filled_qty", F64, "last filled quantity `l`"),
            Column("filled_qty", F64, "accumulated filled quantity `z`"),
            Column("trade_ns", I64, "trade time `T`, ns"),
        ),
    ),
    StreamSpec(
        "binance.futures.open_interest",
        "Binance USD-M REST `GET /fapi/v1/openInterest`, polled on a schedule.",
        _SYMBOL,
        "response `time`",
        (Column("open_interest", F64, "open interest, contracts (base currency)"),),
    ),
    StreamSpec(
        "binance.futures.book_ticker",
        "Binance USD-M `<symbol>@bookTicker` (route `/public`), where subscribed.",
        _SYMBOL,
        "event time `E`",
        _BOOK_TICKER,
    ),
    StreamSpec(
        "binance.futures.depth",
        "Binance USD-M `<symbol>@depth[<N>][@100ms|@0ms]` (route `/public`), where subscribed.",
        _SYMBOL,
        "event time `E`",
        _DEPTH,
    ),
    StreamSpec(
        "binance.futures.kline",
        "Binance USD-M `<symbol>@kline_<i>` (route `/market`), where subscribed.",
        _SYMBOL,
        "event time `E`",
        _KLINE,
    ),
    StreamSpec(
        "polymarket.market",
        "One Up/Down market (15-minute, or 5-minute where seen; one per asset per window) as "
        "read from Gamma or the CLOB `new_market` event: ids, window, tick and size rules, fee "
        "schedule.",
        "condition id (`conditionId`, 0x...)",
        "`new_market` frame timestamp; null for Gamma (its objects carry no response time)",
        (
            Column("slug", STR, "market slug `{asset}-updown-15m-{window_start_s}`"),
            Column("market_id", STR, "Gamma market id"),
            Column("question", STR, "market title"),
            Column("up_token", STR, "token id of outcome Up (matched by position in `outcomes`)"),
            Column("down_token", STR, "token id of outcome Down"),
            Column("window_start_ns", I64, "window start (`eventStartTime`, else from slug)"),
            Column("window_end_ns", I64, "window end (`endDate`)"),
            Column("tick_size", F64, "`orderPriceMinTickSize` when read"),
            Column("min_size", F64, "`orderMinSize`, shares"),
            Column("fees_enabled", BOOL, "`feesEnabled`"),
            Column("fee_rate", F64, "`feeSchedule.rate` (taker fee = rate*C*p*(1-p)^e...)"),
            Column("fee_exponent", F64, "`feeSchedule.exponent`"),
            Column("fee_taker_only", BOOL, "`feeSchedule.takerOnly`"),
            Column("fee_rebate_rate", F64, "`feeSchedule.rebateRate`", True),
            Column(
                "fee_schedule_assumed",
                BOOL,
                "fees enabled but no `feeSchedule`: the fee columns hold the crypto schedule "
                "published for the window's start (null: recorded before this column)",
                True,
            ),
            Column("resolution_source", STR, "`resolutionSource` URL", True),
            Column("twap_seconds", I32, "`cryptoMarketConfig.twapLookbackSeconds`", True),
            Column("active", BOOL, "`active`"),
            Column("closed", BOOL, "`closed`"),
        ),
    ),
    StreamSpec(
        "polymarket.book",
        "Polymarket full book of one token: CLOB WS `book` (on subscribe and after trades) "
        "or REST `GET /book`. Sides sorted best first whatever the wire order.",
        _TOKEN,
        "frame `timestamp` (ms)",
        (
            Column("market", STR, "condition id"),
            Column("origin", STR, "`ws` or `rest`"),
            Column("bid_px", LF64, "bid prices, best (highest) first"),
            Column("bid_size", LF64, "bid sizes, shares"),
            Column("ask_px", LF64, "ask prices, best (lowest) first"),
            Column("ask_size", LF64, "ask sizes, shares"),
            Column("hash", STR, "book hash (opaque)", True),
            Column("tick_size", F64, "`tick_size` where the frame carries it", True),
            Column("last_trade_price", F64, "`last_trade_price` where carried", True),
            Column("min_order_size", F64, "`min_order_size` (REST)", True),
        ),
    ),
    StreamSpec(
        "polymarket.price_change",
        "Polymarket level updates: one row per entry of `price_changes[]` (and per entry of "
        "the legacy `changes[]` and flat forms). `size` is the new aggregate size; 0 removes.",
        _TOKEN,
        "frame `timestamp` (ms)",
        (
            Column("market", STR, "condition id"),
            Column("entry", I32, "index of the entry within its frame"),
            Column("side", STR, "BUY (a bid level) or SELL (an ask level)"),
            Column("price", F64, "level price"),
            Column("size", F64, "new aggregate size at the level, shares (0 = removed)"),
            Column("hash", STR, "entry hash (opaque)", True),
            Column("best_bid", F64, "best bid reported with the entry", True),
            Column("best_ask", F64, "best ask reported with the entry", True),
        ),
    ),
    StreamSpec(
        "polymarket.trade",
        "Polymarket `last_trade_price`: a match between a maker and a taker.",
        _TOKEN,
        "frame `timestamp` (ms)",
        (
            Column("market", STR, "condition id"),
            Column("price", F64, "trade price"),
            Column("size", F64, "trade size, shares"),
            Column("side", STR, "taker side, BUY or SELL"),
            Column("fee_rate_bps", F64, "`fee_rate_bps`", True),
            Column("transaction_hash", STR, "`transaction_hash` where sent", True),
        ),
    ),
    StreamSpec(
        "polymarket.tick_size",
        "Polymarket `tick_size_change` (price beyond 0.96 or 0.04 switches 0.01 <-> 0.001).",
        _TOKEN,
        "frame `timestamp` (ms)",
        (
            Column("market", STR, "condition id"),
            Column("old_tick_size", F64, "tick before"),
            Column("new_tick_size", F64, "tick after"),
        ),
    ),
    StreamSpec(
        "polymarket.best_bid_ask",
        "Polymarket `best_bid_ask` (custom feature): top of book changed.",
        _TOKEN,
        "frame `timestamp` (ms)",
        (
            Column("market", STR, "condition id"),
            Column("best_bid", F64, "best bid", True),
            Column("best_ask", F64, "best ask", True),
            Column("spread", F64, "best_ask - best_bid", True),
        ),
    ),
    StreamSpec(
        "polymarket.resolution",
        "The winning outcome of one window, and where it was read: Gamma (`closed` + "
        "`outcomePrices`), CLOB `tokens[].winner`, or the WS `market_resolved` event.",
        "condition id",
        "resolution time where the source gives one (`closedTime`, WS timestamp)",
        (
            Column("slug", STR, "market slug", True),
            Column("window_start_ns", I64, "window start", True),
            Column("window_end_ns", I64, "window end", True),
            Column("outcome", STR, "`Up`, `Down` or `split`"),
            Column("up_price", F64, "final price of Up (1 won, 0 lost, 0.5 split)", True),
            Column("down_price", F64, "final price of Down", True),
            Column("winning_token", STR, "token id that won", True),
            Column("source", STR, "`gamma`, `clob` or `ws`"),
        ),
    ),
    StreamSpec(
        "reference.price",
        "The settlement reference feed: RTDS `crypto_prices_chainlink` (Chainlink price), "
        "`crypto_prices_twap_sixty`/`_thirty` (Chainlink TWAP) or `crypto_prices` (Binance).",
        "feed symbol as sent (`btc/usd`, `btcusdt`)",
        "feed time `payload.timestamp`",
        (
            Column(
                "topic", STR, "RTDS topic, or PolyBolt channel (price.crypto, price.crypto.twap)"
            ),
            Column("value", F64, "price"),
            Column("full_accuracy", STR, "`full_accuracy_value` as sent", True),
            Column("window_s", I32, "TWAP window, seconds", True),
            Column(
                "server_ns",
                I64,
                "RTDS message `timestamp` (server send time); PolyBolt envelope `ts`",
                True,
            ),
            Column("backfill", BOOL, "row came from the subscribe snapshot's `data[]`"),
        ),
    ),
    StreamSpec(
        "recorder.status",
        "What happened to the recording itself: start, stop, connect, disconnect, gap (with "
        "its start and end), subscribe, control, parse_error (raw = the bad frame), "
        "connect_failed, http_error, alert / recovered (a channel down for alert_after_s, "
        "and back), never_connected (at stop).",
        "channel the status is about (e.g. binance.spot.ws, recorder)",
        "null",
        (
            Column(
                "kind",
                STR,
                "start|stop|connect|disconnect|connect_failed|gap|subscribe|control|parse_error|"
                "http_error|alert|recovered|never_connected|...",
            ),
            Column("stream_id", STR, "affected stream, where one is known", True),
            Column("message", STR, "human-readable detail"),
            Column("gap_start_ns", I64, "first instant not covered (gap rows)", True),
            Column("gap_end_ns", I64, "first instant covered again (gap rows)", True),
        ),
    ),
)

ABSENT_VALUES: dict[str, int] = {"quality": 0}
"""Non-nullable common columns added after recordings existed, and what older files read as."""

STREAM_IDS: tuple[str, ...] = tuple(s.id for s in STREAMS)
_BY_ID = {s.id: s for s in STREAMS}
ARROW_SCHEMAS: dict[str, pa.Schema] = {s.id: s.arrow_schema() for s in STREAMS}


def spec(stream: str) -> StreamSpec:
    """The spec of a stream id; an unknown id is a ConfigError listing the known ones."""
    try:
        return _BY_ID[stream]
    except KeyError:
        raise ConfigError(
            f"unknown stream {stream!r}; streams are: {', '.join(STREAM_IDS)}"
        ) from None


def describe(stream: str) -> str:
    """A plain-text table of one stream's columns (what ``polyrl schema STREAM`` prints)."""
    s = spec(stream)
    lines = [s.id, "  " + s.doc, ""]
    width = max(len(c.name) for c in s.all_columns())
    for c in s.all_columns():
        t = str(c.type) + ("?" if c.nullable else "")
        lines.append(f"  {c.name:<{width}}  {t:<14}  {c.doc}")
    return "\n".join(lines + ["", describe_quality()])


def describe_quality() -> str:
    """The bits of the ``quality`` column, one line each."""
    width = max(len(f.name) for f in FLAGS)
    lines = ["quality bits (a row may carry several; 0 = clean):"]
    for f in FLAGS:
        lines.append(f"  {f.bit}  {f.mask:>4}  {f.name:<{width}}  {f.doc}")
    return "\n".join(lines)


STORAGE_PLANS = plans_from_arrow(ARROW_SCHEMAS)
"""Each stream's column types as the Parser checks them (a frame holding a value its column
cannot store becomes a ``parse_error`` row; see :mod:`polyrl.sources.storable`)."""
