"""Every config section and the part that owns it: the one module that names them all.

:mod:`polyrl.config` sits on the ground floor and imports no component, so it cannot know
the sections' dataclasses; this module registers them. Import it (the CLI, parity and
:mod:`polyrl.analysis.examples` do) before building or loading a
:class:`~polyrl.config.Config`; it re-exports what a caller needs, so ``from polyrl.sections
import Config, load_config`` is the one obvious entry point for tests and notebooks. Without
it, building a Config is a ConfigError that says to import this module, never a config with
a section silently left out.
"""

from __future__ import annotations

from polyrl.broker import BrokerConfig
from polyrl.clock import ClockConfig
from polyrl.config import Config, config_from_mapping, load_config, register_sections
from polyrl.engine import EngineConfig
from polyrl.features.engine import FeatureConfig
from polyrl.importers.config import ImportConfig
from polyrl.policies.baselines import BaselineConfig
from polyrl.recording.writer import RecordingConfig
from polyrl.rl.ppo import PPOConfig
from polyrl.rl.train import TrainConfig
from polyrl.sim.config import SimConfig
from polyrl.sources.config import SourcesConfig
from polyrl.storage import StorageConfig

register_sections(
    sources=SourcesConfig,
    recording=RecordingConfig,
    sim=SimConfig,
    features=FeatureConfig,
    engine=EngineConfig,
    broker=BrokerConfig,
    baselines=BaselineConfig,
    clock=ClockConfig,
    ppo=PPOConfig,
    train=TrainConfig,
    importer=ImportConfig,
    storage=StorageConfig,
)

__all__ = ["Config", "config_from_mapping", "load_config"]
