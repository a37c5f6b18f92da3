"""Polymarket frames: book consistency, mirrored pairs, tick size, BBO, trades, Gamma discovery
and resolution, the reference feed and the planted book lag."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from decimal import Decimal
from statistics import median

import numpy as np

from polyrl.events import (
    CH_POLYMARKET_GAMMA,
    CH_POLYMARKET_WS,
    CH_RTDS_WS,
    NS_PER_MS,
    NS_PER_S,
    WINDOW_NS,
    iso_to_ns,
)
from polyrl.sim import SimConfig
from polyrl.sim.specs import SPECS
from polyrl.sources.config import SourcesConfig
from polyrl.sources.parse import Parser

T0 = 1_717_200_000 * NS_PER_S
D = Decimal
FINE, COARSE = D("0.001"), D("0.01")


def _markets(frames):  # type: ignore[no-untyped-def]
    """condition id -> (up token, down token, window start ns) from the Gamma frames."""
    out = {}
    for f in frames:
        if f.channel == CH_POLYMARKET_GAMMA:
            m = json.loads(f.text)[0]
            up, down = json.loads(m["clobTokenIds"])
            out[m["conditionId"]] = (up, down, iso_to_ns(m["eventStartTime"]))
    return out


class Books:
    """A plain rebuild of every token's book from book + price_change events."""

    def __init__(self) -> None:
        self.bids: dict[str, dict[D, D]] = {}
        self.asks: dict[str, dict[D, D]] = {}

    def book(self, o: dict) -> tuple[dict[D, D], dict[D, D]]:
        bids = {D(lv["price"]): D(lv["size"]) for lv in o["bids"]}
        asks = {D(lv["price"]): D(lv["size"]) for lv in o["asks"]}
        return bids, asks

    def apply(self, o: dict) -> None:
        if o["event_type"] == "book":
            self.bids[o["asset_id"]], self.asks[o["asset_id"]] = self.book(o)
        elif o["event_type"] == "price_change":
            for e in o["price_changes"]:
                side = self.bids if e["side"] == "BUY" else self.asks
                levels = side[e["asset_id"]]
                if D(e["size"]) == 0:
                    del levels[D(e["price"])]
                else:
                    levels[D(e["price"])] = D(e["size"])

    def touch(self, token: str) -> tuple[D, D]:
        return max(self.bids[token]), min(self.asks[token])


def test_rebuilt_books_equal_every_later_snapshot(short, events_of) -> None:  # type: ignore[no-untyped-def]
    books = Books()
    checked = 0
    for _, o in events_of(short.frames, CH_POLYMARKET_WS):
        if o["event_type"] == "book" and o["asset_id"] in books.bids:
            assert books.book(o) == (books.bids[o["asset_id"]], books.asks[o["asset_id"]])
            checked += 1
        books.apply(o)
    assert checked > 500


def test_book_sides_are_on_the_wire_order_and_never_crossed(short, events_of) -> None:  # type: ignore[no-untyped-def]
    for _, o in events_of(short.frames, CH_POLYMARKET_WS):
        if o["event_type"] != "book":
            continue
        bids = [D(lv["price"]) for lv in o["bids"]]
        asks = [D(lv["price"]) for lv in o["asks"]]
        assert bids == sorted(bids) and asks == sorted(asks, reverse=True)  # best last
        assert bids and asks and bids[-1] < asks[-1]
        assert all(D(lv["size"]) >= 1 for lv in o["bids"] + o["asks"])


def test_every_level_change_is_a_mirrored_pair(short, events_of) -> None:  # type: ignore[no-untyped-def]
    markets = _markets(short.frames)
    pairs = 0
    for _, o in events_of(short.frames, CH_POLYMARKET_WS):
        if o["event_type"] != "price_change":
            continue
        up, down, _ = markets[o["market"]]
        e = o["price_changes"]
        assert len(e) % 2 == 0 and e
        for a, b in zip(e[::2], e[1::2], strict=True):
            assert (a["side"], b["side"]) == ("BUY", "SELL")
            assert {a["asset_id"], b["asset_id"]} == {up, down}
            assert D(a["price"]) + D(b["price"]) == 1
            assert a["size"] == b["size"]
            assert re.fullmatch(r"[0-9a-f]{40}", a["hash"])
            pairs += 1
    assert pairs > 1000


def test_entry_bbo_and_best_bid_ask_report_the_touch(short, events_of) -> None:  # type: ignore[no-untyped-def]
    books = Books()
    bba = 0
    for _, o in events_of(short.frames, CH_POLYMARKET_WS):
        books.apply(o)
        if o["event_type"] == "price_change":
            for e in o["price_changes"]:
                assert (D(e["best_bid"]), D(e["best_ask"])) == books.touch(e["asset_id"])
        elif o["event_type"] == "best_bid_ask":
            bb, ba = books.touch(o["asset_id"])
            assert (D(o["best_bid"]), D(o["best_ask"])) == (bb, ba)
            assert D(o["spread"]) == ba - bb
            bba += 1
    assert bba > 200


def test_tick_size_changes_exactly_when_the_book_crosses_the_thresholds(
    simulate, events_of
) -> None:  # type: ignore[no-untyped-def]
    # The last minutes of a window, with volatile prices: books run to the extremes.
    cfg = SimConfig(annual_vol=(1.5, 2.0, 2.5, 2.5))
    _, frames = simulate(T0 + 500 * NS_PER_S, 400, cfg=cfg)
    markets = _markets(frames)
    books = Books()
    tick: dict[str, D] = {}
    pending: dict[str, int] = defaultdict(int)  # tick_size_change events still due
    changes = 0
    for _, o in events_of(frames, CH_POLYMARKET_WS):
        cid = o["market"]
        up, down, _ = markets[cid]
        et = o["event_type"]
        books.apply(o)
        if et == "book" and cid not in tick:
            tick[cid] = D(o["tick_size"])
        if et == "tick_size_change":
            assert pending[cid] > 0, "tick change without a threshold crossing"
            assert D(o["old_tick_size"]) == tick[cid]
            pending[cid] -= 1
            if pending[cid] == 0:
                tick[cid] = D(o["new_tick_size"])
            changes += 1
            continue
        assert pending[cid] == 0, f"{et} arrived before the due tick_size_change"
        if et == "price_change" and cid in tick:
            bb, ba = books.touch(up)
            want = FINE if (bb > D("0.96") or ba < D("0.04")) else COARSE
            if want != tick[cid]:
                pending[cid] = 2  # one per token, next
        if et == "book" and tick.get(cid) == COARSE:
            prices = [D(lv["price"]) for lv in o["bids"] + o["asks"]]
            assert all(p % COARSE == 0 for p in prices)
    assert changes >= 4 and not any(pending.values())


def test_trades_are_followed_by_fresh_books(short, events_of) -> None:  # type: ignore[no-untyped-def]
    markets = _markets(short.frames)
    due: dict[str, tuple[str, set[str]]] = {}  # market -> (trade timestamp, books still due)
    trades = 0
    sizes = []
    for _, o in events_of(short.frames, CH_POLYMARKET_WS):
        cid, et = o["market"], o["event_type"]
        if cid in due:
            ts, tokens = due[cid]
            assert o["timestamp"] == ts, "the post-trade books must come at the trade's time"
            if et == "book":
                tokens.discard(o["asset_id"])
                if not tokens:
                    del due[cid]
            else:  # a taker trade fills several makers: one last_trade_price each, then books
                assert et in ("price_change", "tick_size_change", "last_trade_price")
        if et == "last_trade_price":
            up, down, _ = markets[cid]
            assert o["asset_id"] in (up, down) and o["side"] in ("BUY", "SELL")
            assert D("0") < D(o["price"]) < D("1")
            assert re.fullmatch(r"0x[0-9a-f]{64}", o["transaction_hash"])
            sizes.append(float(o["size"]))
            due[cid] = (o["timestamp"], {up, down})
            trades += 1
    assert trades > 200 and 3 < median(sizes) < 200  # one maker's fill of a taker trade


def test_trades_take_the_touch(short, events_of) -> None:  # type: ignore[no-untyped-def]
    """A taker buy of a token pays its best ask; a taker sell gets its best bid."""
    books = Books()
    n = 0
    for _, o in events_of(short.frames, CH_POLYMARKET_WS):
        if o["event_type"] == "last_trade_price":
            bb, ba = books.touch(o["asset_id"])
            assert D(o["price"]) == (ba if o["side"] == "BUY" else bb)
            n += 1
        books.apply(o)
    assert n > 200


def test_books_look_like_polymarket(short, events_of) -> None:  # type: ignore[no-untyped-def]
    markets = _markets(short.frames)
    spreads: Counter[D] = Counter()
    levels, sizes = [], []
    for _, o in events_of(short.frames, CH_POLYMARKET_WS):
        if o["event_type"] != "book" or o["asset_id"] != markets[o["market"]][0]:
            continue
        mid = (D(o["asks"][-1]["price"]) + D(o["bids"][-1]["price"])) / 2
        if not D("0.1") < mid < D("0.9"):
            continue  # near 0 or 1 one side has little room for levels
        spreads[D(o["asks"][-1]["price"]) - D(o["bids"][-1]["price"])] += 1
        levels.append(min(len(o["bids"]), len(o["asks"])))
        sizes += [float(lv["size"]) for lv in o["bids"]]
    n = sum(spreads.values())
    assert (
        spreads[D("0.01")] + spreads[D("0.02")] + spreads[FINE] + spreads[D("0.002")]
    ) / n > 0.85
    assert median(levels) >= 5
    assert 200 < median(sizes) < 3000


def test_books_sit_near_half_before_the_open_and_stop_at_the_close(short, events_of) -> None:  # type: ignore[no-untyped-def]
    markets = _markets(short.frames)
    before = 0
    for _, o in events_of(short.frames, CH_POLYMARKET_WS):
        up, _, ws = markets[o["market"]]
        ts = int(o["timestamp"]) * NS_PER_MS
        assert ts < ws + WINDOW_NS
        if o["event_type"] == "book" and o["asset_id"] == up and ts < ws:
            mid = (D(o["bids"][-1]["price"]) + D(o["asks"][-1]["price"])) / 2
            assert abs(mid - D("0.5")) <= D("0.06")
            before += 1
    assert before > 10


def test_books_arrive_after_their_market_is_known(short) -> None:  # type: ignore[no-untyped-def]
    p = Parser()
    n = 0
    for f in short.frames:
        for ev in p.parse(f):
            if ev.stream.startswith("polymarket.") and ev.stream not in (
                "polymarket.market",
                "polymarket.resolution",
            ):
                assert ev.asset is not None, ev.stream
                n += 1
    assert n > 1000


def test_gamma_discovery_frames(short) -> None:  # type: ignore[no-untyped-def]
    start = short.sim.start_ns
    disc = [f for f in short.frames if f.channel == CH_POLYMARKET_GAMMA]
    first = [f for f in disc if f.recv_ns < start + 2 * NS_PER_S]
    # At the start: the open 00:00 window and the 00:15 window (opening within the lead).
    assert len(first) == 8
    for f in first:
        (m,) = json.loads(f.text)
        assert f.request == {"slug": m["slug"]}
        asset, _, _, start_s = m["slug"].split("-")
        ws = int(start_s) * NS_PER_S
        assert ws % WINDOW_NS == 0
        assert iso_to_ns(m["eventStartTime"]) == ws and iso_to_ns(m["endDate"]) == ws + WINDOW_NS
        assert re.fullmatch(r"0x[0-9a-f]{64}", m["conditionId"])
        assert re.fullmatch(r"0x[0-9a-f]{64}", m["questionID"])
        assert json.loads(m["outcomes"]) == ["Up", "Down"]
        tokens = json.loads(m["clobTokenIds"])
        assert len(tokens) == 2 and all(re.fullmatch(r"\d{60,80}", t) for t in tokens)
        assert m["orderMinSize"] == 5 and m["orderPriceMinTickSize"] == 0.01
        assert m["feesEnabled"] is True
        assert m["feeSchedule"] == {
            "rate": 0.07,
            "exponent": 1,
            "takerOnly": True,
            "rebateRate": 0.2,
        }
        assert m["active"] is True and m["closed"] is False
        assert m["question"].startswith(f"{SPECS[asset].name} Up or Down - ")
    titles = {json.loads(f.text)[0]["question"] for f in first}
    assert "Bitcoin Up or Down - May 31, 8:00PM-8:15PM ET" in titles
    assert "XRP Up or Down - May 31, 8:15PM-8:30PM ET" in titles


def test_resolution_agrees_with_the_reference_path(short) -> None:  # type: ignore[no-untyped-def]
    truth = {o.slug: o for o in short.sim.window_outcomes()}
    assert len(truth) == 4  # the 00:00 windows end inside the span
    seen = set()
    for f in short.frames:
        if f.channel != CH_POLYMARKET_GAMMA:
            continue
        (m,) = json.loads(f.text)
        if m["slug"] not in truth or iso_to_ns(m["endDate"]) > f.recv_ns:
            continue
        o = truth[m["slug"]]
        assert m["acceptingOrders"] is False
        if not m["closed"]:
            assert f.recv_ns < o.closed_ns + NS_PER_S
            continue
        closed = iso_to_ns(m["closedTime"])
        assert closed == o.closed_ns
        assert 15 * NS_PER_S <= closed - o.window_end_ns <= 60 * NS_PER_S
        want = ["1", "0"] if o.close_e18 >= o.open_e18 else ["0", "1"]
        assert json.loads(m["outcomePrices"]) == want
        assert o.outcome == ("Up" if want == ["1", "0"] else "Down")
        seen.add(m["slug"])
    assert seen == set(truth)


def test_reference_feed(short) -> None:  # type: ignore[no-untyped-def]
    ticks: dict[str, list[dict]] = defaultdict(list)
    for f in short.frames:
        if f.channel == CH_RTDS_WS:
            o = json.loads(f.text)
            assert o["topic"] == "crypto_prices_chainlink" and o["type"] == "update"
            p = o["payload"]
            assert D(p["full_accuracy_value"]) == D(repr(p["value"])) * 10**18
            assert p["timestamp"] % 1000 == 0
            ticks[p["symbol"]].append(p)
    assert set(ticks) == {"btc/usd", "eth/usd", "sol/usd", "xrp/usd"}
    sk = short.sim.skeleton
    for sym, rows in ticks.items():
        assert 0.9 * 420 < len(rows) <= 420
        i = SPECS[sym.split("/")[0]].index
        t = [r["timestamp"] for r in rows]
        assert t == sorted(t)
        spot = np.exp(sk.logp[i, sk.step_index(np.array(t) * NS_PER_MS)])
        assert np.max(np.abs(np.array([r["value"] for r in rows]) / spot - 1)) < 0.003
    # The window boundary tick is always published and is the window's close value.
    (btc,) = [o for o in short.sim.window_outcomes() if o.asset == "btc"]
    at_end = [r for r in ticks["btc/usd"] if r["timestamp"] * NS_PER_MS == btc.window_end_ns]
    assert int(at_end[0]["full_accuracy_value"]) == btc.close_e18


def test_twap_reference_mode(simulate) -> None:  # type: ignore[no-untyped-def]
    sources = SourcesConfig(reference_feed="twap60")
    sim, frames = simulate(T0 + 880 * NS_PER_S, 90, assets=("btc",), sources=sources)
    sk = sim.skeleton
    rtds = [json.loads(f.text) for f in frames if f.channel == CH_RTDS_WS]
    assert rtds and all(o["topic"] == "crypto_prices_twap_sixty" for o in rtds)
    assert all(o["payload"]["window_s"] == 60 for o in rtds)
    j = 1000  # any second: the settlement series is the trailing 60 s mean of the reference
    assert sk.settle_e8[0, j] == (sk.ref_e8[0, j - 59 : j + 1].sum() + 30) // 60
    gamma = [json.loads(f.text)[0] for f in frames if f.channel == CH_POLYMARKET_GAMMA]
    assert gamma and all(m["cryptoMarketConfig"]["twapLookbackSeconds"] == 60 for m in gamma)
    assert gamma[0]["resolutionSource"].endswith("btc-usd-twap-60s-streams")


def test_the_book_follows_the_fair_value_with_the_configured_lag(simulate, events_of) -> None:  # type: ignore[no-untyped-def]
    lag = 6.0
    cfg = SimConfig(book_lag_s=lag, book_noise=0.0, book_quote_rate=20.0)
    sim, frames = simulate(T0 + 300 * NS_PER_S, 400, assets=("sol",), cfg=cfg, seed=11)
    up = _markets(frames)
    books = Books()
    t_ns, mids = [], []
    for _, o in events_of(frames, CH_POLYMARKET_WS):
        books.apply(o)
        token, _, ws = up[o["market"]]
        if o["event_type"] == "price_change" and ws == T0:
            bb, ba = books.touch(token)
            t_ns.append(int(o["timestamp"]) * NS_PER_MS)
            mids.append(float(bb + ba) / 2)
    t = np.array(t_ns)
    mid = np.array(mids)
    sk = sim.skeleton
    lagged = sk.fair_up(2, T0, t - int(lag * NS_PER_S))
    now = sk.fair_up(2, T0, t)
    err_lagged = np.mean(np.abs(mid - lagged))
    err_now = np.mean(np.abs(mid - now))
    assert err_lagged < 0.012  # about one tick around the lagged fair value
    assert err_lagged < 0.8 * err_now
