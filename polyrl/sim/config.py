"""Parameters of the synthetic markets (``[sim]`` in configs/*.toml).

Per-asset parameters are tuples in the canonical asset order btc, eth, sol, xrp
(:data:`polyrl.events.ASSETS`); every asset is always simulated internally, so a subset run
sees exactly the same prices and frames for its assets as a run of all four.

Rates are per second (or per hour where the name says so) in the *calm* regime; the volatile
regime multiplies them. "Standardised" moves are log returns divided by the asset's current
diffusive volatility over the same horizon.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from polyrl.events import ASSETS


@dataclass(frozen=True, slots=True, kw_only=True)
class SimConfig:
    """Every knob of the simulator, with its unit. Defaults give realistic 2024-26 markets."""

    # --- price skeleton -------------------------------------------------------------------
    initial_price: tuple[float, ...] = (65_000.0, 3_500.0, 150.0, 0.6)
    """Spot price of btc, eth, sol, xrp where the path starts, USDT."""
    annual_vol: tuple[float, ...] = (0.45, 0.60, 0.85, 0.75)
    """Calm-regime volatility of each asset's log price, per sqrt(365-day year)."""
    common_loading: tuple[float, ...] = (0.9, 0.85, 0.75, 0.7)
    """Correlation of each asset's diffusive return with the common factor, 0..1."""
    volatile_vol_mult: float = 2.5
    """Volatility multiplier of the volatile regime (calm = 1)."""
    calm_mean_s: float = 5_400.0
    """Mean time spent in the calm regime before switching, seconds (exponential)."""
    volatile_mean_s: float = 1_200.0
    """Mean time spent in the volatile regime before switching, seconds (exponential)."""
    jumps_per_hour: float = 0.3
    """Jumps per asset per hour in the calm regime (a share of them hit all assets at once)."""
    volatile_jump_mult: float = 4.0
    """Jump-intensity multiplier of the volatile regime."""
    jump_sd: float = 0.002
    """Standard deviation of one jump of btc's log price (scaled by each asset's vol ratio)."""
    common_jump_share: float = 0.5
    """Fraction of jumps that are market-wide (all assets jump together), 0..1."""

    # --- futures ------------------------------------------------------------------------
    basis_mean: float = 2e-4
    """Mean futures basis: futures = spot * (1 + basis), fraction."""
    basis_sd: float = 2e-4
    """Stationary standard deviation of the basis (Ornstein-Uhlenbeck), fraction."""
    basis_tau_s: float = 3_600.0
    """Mean-reversion time of the basis, seconds."""
    futures_noise: float = 1e-5
    """Per-100-ms noise of the futures price around spot * (1 + basis), relative sd."""
    funding_mean: float = 1e-4
    """Mean funding rate, fraction per 8-hour period."""
    funding_sd: float = 5e-5
    """Stationary standard deviation of the funding rate, fraction per period."""
    funding_tau_s: float = 14_400.0
    """Mean-reversion time of the funding rate, seconds."""
    open_interest: tuple[float, ...] = (80_000.0, 2_000_000.0, 10_000_000.0, 600_000_000.0)
    """Typical futures open interest per asset, contracts (base currency)."""
    open_interest_sd: float = 0.03
    """Stationary standard deviation of log open interest."""
    open_interest_tau_s: float = 21_600.0
    """Mean-reversion time of log open interest, seconds."""

    # --- Binance activity ------------------------------------------------------------------
    spot_trade_rate: tuple[float, ...] = (12.0, 9.0, 6.0, 4.0)
    """Spot aggTrades per second per asset (calm, before bursts)."""
    futures_trade_rate: tuple[float, ...] = (20.0, 15.0, 9.0, 6.0)
    """Futures aggTrades per second per asset (calm, before bursts)."""
    book_ticker_rate: tuple[float, ...] = (35.0, 28.0, 14.0, 9.0)
    """Spot bookTicker updates per second per asset (calm, before bursts)."""
    volatile_activity_mult: float = 2.0
    """Multiplier of every message rate (Binance and Polymarket) in the volatile regime."""
    burst_sd: float = 0.7
    """Stationary sd of the log activity factor (clusters trades in bursts)."""
    burst_tau_s: float = 20.0
    """Mean-reversion time of the log activity factor, seconds."""
    move_activity: float = 0.5
    """Extra activity per unit of |standardised 100 ms move| (trading clusters with moves)."""
    spot_trade_usd: tuple[float, ...] = (150.0, 120.0, 80.0, 60.0)
    """Median spot aggTrade notional per asset, USDT."""
    futures_size_mult: float = 3.0
    """Futures aggTrade notional relative to spot."""
    trade_size_sigma: float = 1.2
    """Log-sd of the lognormal body of trade sizes."""
    trade_size_tail_alpha: float = 1.4
    """Pareto tail index of the large trades (smaller = heavier tail); > 1."""
    trade_size_tail_prob: float = 0.05
    """Fraction of trades drawn from the Pareto tail, 0..1."""
    taker_informed: float = 0.8
    """Logistic slope of P(taker buys) on the standardised next-second move (0 = random)."""
    level_usd: tuple[float, ...] = (40_000.0, 30_000.0, 15_000.0, 10_000.0)
    """Median notional of one spot book level per asset, USDT."""
    wide_spread_prob: float = 0.03
    """Probability that a spot quote is two ticks wide instead of one (x3 when volatile)."""
    liquidations_per_hour: float = 8.0
    """forceOrder frames per asset per hour in the calm regime (at most one per second)."""
    volatile_liquidation_mult: float = 4.0
    """Liquidation-rate multiplier of the volatile regime."""
    liquidation_usd: float = 5_000.0
    """Median liquidation order notional, USDT (lognormal, log-sd 1.2)."""

    # --- settlement reference (RTDS) --------------------------------------------------------
    reference_lag_s: float = 0.5
    """The reference price follows spot with this lag, seconds."""
    reference_noise: float = 2e-5
    """Relative sd of the reference price around lagged spot."""
    reference_stale_prob: float = 0.05
    """Probability that a reference tick repeats the previous value (publisher stall)."""
    reference_drop_prob: float = 0.02
    """Probability that a reference tick is not published (never at window boundaries)."""
    reference_publish_s: float = 1.3
    """Median delay from a reference tick's time to the RTDS send time, seconds."""

    # --- Polymarket books --------------------------------------------------------------------
    book_lag_s: float = 0.0
    """The Up book follows the fair probability this many seconds late: an edge planted on
    purpose (0 = none; a lag is an explicit option)."""
    book_noise: float = 0.004
    """Stationary sd of the book mid's noise around the lagged fair value, probability."""
    book_noise_tau_s: float = 10.0
    """Mean-reversion time of the book mid noise, seconds."""
    fair_vol_halflife_s: float = 300.0
    """Half-life of the EWMA of squared 1 s reference returns behind the fair-value sigma."""
    book_wide_prob: float = 0.3
    """Probability that the Polymarket spread is two cents rather than one (half-cents on the
    0.001 tick)."""
    book_end_wide_prob: float = 0.4
    """In a window's last minute: probability that the spread is 2-8 cents instead."""
    book_levels: int = 8
    """Price levels kept per side of a Polymarket book near the touch."""
    book_level_size: float = 580.0
    """Median size of a Polymarket book level, shares."""
    book_level_sigma: float = 0.8
    """Log-sd of Polymarket level sizes."""
    book_end_depth: float = 0.15
    """Level sizes at a window's end relative to earlier, 0..1 (books thin towards expiry)."""
    book_thin_s: float = 300.0
    """Level sizes shrink linearly to ``book_end_depth`` over this many seconds before the
    end."""
    book_quote_rate: float = 2.0
    """Quote events (order placements, cancels, resizes) per second per market (calm)."""
    book_trade_rate: float = 1.9
    """Mean taker trades per second per market over a window (calm); rises from half that at
    the window's start to 1.5 times it at the end (0.3 times it before the window opens)."""
    book_fills_per_trade: float = 3.0
    """Mean ``last_trade_price`` frames per taker trade (makers filled), >= 1 (geometric)."""
    book_trade_size: float = 20.0
    """Median Polymarket taker trade size, shares (Pareto tail, index 1.5)."""
    book_informed: float = 1.0
    """Logistic slope of P(taker buys Up) on (fair - mid) in cents (0 = random)."""
    array_frame_prob: float = 0.05
    """Probability that the frames of one book event are sent as one JSON-array frame."""
    trade_fee_rate_bps: int = 0
    """``fee_rate_bps`` carried by last_trade_price frames."""
    fees_enabled: bool = True
    """Gamma ``feesEnabled``."""
    fee_rate: float = 0.07
    """Gamma ``feeSchedule.rate``: the taker fee rate of these markets."""
    fee_exponent: float = 1.0
    """Gamma ``feeSchedule.exponent``."""
    fee_taker_only: bool = True
    """Gamma ``feeSchedule.takerOnly``."""
    fee_rebate_rate: float = 0.2
    """Gamma ``feeSchedule.rebateRate``."""
    close_delay_min_s: float = 15.0
    """Shortest delay from a window's end to its Gamma ``closedTime``, seconds."""
    close_delay_max_s: float = 60.0
    """Longest delay from a window's end to its Gamma ``closedTime``, seconds."""
    listing_lead_s: float = 86_400.0
    """Markets are listed (Gamma ``createdAt``) this long before their window, seconds."""

    # --- latency (venue time -> receive time) ------------------------------------------------
    binance_latency_ms: float = 15.0
    """Median one-way latency of the Binance WebSockets, ms."""
    polymarket_latency_ms: float = 40.0
    """Median one-way latency of the Polymarket CLOB WebSocket, ms."""
    rtds_latency_ms: float = 290.0
    """Median latency from RTDS send time to receive, ms."""
    rest_latency_ms: float = 120.0
    """Median REST round trip (request to response received), ms."""
    latency_jitter: float = 0.3
    """Stationary log-sd of the slowly varying latency of each connection."""
    latency_spikes_per_hour: float = 2.0
    """Latency spikes per connection per hour (frames bunch up, then catch up)."""
    latency_spike_ms: float = 400.0
    """Median height of a latency spike, ms."""

    # --- faults -----------------------------------------------------------------------------
    malformed_rate: float = 0.0
    """Fraction of frames replaced by truncated or garbled text (tests of bad input), 0..1."""

    def __post_init__(self) -> None:
        n = len(ASSETS)
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                if len(v) != n:
                    raise ValueError(f"{f.name} must have {n} values (btc, eth, sol, xrp)")
                if any(not isinstance(x, int | float) or x <= 0 for x in v):
                    raise ValueError(f"{f.name} values must be > 0")
        for name in ("common_loading",):
            if any(x > 1 for x in getattr(self, name)):
                raise ValueError(f"{name} values must be <= 1")
        positive = (
            "volatile_vol_mult calm_mean_s volatile_mean_s volatile_jump_mult basis_tau_s "
            "funding_tau_s open_interest_tau_s volatile_activity_mult burst_tau_s "
            "futures_size_mult trade_size_sigma volatile_liquidation_mult liquidation_usd "
            "reference_publish_s book_noise_tau_s fair_vol_halflife_s book_level_size "
            "book_level_sigma book_quote_rate book_trade_size book_thin_s binance_latency_ms "
            "polymarket_latency_ms rtds_latency_ms rest_latency_ms latency_spike_ms"
        )
        for name in positive.split():
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        non_negative = (
            "jumps_per_hour jump_sd basis_sd futures_noise funding_sd open_interest_sd "
            "burst_sd move_activity taker_informed liquidations_per_hour reference_lag_s "
            "reference_noise book_lag_s book_noise book_trade_rate book_informed "
            "trade_fee_rate_bps fee_rate fee_exponent fee_rebate_rate close_delay_min_s "
            "listing_lead_s latency_jitter latency_spikes_per_hour"
        )
        for name in non_negative.split():
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0")
        probabilities = (
            "common_jump_share trade_size_tail_prob wide_spread_prob reference_stale_prob "
            "reference_drop_prob book_wide_prob book_end_wide_prob book_end_depth array_frame_prob "
            "malformed_rate"
        )
        for name in probabilities.split():
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be within [0, 1]")
        if not self.book_fills_per_trade >= 1:
            raise ValueError("book_fills_per_trade must be >= 1")
        if self.trade_size_tail_alpha <= 1:
            raise ValueError("trade_size_tail_alpha must be > 1 (finite mean size)")
        if not 2 <= self.book_levels <= 50:
            raise ValueError("book_levels must be within [2, 50]")
        if self.close_delay_max_s < self.close_delay_min_s:
            raise ValueError("close_delay_max_s must be >= close_delay_min_s")
        if self.book_lag_s > 600:
            raise ValueError("book_lag_s must be <= 600")
        if self.reference_lag_s > 60:
            raise ValueError("reference_lag_s must be <= 60")
        if self.book_noise > 0.2:
            raise ValueError("book_noise must be <= 0.2")
        # Latency stays far below two 5-minute chunks, which Simulation.frames(from_ns=...)
        # relies on to start mid-span without the earlier chunks.
        for name in (
            "binance_latency_ms",
            "polymarket_latency_ms",
            "rtds_latency_ms",
            "rest_latency_ms",
        ):
            if getattr(self, name) > 5_000:
                raise ValueError(f"{name} must be <= 5000")
        if self.latency_jitter > 0.5:
            raise ValueError("latency_jitter must be <= 0.5")
        if self.latency_spike_ms > 30_000:
            raise ValueError("latency_spike_ms must be <= 30000")
        if self.reference_publish_s > 10:
            raise ValueError("reference_publish_s must be <= 10")
        if self.basis_mean <= -0.5 or self.basis_mean >= 0.5:
            raise ValueError("basis_mean must be within (-0.5, 0.5)")
