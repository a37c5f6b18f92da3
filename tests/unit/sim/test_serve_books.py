"""The loopback CLOB's book store: trades feed each market's volume and each token's last
trade price, and a malformed trade frame changes neither."""

from __future__ import annotations

from typing import Any

import pytest

from polyrl.sim.serve.books import BookStore

BOOK = {"event_type": "book", "asset_id": "tok", "market": "0xm", "bids": [], "asks": []}


def _trade(**fields: Any) -> dict[str, Any]:
    return {"event_type": "last_trade_price", "asset_id": "tok", "market": "0xm", **fields}


def test_trades_add_their_notional_and_set_the_last_trade_price() -> None:
    store = BookStore()
    store.apply(BOOK, 1)
    store.apply(_trade(price="0.52", size="10"), 2)
    store.apply(_trade(price=0.5, size=4), 3)  # numbers as well as the venue's texts
    assert store.volume["0xm"] == pytest.approx(0.52 * 10 + 0.5 * 4)
    assert store.books["tok"].last_trade == "0.5" and store.books["tok"].updated_ns == 3


@pytest.mark.parametrize(
    ("bad", "last"),
    [
        ({"size": "10"}, "0.40"),  # no price: nothing changes
        ({"price": None, "size": "10"}, "0.40"),
        ({"price": "NaN", "size": "10"}, "0.40"),
        ({"price": "inf", "size": "10"}, "0.40"),
        ({"price": "0.5x", "size": "10"}, "0.40"),
        ({"price": True, "size": "10"}, "0.40"),
        ({"price": "0.5", "size": "nan"}, "0.5"),  # a price but no size: no volume
        ({"price": "0.5", "size": None}, "0.5"),
        ({"price": "0.5", "size": "-3"}, "0.5"),
    ],
)
def test_a_malformed_trade_adds_no_volume_and_no_unusable_price(bad: dict, last: str) -> None:
    store = BookStore()
    store.apply(BOOK, 1)
    store.apply(_trade(price="0.40", size="5"), 2)
    store.apply(_trade(**bad), 3)
    assert store.volume["0xm"] == pytest.approx(2.0)
    assert store.books["tok"].last_trade == last
