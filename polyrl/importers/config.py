"""``[importer]``: where the public archives are and how they are read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportConfig:
    """Archive locations and read settings for ``polyrl import`` (``[importer]``)."""

    pmxt_archive: str = "https://r2v2.pmxt.dev"
    """PMXT v2 archive of Polymarket CLOB events: an HTTPS base or a folder of hour files."""
    binance_archive: str = "https://data.binance.vision"
    """Binance's public data archive: an HTTPS base or a folder laid out like it (``data/...``)."""
    retries: int = 6
    """HTTP retries of one request (429, 5xx, a dropped connection) before the import stops."""
    backoff_s: float = 0.5
    """First retry's wait, doubled each retry (at least the server's ``Retry-After``)."""
    timeout_s: float = 60.0
    """Seconds to wait on one HTTP request before it counts as failed."""
    binance_spot_delay_ms: float = 20.0
    """Receive delay given to imported Binance spot rows: ``recv_ns`` = venue time + this
    (a bar's venue time is its close). 20 ms = a 15 ms median one-way latency (the
    simulator's ``binance_latency_ms``) + 4 ms, the median spread of receive - event time
    above its minimum in recorded spot and USD-M WebSocket captures (their clock was skewed by
    1.27 s, so the absolute latency is not measurable from them), rounded up."""
    binance_futures_delay_ms: float = 20.0
    """Receive delay given to imported Binance USD-M rows (trades, mark, open interest); same
    basis as ``binance_spot_delay_ms``."""

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        for name in ("backoff_s", "timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("binance_spot_delay_ms", "binance_futures_delay_ms"):
            if not 0 <= getattr(self, name) <= 60_000:
                raise ValueError(f"{name} must be in [0, 60000]")
