"""configs/*.toml -> frozen dataclasses. Unknown or mistyped keys are errors naming them.

Each component's config dataclass lives beside the component; this module only knows how
to read TOML into any of them (:func:`from_mapping`) and how they compose into the one
:class:`Config` a command runs with. It imports no component: :mod:`polyrl.sections`
registers each section's class (:func:`register_sections`), so build or load a Config
after importing that module (``from polyrl.sections import Config, load_config``).

Resolution order: dataclass defaults, then the file (``configs/default.toml`` unless another
is given), then CLI overrides. The resolved config is what runs save into their run
directory (:func:`to_dict`).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args, get_origin

from polyrl.errors import ConfigError
from polyrl.events import ASSETS

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def from_mapping(cls: type[T], data: Mapping[str, Any], *, where: str = "", source: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, checking every key and type.

    ``where`` is the dotted path of this table (for messages), ``source`` the file name.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_loc(source, where)}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"{_loc(source, path)}: unknown key {key!r} (known: {known})")
        kwargs[key] = _coerce(hints[key], value, path, source)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{_loc(source, where or cls.__name__)}: {e}") from None
    return obj


def _loc(source: str, path: str) -> str:
    return f"{source}: {path}" if source else path


def _coerce(tp: Any, value: Any, path: str, source: str) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):  # a hint names a class
        return from_mapping(tp, value, where=path, source=source)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, path, source)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{_loc(source, path)}: bad value {value!r}")
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{_loc(source, path)}: {value!r} is not one of {choices}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{_loc(source, path)}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{path}[{i}]", source) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{_loc(source, path)}: expected a table, got {value!r}")
        return {str(k): _coerce(args[1], v, f"{path}.{k}", source) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{_loc(source, path)}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{_loc(source, path)}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{_loc(source, path)}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{_loc(source, path)}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{_loc(source, path)}: unsupported config type {tp!r}")


def to_dict(obj: Any) -> Any:
    """A config dataclass -> plain dict/list values (TOML/JSON-ready)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two nested mappings (``over`` wins)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing or malformed file is a ConfigError naming it."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None


# ---------------------------------------------------------------------------------------------
# The composed config
#
# This module sits on the ground floor: it imports no component. Each section's dataclass is
# registered here by the one module that names them all, :mod:`polyrl.sections`, which
# whatever builds or loads a Config imports (the CLI, parity, the examples); code handed a
# built Config (replay, live, the parts) finds every section's class already registered.

SECTION_NAMES = (
    "sources",
    "recording",
    "sim",
    "features",
    "engine",
    "broker",
    "baselines",
    "clock",
    "ppo",
    "train",
    "importer",
    "storage",
)
"""The sections of a :class:`Config`, in the order of its fields (and of a saved config)."""

_SECTIONS: dict[str, type[DataclassInstance]] = {}


def register_sections(**sections: type) -> None:
    """Give each named section (one of :data:`SECTION_NAMES`) its dataclass. Registering the
    same class again is a no-op; another class under a taken name is an error (two parts
    would claim one table of the TOML)."""
    for name, cls in sections.items():
        if name not in SECTION_NAMES:
            raise ValueError(f"unknown config section {name!r} (known: {SECTION_NAMES})")
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"config section {name!r}: {cls!r} is not a dataclass")
        if _SECTIONS.setdefault(name, cls) is not cls:
            raise ValueError(f"config section {name!r} is already {_SECTIONS[name].__name__}")


def section_types() -> dict[str, type[DataclassInstance]]:
    """Every section's dataclass, in :data:`SECTION_NAMES` order; a section nobody registered
    is a ConfigError saying what to import (never a silent default)."""
    missing = [n for n in SECTION_NAMES if n not in _SECTIONS]
    if missing:
        raise ConfigError(
            f"config sections {', '.join(missing)} are not registered: import polyrl.sections "
            "(the CLI does) before building or loading a Config"
        )
    return {n: _SECTIONS[n] for n in SECTION_NAMES}


def _default(name: str) -> Any:
    def make() -> Any:
        return section_types()[name]()

    return make


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Everything a polyrl command runs with. Sections mirror ``configs/default.toml``; each
    is its part's own dataclass (registered by :mod:`polyrl.sections`)."""

    assets: tuple[str, ...] = ASSETS
    """Assets to record and trade, a subset of btc, eth, sol, xrp."""
    sources: Any = field(default_factory=_default("sources"))
    """Venue endpoints, subscriptions and polling schedules (polyrl.sources.config)."""
    recording: Any = field(default_factory=_default("recording"))
    """Where and how recordings are written (polyrl.recording.writer)."""
    sim: Any = field(default_factory=_default("sim"))
    """Synthetic market parameters (polyrl.sim.config)."""
    features: Any = field(default_factory=_default("features"))
    """Feature set and feature parameters (polyrl.features.engine)."""
    engine: Any = field(default_factory=_default("engine"))
    """Decision ticks, fill latency, settlement timeout (polyrl.engine)."""
    broker: Any = field(default_factory=_default("broker"))
    """Paper execution: capital, sizing, position rules, reward (polyrl.broker)."""
    baselines: Any = field(default_factory=_default("baselines"))
    """Baseline strategy parameters (polyrl.policies.baselines)."""
    clock: Any = field(default_factory=_default("clock"))
    """The live clock: wall time, or a shared accelerated clock for loopback runs."""
    ppo: Any = field(default_factory=_default("ppo"))
    """PPO hyperparameters (polyrl.rl.ppo; defaults in configs/ppo.toml)."""
    train: Any = field(default_factory=_default("train"))
    """Training run settings (polyrl.rl.train)."""
    importer: Any = field(default_factory=_default("importer"))
    """Public archives ``polyrl import`` reads (polyrl.importers.config)."""
    storage: Any = field(default_factory=_default("storage"))
    """Object storage endpoint and timeouts (polyrl.storage); credentials from the env."""

    def __post_init__(self) -> None:
        bad = [a for a in self.assets if a not in ASSETS]
        if bad or not self.assets:
            raise ValueError(f"assets must be a non-empty subset of {list(ASSETS)}, got {bad}")


def config_from_mapping(data: Mapping[str, Any], *, source: str = "") -> Config:
    """Build a :class:`Config` from a nested mapping (a parsed TOML file plus overrides)."""
    sections = section_types()
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "assets":
            kwargs["assets"] = _coerce(tuple[str, ...], value, "assets", source)
        elif key in sections:
            kwargs[key] = from_mapping(sections[key], value, where=key, source=source)
        else:
            known = ", ".join(["assets", *sections])
            raise ConfigError(f"{_loc(source, key)}: unknown key {key!r} (known: {known})")
    try:
        return Config(**kwargs)
    except ValueError as e:
        raise ConfigError(f"{_loc(source, 'assets')}: {e}") from None


DEFAULT_CONFIG_NAMES = ("default.toml", "ppo.toml")


def default_config_paths() -> list[Path]:
    """``configs/default.toml`` and ``configs/ppo.toml`` of the checkout this package runs
    from, where they exist (a wheel install has neither: the dataclass defaults equal them)."""
    base = Path(__file__).resolve().parent.parent / "configs"
    return [base / n for n in DEFAULT_CONFIG_NAMES if (base / n).exists()]


def default_config_path() -> Path | None:
    """``configs/default.toml``, if there is one."""
    paths = [p for p in default_config_paths() if p.name == "default.toml"]
    return paths[0] if paths else None


def load_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Dataclass defaults, then ``configs/default.toml`` and ``configs/ppo.toml``, then the
    file at ``path`` (a partial config is fine: it overrides what it names), then
    ``overrides``. An unknown or mistyped key anywhere is a ConfigError naming file and key."""
    data: dict[str, Any] = {}
    sources = []
    for p in default_config_paths():
        layer = read_toml(p)
        config_from_mapping(layer, source=str(p))  # validate each file on its own
        data = merge(data, layer)
        sources.append(str(p))
    if path is not None:
        layer = read_toml(path)
        config_from_mapping(merge(data, layer), source=str(path))
        data = merge(data, layer)
        sources.append(str(path))
    if overrides:
        data = merge(data, overrides)
    return config_from_mapping(data, source=" + ".join(sources) if overrides is None else "options")
