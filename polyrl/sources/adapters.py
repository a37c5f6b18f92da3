"""The set of source adapters one recorder runs for a config."""

from __future__ import annotations

from polyrl.config import Config
from polyrl.recording.recorder import SourceAdapter
from polyrl.sources.binance.ws import BinanceFuturesAdapter, BinanceSpotAdapter
from polyrl.sources.polymarket.ws import PolymarketAdapter, ReferenceAdapter


def default_adapters(config: Config) -> list[SourceAdapter]:
    """Binance spot, Binance USD-M, Polymarket (discovery, CLOB, resolutions) and RTDS."""
    s = config.sources
    return [
        BinanceSpotAdapter(config.assets, s),
        BinanceFuturesAdapter(config.assets, s),
        PolymarketAdapter(config.assets, s),
        ReferenceAdapter(s),
    ]
