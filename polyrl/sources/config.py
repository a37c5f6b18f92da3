"""Venue endpoints, subscriptions and polling schedules (``[sources]`` in configs/*.toml).

Every URL lives here so that tests and ``polyrl simulate --serve`` can point the adapters at
127.0.0.1. Defaults are the venues' public market-data endpoints as documented (see the
README's data sources section).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True, kw_only=True)
class SourcesConfig:
    """Where each source adapter connects and how often it polls."""

    binance_spot_ws: str = "wss://data-stream.binance.vision:443"
    """Spot market-data WebSocket base; combined streams are opened at ``/stream?streams=``."""
    binance_spot_rest: str = "https://data-api.binance.vision"
    """Spot market-data REST base (klines for warm-up)."""
    binance_futures_ws: str = "wss://fstream.binance.com"
    """USD-M WebSocket root; ``/market`` and ``/public`` routes are appended per stream kind."""
    binance_futures_rest: str = "https://fapi.binance.com"
    """USD-M REST base (open interest)."""
    polymarket_clob_ws: str = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
    """CLOB market channel."""
    polymarket_clob_rest: str = "https://clob.polymarket.com"
    """CLOB REST base (book snapshots, market resolution)."""
    polymarket_gamma_rest: str = "https://gamma-api.polymarket.com"
    """Gamma REST base (market discovery and resolution)."""
    polymarket_rtds_ws: str = "wss://ws-live-data.polymarket.com"
    """Real-time data socket (settlement reference prices)."""
    polymarket_polybolt_ws: str = "wss://ws-live-v2.polymarket.com/ws"
    """PolyBolt socket (RTDS's successor: Chainlink 60 s TWAP); opened only when the CLOB API
    credentials are in the environment (POLYRL_CLOB_API_KEY, POLYRL_CLOB_API_SECRET,
    POLYRL_CLOB_API_PASSPHRASE), which are never part of any config."""
    spot_depth_levels: Literal[5, 10, 20] = 5
    """Levels of the spot partial book stream ``<symbol>@depth<N>@100ms``."""
    spot_depth_speed_ms: Literal[100, 1000] = 100
    """Update speed of the spot partial book stream, ms."""
    kline_warmup_minutes: int = 60
    """1m klines fetched per symbol at start (feature warm-up)."""
    open_interest_poll_s: float = 10.0
    """Seconds between open-interest polls per symbol."""
    discovery_lead_s: float = 600.0
    """Fetch each window's market from Gamma this long before the window opens."""
    subscribe_lead_s: float = 60.0
    """Subscribe the next window's tokens on the CLOB this long before it opens."""
    resolution_delay_s: float = 10.0
    """First resolution poll this long after a window closes."""
    resolution_poll_s: float = 30.0
    """Seconds between resolution polls until the outcome is known."""
    reference_feed: Literal["chainlink", "twap60", "twap30", "polybolt"] = "chainlink"
    """The reference feed the simulator publishes and its markets settle on: RTDS Chainlink
    price (markets before 2026-08-07), RTDS Chainlink 60 s / 30 s TWAP (after), or PolyBolt
    (the RTDS successor; not simulated). The recorder subscribes to every RTDS Chainlink topic
    whatever this says, and to PolyBolt's 60 s TWAP as well when the CLOB API credentials are
    in the environment; each market settles on the feed its own config names."""
    ws_ping_s: float = 10.0
    """Polymarket CLOB text PING interval, seconds (RTDS uses 5 s)."""
    watchdog_s: float = 30.0
    """Reconnect a socket that has been silent this long."""
    reconnect_min_s: float = 0.5
    """First reconnect delay; doubles (with jitter) up to reconnect_max_s."""
    reconnect_max_s: float = 30.0
    """Longest reconnect delay."""
    max_connection_age_s: float = 23.5 * 3600
    """Reconnect proactively before Binance's 24-hour cut."""

    def __post_init__(self) -> None:
        for name in (
            "open_interest_poll_s",
            "resolution_poll_s",
            "ws_ping_s",
            "watchdog_s",
            "reconnect_min_s",
            "reconnect_max_s",
            "max_connection_age_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
