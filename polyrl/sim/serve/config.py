"""How the loopback venues behave (:class:`ServeConfig`) and the test credentials PolyBolt
accepts. Below every venue server in :mod:`polyrl.sim.serve`: the servers, the venue
protocols and the content all read it; it imports nothing of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

TEST_API_KEY = "loopback-test-key"
TEST_SECRET = "loopback-test-secret"
TEST_PASSPHRASE = "loopback-test-passphrase"
"""The CLOB API credentials the loopback PolyBolt accepts by default (test values)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeConfig:
    """How the loopback venues behave. Durations are venue seconds unless named ``_real_``."""

    host: str = "127.0.0.1"
    """Address every server binds (loopback only)."""
    base_port: int = 0
    """First port (spot WS); the others follow in order. 0: each server an ephemeral port."""
    spot_ping_s: float = 20.0
    """Binance spot server ping interval (FACTS §1.2)."""
    spot_pong_timeout_s: float = 60.0
    """Binance spot: a connection with no pong for this long is cut."""
    futures_ping_s: float = 180.0
    """Binance USD-M server ping interval (FACTS §2.1)."""
    futures_pong_timeout_s: float = 600.0
    """Binance USD-M: a connection with no pong for this long is cut."""
    max_connection_age_s: float = 86_400.0
    """Binance closes every connection at this age (24 h)."""
    clob_idle_s: float | None = 60.0
    """CLOB channel: close a client silent this long (None: never)."""
    rtds_idle_s: float | None = 60.0
    """RTDS: close a client silent this long (None: never)."""
    min_timeout_real_s: float = 1.0
    """No timeout (pong, idle) is shorter than this in real seconds, whatever the speed."""
    rtds_backfill: int = 10
    """Ticks per topic/symbol in the backfill message sent on RTDS subscribe (0: none)."""
    polybolt_ping_s: float = 25.0
    """PolyBolt server ping interval; two missed pongs cut the connection."""
    polybolt_api_key: str = TEST_API_KEY
    """The CLOB API key the loopback PolyBolt accepts (a test value, not a real key)."""
    polybolt_secret: str = TEST_SECRET
    """The CLOB API secret the loopback PolyBolt accepts."""
    polybolt_passphrase: str = TEST_PASSPHRASE
    """The CLOB API passphrase the loopback PolyBolt accepts."""
    max_queue_frames: int = 200_000
    """A client this many frames behind is cut as a slow consumer."""
    log_frames: bool = True
    """Keep every sent frame and REST body in the logs (turn off for long runs)."""
    book_retention_s: float = 7_200.0
    """Forget a token's book this long after its last update (its market is long over)."""
    fault_seed: int = 0
    """Seed of the malformed-frame corruption."""
    sync_timeout_real_s: float = 10.0
    """Longest real wait for the content source to catch up before a snapshot/REST answer."""

    def __post_init__(self) -> None:
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"venue servers bind loopback only, not {self.host!r}")
        if not 0 <= self.base_port <= 65_530:
            raise ValueError("base_port must be within [0, 65530]")
        for name in ("spot_ping_s", "spot_pong_timeout_s", "futures_ping_s", "polybolt_ping_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.max_queue_frames < 1:
            raise ValueError("max_queue_frames must be >= 1")
