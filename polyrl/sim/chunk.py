"""What every frame generator of one 5-minute chunk is handed: :class:`ChunkCtx`.

Shared by the Binance, Polymarket and reference-feed generators (see
:mod:`polyrl.sim.frames` for how a run is cut into chunks).
"""

from __future__ import annotations

from dataclasses import dataclass

from polyrl.sim.config import SimConfig
from polyrl.sim.paths import STEP_NS, Skeleton
from polyrl.sources.config import SourcesConfig


@dataclass(slots=True)
class ChunkCtx:
    """What every generator of one chunk needs. ``c0``/``c1`` bound the full 5-minute chunk."""

    sk: Skeleton
    cfg: SimConfig
    sources: SourcesConfig
    seed: int
    chunk: int
    """Absolute chunk index: ``c0 // CHUNK_NS``."""
    c0: int
    c1: int
    start_ns: int
    end_ns: int

    @property
    def k0(self) -> int:
        """First 100 ms step of the chunk."""
        return (self.c0 - self.sk.t0_ns) // STEP_NS

    @property
    def k1(self) -> int:
        """One past the last 100 ms step of the chunk."""
        return (self.c1 - self.sk.t0_ns) // STEP_NS
