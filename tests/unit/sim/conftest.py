"""Shared simulations for the simulator tests (each generated once per session)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from polyrl.events import NS_PER_S, Frame
from polyrl.sim import SimConfig, Simulation
from polyrl.sources.config import SourcesConfig

T0 = 1_717_200_000 * NS_PER_S
"""2024-06-01T00:00:00Z: a window start (multiple of 900 s)."""
ALL = ("btc", "eth", "sol", "xrp")


def run(
    start_ns: int,
    seconds: int,
    *,
    seed: int = 7,
    assets: tuple[str, ...] = ALL,
    cfg: SimConfig | None = None,
    sources: SourcesConfig | None = None,
) -> tuple[Simulation, list[Frame]]:
    """A simulation and all its frames."""
    sim = Simulation(
        cfg or SimConfig(),
        sources or SourcesConfig(),
        assets=assets,
        start_ns=start_ns,
        end_ns=start_ns + seconds * NS_PER_S,
        seed=seed,
    )
    return sim, list(sim.frames())


def ws_objects(frames: list[Frame], channel: str) -> Iterator[tuple[Frame, dict[str, Any]]]:
    """Every JSON event of the frames of one channel (array frames unpacked, in order)."""
    for f in frames:
        if f.channel != channel:
            continue
        obj = json.loads(f.text)
        for o in obj if isinstance(obj, list) else [obj]:
            yield f, o


@dataclass
class Span:
    """A simulation with its frames."""

    sim: Simulation
    frames: list[Frame] = field(default_factory=list)


@pytest.fixture(scope="session")
def short() -> Span:
    """Seven minutes over a window close: 10 min into the 00:00 window to 3 min after its
    resolution polls, all assets (the 00:15 window is discovered at the start and
    subscribed at 00:14)."""
    sim, frames = run(T0 + 600 * NS_PER_S, 420)
    return Span(sim, frames)


@pytest.fixture(scope="session")
def short_twice() -> list[Frame]:
    """The same span as ``short``, generated again."""
    return run(T0 + 600 * NS_PER_S, 420)[1]


@pytest.fixture(scope="session")
def simulate():  # type: ignore[no-untyped-def]
    """:func:`run` (test modules cannot import this conftest under importlib mode)."""
    return run


@pytest.fixture(scope="session")
def events_of():  # type: ignore[no-untyped-def]
    """:func:`ws_objects`."""
    return ws_objects
