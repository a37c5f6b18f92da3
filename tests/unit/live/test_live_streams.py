"""What `polyrl live` subscribes, against what each feature set needs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from polyrl.errors import ConfigError
from polyrl.features.sets import FEATURE_SETS
from polyrl.live import check_live_streams, live_streams
from polyrl.sections import Config
from polyrl.sources.binance.ws import spot_streams


def _cfg(fset: str) -> Config:
    c = Config()
    return replace(c, features=replace(c.features, feature_set=fset))


def test_live_records_every_kind_the_adapters_subscribe() -> None:
    got = live_streams(Config())
    for s in ("binance.spot.book_ticker", "binance.spot.depth", "binance.spot.trade",
              "binance.futures.trade", "binance.futures.mark", "binance.futures.liquidation",
              "binance.spot.kline", "reference.price", "polymarket.book"):  # fmt: skip
        assert s in got, s
    # Read from the adapter's own subscription list: one bookTicker per asset.
    assert sum("@bookTicker" in n for n in spot_streams(("btc",), Config().sources)) == 1


@pytest.mark.parametrize("name", sorted(FEATURE_SETS))
def test_every_built_in_set_can_run_live(name: str) -> None:
    check_live_streams(_cfg(name))  # every adapter always subscribes every kind


def test_a_set_needing_an_unsubscribed_stream_is_refused() -> None:
    without = live_streams(Config()) - {"binance.spot.book_ticker"}
    with pytest.raises(ConfigError) as e:
        check_live_streams(_cfg("seed18"), without)
    msg = str(e.value)
    assert "\n" not in msg
    assert "binance.spot.book_ticker (needed by returns_1m" in msg
    assert "missing from the live subscriptions" in msg and msg.endswith("--feature-set history")
    check_live_streams(_cfg("history"), without)
