"""generate_frames as a whole: determinism, order, span, parsing, subsets, prefixes, faults."""

from __future__ import annotations

import itertools
import json
import time

import pytest

from polyrl.errors import ConfigError
from polyrl.events import (
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_WS,
    CH_POLYMARKET_GAMMA,
    CH_POLYMARKET_WS,
    CH_RTDS_WS,
    NS_PER_MS,
    NS_PER_S,
    venue_time_to_ns,
)
from polyrl.sim import SimConfig, Simulation, generate_frames
from polyrl.sim.polymarket import market_ids
from polyrl.sources.config import SourcesConfig
from polyrl.sources.parse import Parser

T0 = 1_717_200_000 * NS_PER_S


def _key(f):  # type: ignore[no-untyped-def]
    return (f.channel, f.recv_ns, f.text, dict(f.request))


def test_same_seed_same_frames_byte_for_byte(short, short_twice) -> None:  # type: ignore[no-untyped-def]
    assert len(short.frames) > 10_000
    assert [_key(f) for f in short.frames] == [_key(f) for f in short_twice]


def test_another_seed_gives_other_frames(simulate) -> None:  # type: ignore[no-untyped-def]
    a = simulate(T0, 30, seed=1, assets=("btc",))[1]
    b = simulate(T0, 30, seed=2, assets=("btc",))[1]
    ta = {f.text for f in a if f.channel == CH_BINANCE_SPOT_WS}
    tb = {f.text for f in b if f.channel == CH_BINANCE_SPOT_WS}
    assert ta and tb and len(ta & tb) < 0.01 * len(ta)


def test_frames_are_in_receive_order_within_the_span(short) -> None:  # type: ignore[no-untyped-def]
    recv = [f.recv_ns for f in short.frames]
    assert all(a <= b for a, b in itertools.pairwise(recv))
    sim = short.sim
    assert recv[0] >= sim.start_ns and recv[-1] < sim.end_ns


def test_every_frame_parses_without_error(short) -> None:  # type: ignore[no-untyped-def]
    p = Parser()
    streams: set[str] = set()
    for f in short.frames:
        for ev in p.parse(f):
            assert ev.stream != "recorder.status", (ev.fields, f.text[:300])
            streams.add(ev.stream)
    assert {
        "binance.spot.trade",
        "binance.spot.depth",
        "binance.spot.book_ticker",
        "binance.spot.kline",
        "binance.futures.trade",
        "binance.futures.mark",
        "binance.futures.open_interest",
        "polymarket.market",
        "polymarket.book",
        "polymarket.price_change",
        "polymarket.trade",
        "polymarket.best_bid_ask",
        "polymarket.resolution",
        "reference.price",
    } <= streams


def test_receive_time_follows_venue_time_with_small_latency(short) -> None:  # type: ignore[no-untyped-def]
    """Per connection: venue times are in the past, by a plausible latency, and in order."""
    last: dict[tuple[str, str], int] = {}
    for f in short.frames:
        if f.channel in (CH_BINANCE_SPOT_WS, CH_BINANCE_FUTURES_WS):
            d = json.loads(f.text)["data"]
            if "E" not in d:
                continue
            vt = venue_time_to_ns(d["E"])
            stream = json.loads(f.text)["stream"]
            lag = f.recv_ns - vt
            assert 0 < lag < 3 * NS_PER_S, (lag, f.text[:200])
            assert vt >= last.get((f.channel, stream), 0)
            last[(f.channel, stream)] = vt
        elif f.channel == CH_POLYMARKET_WS:
            obj = json.loads(f.text)
            ts = (obj[0] if isinstance(obj, list) else obj)["timestamp"]
            lag = f.recv_ns - int(ts) * NS_PER_MS
            assert 0 < lag < 3 * NS_PER_S
        elif f.channel == CH_RTDS_WS:
            o = json.loads(f.text)
            assert 0 < f.recv_ns - o["timestamp"] * NS_PER_MS < 3 * NS_PER_S
            assert 0.5 * NS_PER_S < (o["timestamp"] - o["payload"]["timestamp"]) * NS_PER_MS
    assert len(last) >= 12  # aggTrade (spot, futures) and markPrice of 4 assets


def test_an_asset_subset_gives_exactly_that_assets_frames(short, simulate) -> None:  # type: ignore[no-untyped-def]
    sim, only = simulate(T0 + 600 * NS_PER_S, 420, assets=("sol",))

    def is_sol(f) -> bool:  # type: ignore[no-untyped-def]
        t = f.text
        return (
            "solusdt" in t[:40]
            or "SOLUSDT" in t[:60]
            or "sol/usd" in t
            or "sol-updown" in t
            or f.request.get("symbol") == "SOLUSDT"
            or any(tok in t for tok in sol_tokens)
        )

    sol_tokens = {o.up_token for o in sim.window_outcomes()} | {
        o.down_token for o in sim.window_outcomes()
    }
    # Tokens of the next window too: read them from the Gamma frames of the subset run.
    for f in only:
        if f.channel == CH_POLYMARKET_GAMMA:
            sol_tokens |= set(json.loads(json.loads(f.text)[0]["clobTokenIds"]))
    mine = [_key(f) for f in short.frames if is_sol(f)]
    assert all(is_sol(f) for f in only)
    assert [_key(f) for f in only] == mine


def test_an_earlier_end_gives_a_prefix(simulate) -> None:  # type: ignore[no-untyped-def]
    start = T0 + 830 * NS_PER_S
    a = simulate(start, 100, assets=("btc", "xrp"))[1]
    b = simulate(start, 340, assets=("btc", "xrp"))[1]
    cut = start + 100 * NS_PER_S
    assert [_key(f) for f in a] == [_key(f) for f in b if f.recv_ns < cut]


def test_outcomes_are_balanced_over_a_day() -> None:
    sim = Simulation(
        SimConfig(),
        SourcesConfig(),
        assets=["btc", "eth", "sol", "xrp"],
        start_ns=T0,
        end_ns=T0 + 86_400 * NS_PER_S,
        seed=4,
    )
    outcomes = sim.window_outcomes()
    assert len(outcomes) == 4 * 96
    up = sum(o.outcome == "Up" for o in outcomes) / len(outcomes)
    assert 0.35 < up < 0.65
    # Consecutive windows chain: a window's close value is the next one's open value.
    btc = [o for o in outcomes if o.asset == "btc"]
    assert all(a.close_e18 == b.open_e18 for a, b in itertools.pairwise(btc))


def test_malformed_frames_are_reported_by_the_parser(simulate) -> None:  # type: ignore[no-untyped-def]
    _, frames = simulate(T0, 60, cfg=SimConfig(malformed_rate=0.02))
    p = Parser()
    bad = [e for f in frames for e in p.parse(f) if e.stream == "recorder.status"]
    rate = len(bad) / len(frames)
    assert 0.012 < rate < 0.03, rate
    assert all(e.fields["kind"] == "parse_error" for e in bad)


def test_generation_is_lazy_over_long_spans() -> None:
    t = time.perf_counter()
    it = generate_frames(
        SimConfig(),
        SourcesConfig(),
        assets=["btc"],
        start_ns=T0,
        end_ns=T0 + 86_400 * NS_PER_S,
        seed=3,
    )
    first = list(itertools.islice(it, 1000))
    assert time.perf_counter() - t < 20.0
    assert len(first) == 1000 and first[-1].recv_ns < T0 + 300 * NS_PER_S


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"assets": []}, "assets"),
        ({"assets": ["doge"]}, "assets"),
        ({"assets": ["btc", "btc"]}, "repeat"),
        ({"end_ns": T0}, "empty"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_are_config_errors(kw: dict, match: str) -> None:
    args = {"assets": ["btc"], "start_ns": T0, "end_ns": T0 + NS_PER_S, "seed": 0} | kw
    with pytest.raises(ConfigError, match=match):
        Simulation(SimConfig(), SourcesConfig(), **args)


def test_polybolt_reference_cannot_be_simulated() -> None:
    with pytest.raises(ConfigError, match="reference_feed"):
        Simulation(
            SimConfig(),
            SourcesConfig(reference_feed="polybolt"),
            assets=["btc"],
            start_ns=T0,
            end_ns=T0 + NS_PER_S,
            seed=0,
        )


def test_parts_generated_separately_concatenate_to_the_full_run() -> None:
    """Hours (here: 5-minute chunks) can be generated independently and in parallel."""
    start, end = T0 + 300 * NS_PER_S, T0 + 2_100 * NS_PER_S
    sim = Simulation(
        SimConfig(), SourcesConfig(), assets=["eth", "xrp"], start_ns=start, end_ns=end, seed=8
    )
    full = [_key(f) for f in sim.frames()]
    cuts = [start, T0 + 1_500 * NS_PER_S, T0 + 1_800 * NS_PER_S, end]
    parts = []
    for a, b in itertools.pairwise(cuts):
        parts.append([_key(f) for f in sim.frames(from_ns=a if a != start else None, to_ns=b)])
    assert [k for part in parts for k in part] == full
    # The part from 00:25 continues the book of the 00:15 market (subscribed at 00:14, before
    # the chunks it generates), which it re-simulated silently.
    cid = market_ids(8, "eth", T0 + 900 * NS_PER_S).condition_id
    clob = [k for k in parts[1] if k[0] == CH_POLYMARKET_WS]
    assert any(cid in k[2] for k in clob[:50])
    with pytest.raises(ConfigError, match="from_ns"):
        next(sim.frames(from_ns=T0 + 1_501 * NS_PER_S))
