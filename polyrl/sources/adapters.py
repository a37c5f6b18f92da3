"""The set of source adapters one recorder runs for a config."""

from __future__ import annotations

from collections.abc import Callable

from polyrl.config import Config
from polyrl.errors import ConfigError
from polyrl.sources.binance.ws import BinanceFuturesAdapter, BinanceSpotAdapter
from polyrl.sources.polymarket.polybolt import ENV_VARS, ClobCredentials, PolyBoltAdapter
from polyrl.sources.polymarket.ws import PolymarketAdapter, ReferenceAdapter
from polyrl.sources.sink import SourceAdapter


def default_adapters(
    config: Config,
    *,
    polybolt: ClobCredentials | None = None,
    on_alert: Callable[[str, str], None] | None = None,
) -> list[SourceAdapter]:
    """Binance spot, Binance USD-M, Polymarket (discovery, CLOB, resolutions) and RTDS, and
    PolyBolt's 60 s TWAP beside RTDS when ``polybolt`` credentials are given (``on_alert``
    hears its refusals)."""
    s = config.sources
    if polybolt is None and s.reference_feed == "polybolt":
        raise ConfigError(
            "sources.reference_feed = 'polybolt' needs the CLOB API credentials in "
            + ", ".join(ENV_VARS)
        )
    adapters: list[SourceAdapter] = [
        BinanceSpotAdapter(config.assets, s),
        BinanceFuturesAdapter(config.assets, s),
        PolymarketAdapter(config.assets, s),
        ReferenceAdapter(s),
    ]
    if polybolt is not None:
        adapters.append(PolyBoltAdapter(config.assets, s, polybolt, on_alert=on_alert))
    return adapters
