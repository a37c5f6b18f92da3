"""Static facts about the simulated instruments: symbols, names, tick and lot sizes.

Spot prices and quantities are written with 8 decimals as Binance spot does; futures use
each contract's own precision. Ticks and steps here are integers in units of the written
precision (``10**-decimals``) so that all price arithmetic is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from polyrl.events import ASSETS

SPOT_DECIMALS = 8
"""Binance spot writes every price and quantity with 8 decimals."""


@dataclass(frozen=True, slots=True)
class AssetSpec:
    """One asset's instruments. Integer ticks/steps are in units of 10**-decimals."""

    asset: str
    """``btc``, ``eth``, ``sol`` or ``xrp``."""
    index: int
    """Position in :data:`polyrl.events.ASSETS`."""
    name: str
    """Name in Polymarket titles (``Bitcoin``)."""
    spot_tick: int
    """Spot price tick, 1e-8 units."""
    spot_step: int
    """Spot quantity step, 1e-8 units."""
    fut_px_decimals: int
    """Decimals of futures prices on the wire."""
    fut_tick: int
    """Futures price tick, in 10**-fut_px_decimals units."""
    fut_qty_decimals: int
    """Decimals of futures quantities (the step is one unit of them)."""
    trade_id0: int
    """First spot aggregate-trade id (futures ids start at 3x this)."""
    update_id0: int
    """Offset of spot book update ids."""

    @property
    def symbol(self) -> str:
        """Binance symbol, upper case (``BTCUSDT``)."""
        return f"{self.asset.upper()}USDT"

    @property
    def stream_symbol(self) -> str:
        """Binance stream-name symbol, lower case (``btcusdt``)."""
        return f"{self.asset}usdt"

    @property
    def reference_symbol(self) -> str:
        """RTDS Chainlink symbol (``btc/usd``)."""
        return f"{self.asset}/usd"


SPECS: dict[str, AssetSpec] = {
    "btc": AssetSpec("btc", 0, "Bitcoin", 1_000_000, 1_000, 2, 10, 3, 3_000_000_000, 10**10),
    "eth": AssetSpec("eth", 1, "Ethereum", 1_000_000, 10_000, 2, 1, 3, 1_500_000_000, 2 * 10**10),
    "sol": AssetSpec("sol", 2, "Solana", 1_000_000, 100_000, 4, 100, 0, 800_000_000, 3 * 10**10),
    "xrp": AssetSpec("xrp", 3, "XRP", 10_000, 10_000_000, 4, 1, 1, 600_000_000, 4 * 10**10),
}
assert tuple(SPECS) == ASSETS
