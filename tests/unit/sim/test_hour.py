"""One simulated hour of all four assets at the default config, parsed by the real Parser."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

from polyrl.events import ASSETS, NS_PER_S, WINDOW_NS
from polyrl.sim import Simulation, WindowOutcome
from polyrl.sim.config import SimConfig
from polyrl.sim.frames import TYPICAL_ROWS_PER_ASSET_HOUR
from polyrl.sources.config import SourcesConfig
from polyrl.sources.parse import Parser

T0 = 1_717_286_400 * NS_PER_S  # 2024-06-02T00:00:00Z


@dataclass
class Hour:
    frames: int = 0
    ordered: bool = True
    rows: Counter[tuple[str, str | None]] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    resolutions: dict[str, str] = field(default_factory=dict)
    boundary_ticks: dict[tuple[str, int], str] = field(default_factory=dict)
    outcomes: list[WindowOutcome] = field(default_factory=list)


@pytest.fixture(scope="module")
def hour() -> Hour:
    sim = Simulation(
        SimConfig(),
        SourcesConfig(),
        assets=ASSETS,
        start_ns=T0,
        end_ns=T0 + 3600 * NS_PER_S,
        seed=5,
    )
    out = Hour(outcomes=sim.window_outcomes())
    parser = Parser()
    last = 0
    for f in sim.frames():
        out.frames += 1
        out.ordered &= f.recv_ns >= last
        last = f.recv_ns
        for ev in parser.parse(f):
            out.rows[(ev.stream, ev.asset)] += 1
            if ev.stream == "recorder.status":
                out.errors.append(ev.fields["message"])
            elif ev.stream == "polymarket.resolution":
                out.resolutions[ev.fields["slug"]] = ev.fields["outcome"]
            elif ev.stream == "reference.price" and ev.exch_ns % WINDOW_NS == 0:
                out.boundary_ticks[(ev.asset, ev.exch_ns)] = ev.fields["full_accuracy"]
    return out


def test_an_hour_is_about_a_million_frames_in_order_without_parse_errors(hour: Hour) -> None:
    assert 700_000 < hour.frames < 2_000_000
    assert hour.ordered
    assert hour.errors == []


@pytest.mark.parametrize("stream", sorted(TYPICAL_ROWS_PER_ASSET_HOUR))
def test_every_asset_appears_in_every_stream_at_documented_rates(hour: Hour, stream: str) -> None:
    lo, hi = TYPICAL_ROWS_PER_ASSET_HOUR[stream]
    for asset in ASSETS:
        n = hour.rows[(stream, asset)]
        assert lo <= n <= hi, f"{stream} {asset}: {n} rows, documented {lo}..{hi}"


def test_resolutions_agree_with_the_reference_path(hour: Hour) -> None:
    # Windows ending at 00:15, 00:30 and 00:45 resolve within the hour (01:00's after it).
    decided = [o for o in hour.outcomes if o.window_end_ns < T0 + 3540 * NS_PER_S]
    assert len(decided) == 12
    for o in decided:
        assert hour.resolutions[o.slug] == ("Up" if o.close_e18 >= o.open_e18 else "Down")
        # The frames carry the very ticks the outcome is decided on.
        close = hour.boundary_ticks[(o.asset, o.window_end_ns)]
        assert int(close) == o.close_e18
        if (o.asset, o.window_start_ns) in hour.boundary_ticks:
            assert int(hour.boundary_ticks[(o.asset, o.window_start_ns)]) == o.open_e18


def test_tick_size_changes_happen(hour: Hour) -> None:
    # Not every asset's book leaves [0.04, 0.96] in every hour, but some always do.
    assert sum(hour.rows[("polymarket.tick_size", a)] for a in ASSETS) >= 4
