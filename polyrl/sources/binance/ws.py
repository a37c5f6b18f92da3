"""Binance source adapters (I/O): spot and USD-M combined streams, REST warm-up and polls.

- Spot: one combined-stream connection ``<spot_ws>/stream?streams=`` carrying, per symbol,
  ``@aggTrade``, ``@depth<N>@100ms`` and ``@bookTicker``. The server pings every 20 s (the
  websockets library pongs); a ``serverShutdown`` event triggers an immediate reconnect.
- USD-M futures: ``<futures_ws>/market/stream?streams=`` for ``@aggTrade``,
  ``@markPrice@1s`` and ``@forceOrder``. These must use the ``/market`` route: since
  2026-04-23 an unrouted or ``/public`` connection receives no market-route data and gives
  no error (the watchdog would catch that silence, but routing it right avoids it).
- REST: ``GET /api/v3/klines`` (1m, ``kline_warmup_minutes`` bars) per symbol at start, and
  ``GET /fapi/v1/openInterest`` per symbol every ``open_interest_poll_s``; 429/418/5xx back
  off (honouring ``Retry-After``) and are written as ``http_error`` status rows.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from polyrl.events import (
    CH_BINANCE_FUTURES_OI,
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_KLINES,
    CH_BINANCE_SPOT_WS,
    Frame,
)
from polyrl.sources.config import SourcesConfig
from polyrl.sources.http import get_with_retry
from polyrl.sources.sink import FrameSink
from polyrl.sources.ws import WsConnection


def symbol_of(asset: str) -> str:
    """``btc`` -> ``BTCUSDT``."""
    return f"{asset.upper()}USDT"


def spot_streams(assets: Sequence[str], cfg: SourcesConfig) -> list[str]:
    """Combined-stream names of the spot connection, lower case as Binance wants them."""
    depth = f"depth{cfg.spot_depth_levels}@{cfg.spot_depth_speed_ms}ms"
    out = []
    for a in assets:
        s = symbol_of(a).lower()
        out += [f"{s}@aggTrade", f"{s}@{depth}", f"{s}@bookTicker"]
    return out


def futures_market_streams(assets: Sequence[str]) -> list[str]:
    """Combined-stream names of the futures ``/market`` connection."""
    out = []
    for a in assets:
        s = symbol_of(a).lower()
        out += [f"{s}@aggTrade", f"{s}@markPrice@1s", f"{s}@forceOrder"]
    return out


class BinanceSpotAdapter:
    """Spot combined stream plus the REST klines warm-up at start."""

    def __init__(self, assets: Sequence[str], cfg: SourcesConfig, *, seed: int = 0) -> None:
        self.name = CH_BINANCE_SPOT_WS
        self.assets = list(assets)
        self.cfg = cfg
        self.seed = seed
        self.conn: WsConnection | None = None

    def url(self) -> str:
        base = self.cfg.binance_spot_ws.rstrip("/")
        return f"{base}/stream?streams={'/'.join(spot_streams(self.assets, self.cfg))}"

    async def run(self, sink: FrameSink) -> None:
        rng = random.Random(self.seed)
        self.conn = WsConnection(
            channel=CH_BINANCE_SPOT_WS,
            url=self.url,
            sink=sink,
            config=self.cfg,
            rng=rng,
            reconnect_on=server_shutdown,
        )
        warmup = asyncio.create_task(self._klines(sink, rng))
        try:
            await self.conn.run()
        finally:
            warmup.cancel()

    async def _klines(self, sink: FrameSink, rng: random.Random) -> None:
        base = self.cfg.binance_spot_rest.rstrip("/")
        for a in self.assets:
            sym = symbol_of(a)
            limit = self.cfg.kline_warmup_minutes
            url = f"{base}/api/v3/klines?symbol={sym}&interval=1m&limit={limit}"
            resp = await get_with_retry(url, sink, CH_BINANCE_SPOT_KLINES, self.cfg, rng, tries=6)
            if resp is not None:
                sink.emit(
                    Frame(
                        channel=CH_BINANCE_SPOT_KLINES,
                        recv_ns=sink.clock.now_ns(),
                        text=resp.text,
                        request={"symbol": sym},
                    )
                )


def server_shutdown(text: str) -> bool:
    """Binance warns of a shutdown with a ``serverShutdown`` event: reconnect at once."""
    return '"serverShutdown"' in text[:200]


class BinanceFuturesAdapter:
    """USD-M ``/market`` combined stream plus the open-interest poller."""

    def __init__(self, assets: Sequence[str], cfg: SourcesConfig, *, seed: int = 1) -> None:
        self.name = CH_BINANCE_FUTURES_WS
        self.assets = list(assets)
        self.cfg = cfg
        self.seed = seed
        self.conn: WsConnection | None = None

    def url(self) -> str:
        root = self.cfg.binance_futures_ws.rstrip("/")
        return f"{root}/market/stream?streams={'/'.join(futures_market_streams(self.assets))}"

    async def run(self, sink: FrameSink) -> None:
        rng = random.Random(self.seed)
        self.conn = WsConnection(
            channel=CH_BINANCE_FUTURES_WS,
            url=self.url,
            sink=sink,
            config=self.cfg,
            rng=rng,
            reconnect_on=server_shutdown,
        )
        poller = asyncio.create_task(self._open_interest(sink, rng))
        try:
            await self.conn.run()
        finally:
            poller.cancel()

    async def _open_interest(self, sink: FrameSink, rng: random.Random) -> None:
        base = self.cfg.binance_futures_rest.rstrip("/")
        while True:
            for a in self.assets:
                sym = symbol_of(a)
                url = f"{base}/fapi/v1/openInterest?symbol={sym}"
                resp = await get_with_retry(
                    url, sink, CH_BINANCE_FUTURES_OI, self.cfg, rng, tries=1
                )
                if resp is not None:
                    sink.emit(
                        Frame(
                            channel=CH_BINANCE_FUTURES_OI,
                            recv_ns=sink.clock.now_ns(),
                            text=resp.text,
                            request={"symbol": sym},
                        )
                    )
            await sink.clock.sleep(self.cfg.open_interest_poll_s)
