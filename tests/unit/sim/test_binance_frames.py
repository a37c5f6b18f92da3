"""Binance frames: wire shapes, tick grids, ids, schedules and REST responses."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from decimal import Decimal

import numpy as np

from polyrl.events import (
    CH_BINANCE_FUTURES_OI,
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_KLINES,
    CH_BINANCE_SPOT_WS,
    NS_PER_MS,
    NS_PER_S,
)
from polyrl.sim.specs import SPECS
from polyrl.sources.config import SourcesConfig

T0 = 1_717_200_000 * NS_PER_S
SPOT_NUM = re.compile(r"^\d+\.\d{8}$")


def _ws(frames, channel):  # type: ignore[no-untyped-def]
    by = defaultdict(list)
    for f in frames:
        if f.channel == channel:
            o = json.loads(f.text)
            assert set(o) == {"stream", "data"}
            by[o["stream"]].append((f, o["data"]))
    return by


def test_spot_aggtrades(short) -> None:  # type: ignore[no-untyped-def]
    by = _ws(short.frames, CH_BINANCE_SPOT_WS)
    for a, spec in SPECS.items():
        rows = by[f"{a}usdt@aggTrade"]
        assert len(rows) > 420 * 2, a
        prev = None
        buys = 0
        for _, d in rows:
            assert list(d) == ["e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"]
            assert d["e"] == "aggTrade" and d["s"] == spec.symbol and d["M"] is True
            assert SPOT_NUM.match(d["p"]) and SPOT_NUM.match(d["q"])
            assert int(Decimal(d["p"]) * 10**8) % spec.spot_tick == 0
            assert int(Decimal(d["q"]) * 10**8) % spec.spot_step == 0 and Decimal(d["q"]) > 0
            assert d["f"] <= d["l"] and d["E"] >= d["T"]
            if prev is not None:
                # Aggregate ids and trade ids are consecutive; times never go back.
                assert d["a"] == prev["a"] + 1 and d["f"] == prev["l"] + 1
                assert d["T"] >= prev["T"] and d["E"] >= prev["E"]
            buys += not d["m"]
            prev = d
        assert 0.3 < buys / len(rows) < 0.7


def test_futures_aggtrades_in_contract_precision(short) -> None:  # type: ignore[no-untyped-def]
    by = _ws(short.frames, CH_BINANCE_FUTURES_WS)
    for a, spec in SPECS.items():
        rows = by[f"{a}usdt@aggTrade"]
        assert len(rows) > 420 * 1.5
        for _, d in rows[:500]:
            assert list(d) == ["e", "E", "a", "s", "p", "q", "nq", "f", "l", "T", "m"]
            frac = d["p"].split(".")[1] if "." in d["p"] else ""
            assert len(frac) == spec.fut_px_decimals
            assert int(Decimal(d["p"]) * 10**spec.fut_px_decimals) % spec.fut_tick == 0
            qfrac = d["q"].split(".")[1] if "." in d["q"] else ""
            assert len(qfrac) == spec.fut_qty_decimals
            assert Decimal(d["nq"]) <= Decimal(d["q"])


def test_taker_side_leans_towards_the_next_move(short) -> None:  # type: ignore[no-untyped-def]
    """Over all assets, taker buys are followed by a higher price a second later more often."""
    sk = short.sim.skeleton
    up = n = 0
    by = _ws(short.frames, CH_BINANCE_FUTURES_WS)
    for a, spec in SPECS.items():
        for _, d in by[f"{a}usdt@aggTrade"]:
            k = int(sk.step_index(d["T"] * NS_PER_MS))
            move = sk.logp[spec.index, min(k + 10, sk.n - 1)] - sk.logp[spec.index, k]
            if move != 0:
                n += 1
                up += (move > 0) == (not d["m"])
    assert up / n > 0.55


def test_spot_depth_partials(simulate) -> None:  # type: ignore[no-untyped-def]
    sources = SourcesConfig(spot_depth_levels=10)
    _, frames = simulate(T0, 20, assets=("xrp", "btc"), sources=sources)
    by = _ws(frames, CH_BINANCE_SPOT_WS)
    for a in ("xrp", "btc"):
        spec = SPECS[a]
        rows = by[f"{a}usdt@depth10@100ms"]
        assert 195 <= len(rows) <= 200  # every 100 ms
        last = 0
        for _, d in rows:
            assert list(d) == ["lastUpdateId", "bids", "asks"]
            assert len(d["bids"]) == len(d["asks"]) == 10
            bids = [Decimal(p) for p, _ in d["bids"]]
            asks = [Decimal(p) for p, _ in d["asks"]]
            assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
            assert bids[0] < asks[0]
            assert all(int(p * 10**8) % spec.spot_tick == 0 for p in bids + asks)
            assert d["lastUpdateId"] > last
            last = d["lastUpdateId"]


def test_book_ticker(short) -> None:  # type: ignore[no-untyped-def]
    by = _ws(short.frames, CH_BINANCE_SPOT_WS)
    btc = by["btcusdt@bookTicker"]
    assert 10 * 420 < len(btc) < 150 * 420  # tens per second
    last = 0
    for _, d in btc:
        assert list(d) == ["u", "s", "b", "B", "a", "A"]
        assert Decimal(d["b"]) < Decimal(d["a"])
        assert d["u"] > last
        last = d["u"]


def test_mark_price_every_second_with_funding_time(short) -> None:  # type: ignore[no-untyped-def]
    by = _ws(short.frames, CH_BINANCE_FUTURES_WS)
    for a, spec in SPECS.items():
        rows = by[f"{a}usdt@markPrice@1s"]
        assert len(rows) == 420
        secs = [d["E"] // 1000 for _, d in rows]
        assert secs == list(range(secs[0], secs[0] + 420))
        for _, d in rows:
            assert list(d) == ["e", "E", "s", "p", "ap", "P", "i", "r", "T"]
            assert d["T"] % (8 * 3_600_000) == 0 and 0 < d["T"] - d["E"] <= 8 * 3_600_000
            assert abs(float(d["p"]) / float(d["i"]) - 1) < 0.005
            assert -0.001 < float(d["r"]) < 0.001
            assert int(Decimal(d["p"]) * 10**spec.fut_px_decimals) % spec.fut_tick == 0


def test_liquidations_are_well_formed(simulate) -> None:  # type: ignore[no-untyped-def]
    _, frames = simulate(T0, 1800, assets=("eth",))
    rows = _ws(frames, CH_BINANCE_FUTURES_WS)["ethusdt@forceOrder"]
    assert rows, "no liquidation in 30 minutes"
    seconds = [d["o"]["T"] // 1000 for _, d in rows]
    assert len(set(seconds)) == len(seconds)  # at most one per second
    for _, d in rows:
        o = d["o"]
        assert list(o) == ["s", "S", "o", "f", "q", "p", "ap", "X", "l", "z", "T"]
        assert o["S"] in ("BUY", "SELL") and o["X"] == "FILLED" and o["q"] == o["z"]
        # A liquidated long sells below the market; a liquidated short buys above.
        assert (Decimal(o["p"]) < Decimal(o["ap"])) == (o["S"] == "SELL")


def test_open_interest_polls(short) -> None:  # type: ignore[no-untyped-def]
    polls = [f for f in short.frames if f.channel == CH_BINANCE_FUTURES_OI]
    per = SourcesConfig().open_interest_poll_s
    assert len(polls) == 4 * int(420 / per)
    for f in polls:
        o = json.loads(f.text)
        assert list(o) == ["openInterest", "symbol", "time"]
        assert f.request == {"symbol": o["symbol"]}
        assert f.recv_ns > o["time"] * NS_PER_MS > f.recv_ns - 2 * NS_PER_S


def test_warmup_klines(short) -> None:  # type: ignore[no-untyped-def]
    frames = [f for f in short.frames if f.channel == CH_BINANCE_SPOT_KLINES]
    assert sorted(f.request["symbol"] for f in frames) == sorted(s.symbol for s in SPECS.values())
    start_ms = short.sim.start_ns // NS_PER_MS
    warm = SourcesConfig().kline_warmup_minutes
    for f in frames:
        bars = json.loads(f.text)
        assert len(bars) == warm
        opens = [b[0] for b in bars]
        assert opens == list(range(start_ms - warm * 60_000, start_ms, 60_000))
        for b in bars:
            o, h, low, c = (Decimal(x) for x in b[1:5])
            assert low <= min(o, c) <= max(o, c) <= h
            assert b[6] == b[0] + 59_999 and b[11] == "0"
            assert Decimal(b[9]) <= Decimal(b[5]) and b[8] > 0
        # The last warm-up close is near the first live trade price.
        last_close = float(bars[-1][4])
        sym = f.request["symbol"].lower()
        first = next(
            json.loads(g.text)["data"]
            for g in short.frames
            if g.text.startswith(f'{{"stream":"{sym}@aggTrade"')
        )
        assert abs(float(first["p"]) / last_close - 1) < 0.01


def test_prices_are_realistic_and_correlated(simulate) -> None:  # type: ignore[no-untyped-def]
    sim, _ = simulate(T0, 1)
    sk = sim.skeleton
    assert sk.t_end_ns - sk.t0_ns >= 2 * 3_600 * NS_PER_S  # warm-up hour + the span's hour
    np.testing.assert_allclose(np.exp(sk.logp[:, -1]), [65_000, 3_500, 150, 0.6], rtol=0.1)
    r = np.diff(sk.logp[:, ::600], axis=1)  # 1-minute returns
    c = np.corrcoef(r)
    assert c[0, 1] > 0.4 and c[0, 3] > 0.3
