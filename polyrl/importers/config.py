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

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        for name in ("backoff_s", "timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
