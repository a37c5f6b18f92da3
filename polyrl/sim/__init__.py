"""Synthetic markets for demos, tests and the learning test: raw frames in the venues' real
wire formats, generated deterministically from a seed (no network, no clock, no files).

``generate_frames(cfg, sources, assets=..., start_ns=..., end_ns=..., seed=...)`` yields
:class:`polyrl.events.Frame` objects in receive order; :class:`Simulation` also exposes the
skeleton paths and each window's ground truth (:meth:`Simulation.window_outcomes`).
``polyrl.sim.record`` turns the frames into a recording.
"""

from polyrl.sim.config import SimConfig
from polyrl.sim.frames import Simulation, generate_frames, window_outcomes
from polyrl.sim.reference import WindowOutcome, resolve

__all__ = [
    "SimConfig",
    "Simulation",
    "WindowOutcome",
    "generate_frames",
    "resolve",
    "window_outcomes",
]
