"""Which reference feed a market settles on, and which feed a ``reference.price`` row is.

Polymarket's crypto Up/Down markets resolve on a Chainlink data stream: the instantaneous
price (RTDS topic ``crypto_prices_chainlink``) until 2026-08-07, since then a Chainlink TWAP
stream named by the market's Gamma ``cryptoMarketConfig`` (``twapEnabled``,
``twapLookbackSeconds``: 60 s for the 15-minute markets; RTDS ``crypto_prices_twap_sixty``,
PolyBolt ``price.crypto.twap`` with ``window_seconds`` 60). Up iff the value at the close is
at or above the value stamped at the window's first second.

A feed is named as ``sources.reference_feed`` names it: ``chainlink`` (instantaneous),
``twap60`` / ``twap30`` (Chainlink TWAP of that many seconds). RTDS ``crypto_prices_twap_sixty``
and PolyBolt ``price.crypto.twap`` rows are both ``twap60``: one Chainlink stream relayed by
two sockets, so a TWAP-60 market reads whichever the recording holds (both: one series of
the same ticks). Rows of other topics
(Binance ``crypto_prices``, PolyBolt ``price.crypto``, which is Pyth) get a name no market
settles on.
"""

from __future__ import annotations

INSTANT = "chainlink"
"""The Chainlink instantaneous price: markets without a TWAP config."""

POLYBOLT_TWAP = "price.crypto.twap"
"""PolyBolt's Chainlink TWAP channel (recorded beside RTDS when credentials are given)."""
_TWAP_TOPICS = frozenset({"crypto_prices_twap_sixty", "crypto_prices_twap_thirty"})
_OTHER_TOPICS = {"crypto_prices": "binance", "price.crypto": "pyth"}


def market_feed(twap_seconds: int | None) -> str:
    """The feed a market settles on, from its ``twap_seconds`` (null: no TWAP config)."""
    if twap_seconds is None:
        return INSTANT
    return f"twap{int(twap_seconds)}"


def row_feed(topic: str | None, window_s: int | None) -> str:
    """The feed a ``reference.price`` row belongs to (see the module doc)."""
    if topic == "crypto_prices_chainlink":
        return INSTANT
    if topic in _TWAP_TOPICS and window_s is not None:
        return f"twap{int(window_s)}"
    if topic == POLYBOLT_TWAP:
        # PolyBolt serves the 60 s window only: a row without ``window_seconds`` is that one.
        return f"twap{int(window_s) if window_s is not None else 60}"
    if topic in _OTHER_TOPICS:
        return _OTHER_TOPICS[topic]
    return f"other:{topic}"


def is_settlement_feed(feed: str) -> bool:
    """A Chainlink feed some market settles on (instantaneous or a TWAP)."""
    return feed == INSTANT or (feed.startswith("twap") and feed[4:].isdigit())
