"""Gamma -> market and resolution rows for past windows: times without look-ahead, retries."""

from __future__ import annotations

import json

import polars as pl
import pytest

from polyrl.errors import PolyrlError
from polyrl.events import NS_PER_S
from polyrl.importers.fetch import HttpArchive
from polyrl.importers.gamma import (
    CLOSE_DELAY_S,
    MARKET_LEAD_S,
    events_table,
    fetch_window,
    window_events,
)
from polyrl.testing.archive_server import ArchiveServer
from polyrl.testing.pmxt import gamma_route

S = 1_777_593_600  # 2026-05-01T00:00Z
CID = "0x" + "ab" * 32


def market(closed: bool, prices: str, closed_time: str | None = None) -> dict:
    """Shaped like a real Gamma /markets object (JSON-encoded lists, ISO times)."""
    m = {
        "id": "1800001", "question": "Bitcoin Up or Down - April 30, 8:00PM-8:15PM ET",
        "conditionId": CID, "slug": f"btc-updown-15m-{S}",
        "outcomes": '["Up", "Down"]', "outcomePrices": prices,
        "clobTokenIds": '["111", "222"]', "eventStartTime": "2026-05-01T00:00:00Z",
        "endDate": "2026-05-01T00:15:00Z", "startDate": "2026-04-30T00:05:12.0Z",
        "orderPriceMinTickSize": 0.01, "orderMinSize": 5, "feesEnabled": True,
        "feeSchedule": {"exponent": 1, "rate": 0.07, "takerOnly": True, "rebateRate": 0.2},
        "active": not closed, "closed": closed, "resolutionSource": "https://data.chain.link/x",
        "cryptoMarketConfig": {"asset": "btc", "twapEnabled": True, "twapLookbackSeconds": 60},
    }  # fmt: skip
    if closed_time:
        m["closedTime"] = closed_time
    return m


def test_market_row_known_before_the_window_and_not_yet_closed():
    w = window_events(json.dumps([market(True, '["0", "1"]')]), "btc", S)
    assert w.market is not None and w.market.recv_ns == (S - MARKET_LEAD_S) * NS_PER_S
    f = w.market.fields
    assert f["closed"] is False and f["active"] is True and f["up_token"] == "111"
    assert f["twap_seconds"] == 60 and f["window_start_ns"] == S * NS_PER_S
    assert w.resolution is not None and w.resolution.fields["outcome"] == "Down"
    # no closedTime: the window end + the median close delay
    assert w.resolution.recv_ns == (S + 900 + CLOSE_DELAY_S) * NS_PER_S


def test_resolution_at_closed_time_never_before_the_window_end():
    w = window_events(json.dumps([market(True, '["1", "0"]', "2026-05-01 00:15:40+00")]), "btc", S)
    assert w.resolution.recv_ns == (S + 940) * NS_PER_S
    early = window_events(json.dumps([market(True, '["1", "0"]', "2026-05-01 00:10:00+00")]),
                          "btc", S)  # fmt: skip
    assert early.resolution.recv_ns == (S + 900) * NS_PER_S


def test_open_or_unknown_markets():
    w = window_events(json.dumps([market(False, '["0.51", "0.49"]')]), "btc", S)
    assert w.market is not None and w.resolution is None
    assert window_events("[]", "btc", S).market is None


def test_tables_have_the_stream_schemas():
    w = window_events(json.dumps([market(True, '["1", "0"]')]), "btc", S)
    t = events_table("polymarket.market", [w.market])
    assert t.num_rows == 1 and t.column("quality").to_pylist() == [0]
    r = pl.from_arrow(events_table("polymarket.resolution", [w.resolution]))
    assert r["outcome"].to_list() == ["Up"] and r["source"].to_list() == ["gamma"]


def test_gamma_429_is_retried_and_a_bad_answer_named(tmp_path):
    objs = {f"btc-updown-15m-{S}": market(True, '["1", "0"]')}
    with ArchiveServer(tmp_path) as srv:
        srv.route("/markets", gamma_route(objs))
        srv.fail("/markets", 429, times=2, retry_after=0.01)
        g = HttpArchive(srv.url, backoff_s=0.01)
        w = fetch_window(g, "btc", S)
        assert w.condition_id == CID and g.stats.retries == 2
        assert fetch_window(g, "btc", S + 900).market is None
        srv.route("/markets", lambda q: (200, "not json"))
        with pytest.raises(PolyrlError, match=r"markets\?slug=btc-updown-15m-.*not JSON"):
            fetch_window(g, "btc", S)
