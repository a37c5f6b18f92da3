"""A sweep's spec (``polyrl sweep SPEC.toml``) and its deterministic list of trials.

The spec is TOML::

    name = "ppo-lr"                 # optional: the default --name
    config = "my.toml"              # optional: a config file (relative to the spec)

    [data]                          # the splits, checked disjoint as ``polyrl train`` does
    replay = "2024-06-01"           # training days (date globs), or "sample"
    val = "2024-06-02"              # validation days: required, they choose the configuration
    eval = "2024-06-03"             # optional test days: scored for the chosen one only
    root = "recordings/x"           # optional recording root (default [recording] root)

    [set]                           # fixed overrides of every trial (config sections)
    train = { updates = 3 }

    [space]                         # searched keys: ppo.*, features.feature_set, train.envs
    "ppo.lr_actor" = [1e-4, 3e-4]                    # a list: a grid axis
    "ppo.ent_coef" = { loguniform = [0.01, 0.1] }   # random: uniform / loguniform / choice
    seeds = [0, 1]                  # every configuration runs once per seed
    num_samples = 1                 # random draws per grid point (--trials overrides)
    sample_seed = 0                 # seeds the random draws: the same spec, the same trials

    [run]
    max_concurrent = 2              # trials at once (default: as many as CPUs allow)
    cpus_per_trial = 1

    [scheduler]                     # optional ASHA early stopping on a validation metric
    asha = { metric = "val/pnl_per_window", grace = 2, reduction_factor = 2 }

The random draws are made here, from ``sample_seed``, not by Ray: the same spec always names
the same trials, which is what lets a rerun after an interruption skip the finished ones.
Every trial's Config is built and checked before anything runs; a bad key is one
:class:`ConfigError` naming the spec file and the key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polyrl.config import merge
from polyrl.errors import ConfigError
from polyrl.sections import Config, load_config

SPACE_SECTIONS = ("ppo",)
"""Sections whose every key may be searched."""
SPACE_KEYS = ("features.feature_set", "train.envs")
"""Other keys that may be searched (seeds are ``[space] seeds``)."""
DISTRIBUTIONS = ("uniform", "loguniform", "choice")
ASHA_METRICS = ("val/pnl_per_window", "val/pnl")
_TOP = ("name", "config", "data", "set", "space", "run", "scheduler")
_DATA = ("replay", "val", "eval", "root")
_SPACE_META = ("seeds", "num_samples", "sample_seed")
_RUN = ("max_concurrent", "cpus_per_trial")
_ASHA = ("metric", "grace", "reduction_factor")


@dataclass(frozen=True, slots=True, kw_only=True)
class Asha:
    """ASHA early stopping: ``metric`` (maximised) compared at rungs from ``grace`` updates,
    keeping 1/``reduction_factor`` of the trials at each rung."""

    metric: str = "val/pnl_per_window"
    grace: int = 1
    reduction_factor: int = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Trial:
    """One run of the sweep: configuration ``config_id`` (its searched values ``params``)
    with ``seed``; ``name`` is its folder under ``trials/``."""

    name: str
    config_id: str
    seed: int
    params: dict[str, Any]
    overrides: dict[str, Any]
    """Every override of the base config (``[set]``, ``params`` and the seed), nested."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepSpec:
    """A parsed spec (see the module doc)."""

    path: Path
    text: str
    """The file as given (copied into the sweep folder as ``sweep.toml``)."""
    name: str
    config_path: Path | None
    replay: str
    val: str
    eval: str | None
    root: str | None
    fixed: dict[str, Any]
    grid: dict[str, list[Any]]
    random: dict[str, tuple[str, list[Any]]]
    seeds: list[int]
    num_samples: int
    sample_seed: int
    max_concurrent: int | None
    cpus_per_trial: float
    asha: Asha | None
    trials: list[Trial] = field(default_factory=list)


def _err(path: Path, key: str, what: str) -> ConfigError:
    return ConfigError(f"{path}: {key}: {what}")


def _table(path: Path, data: dict[str, Any], key: str, allowed: tuple[str, ...]) -> dict:
    t = data.get(key, {})
    if not isinstance(t, dict):
        raise _err(path, key, "expected a table")
    for k in t:
        if k not in allowed:
            raise _err(path, f"{key}.{k}", f"unknown key (known: {', '.join(allowed)})")
    return t


def _flat(d: dict[str, Any]) -> dict[str, Any]:
    """``{"ppo": {"lr_actor": [..]}}`` -> ``{"ppo.lr_actor": [..]}``: a table under a bare
    section name is that section's keys; under a dotted key it is a distribution."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and "." not in k:
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def _nested(key: str, value: Any) -> dict[str, Any]:
    node: dict[str, Any] = {}
    parts = key.split(".")
    cur = node
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return node


def _int(path: Path, key: str, v: Any, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise _err(path, key, f"expected an integer >= {lo}, got {v!r}")
    return v


def load_spec(path: Path, *, num_samples: int | None = None) -> SweepSpec:
    """Read and check ``path``; expand its trials (``num_samples`` overrides the spec's)."""
    try:
        text = path.read_text()
        data = tomllib.loads(text)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the sweep spec ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    for k in data:
        if k not in _TOP:
            raise _err(path, k, f"unknown key (known: {', '.join(_TOP)})")
    d = _table(path, data, "data", _DATA)
    for k in ("replay", "val"):
        if not isinstance(d.get(k), str) or not d[k].strip():
            raise _err(path, f"data.{k}", "required: a date glob (comma-separated globs)")
    for k in ("eval", "root"):
        if k in d and not isinstance(d[k], str):
            raise _err(path, f"data.{k}", "expected a string")
    fixed = data.get("set", {})
    if not isinstance(fixed, dict):
        raise _err(path, "set", "expected a table of config sections")
    space = dict(data.get("space", {}))
    if not isinstance(data.get("space", {}), dict):
        raise _err(path, "space", "expected a table")
    seeds = space.pop("seeds", [0])
    if (not isinstance(seeds, list) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds)):  # fmt: skip
        raise _err(path, "space.seeds", "expected a non-empty list of integers")
    if len(set(seeds)) != len(seeds):
        raise _err(path, "space.seeds", "a seed is listed twice")
    n_samples = _int(path, "space.num_samples", space.pop("num_samples", 1), 1)
    if num_samples is not None:
        n_samples = _int(path, "--trials", num_samples, 1)
    sample_seed = _int(path, "space.sample_seed", space.pop("sample_seed", 0), 0)
    grid: dict[str, list[Any]] = {}
    rand: dict[str, tuple[str, list[Any]]] = {}
    for key, v in _flat(space).items():
        where = f"space.{key}"
        section = key.split(".", 1)[0]
        if not (section in SPACE_SECTIONS and "." in key) and key not in SPACE_KEYS:
            raise _err(path, where, "not searchable (ppo.*, features.feature_set, train.envs; "
                       "seeds are space.seeds)")  # fmt: skip
        if isinstance(v, list):
            if not v:
                raise _err(path, where, "an empty grid")
            grid[key] = v
        elif isinstance(v, dict):
            if len(v) != 1 or next(iter(v)) not in DISTRIBUTIONS:
                raise _err(path, where, f"expected one of {{{' | '.join(DISTRIBUTIONS)} = ...}}")
            (kind, args), = v.items()  # fmt: skip
            if kind == "choice":
                if not isinstance(args, list) or not args:
                    raise _err(path, where, "choice needs a non-empty list")
            elif (not isinstance(args, list) or len(args) != 2
                  or not all(isinstance(a, int | float) and not isinstance(a, bool)
                             for a in args) or not args[0] < args[1]):  # fmt: skip
                raise _err(path, where, f"{kind} needs [low, high] with low < high")
            elif kind == "loguniform" and args[0] <= 0:
                raise _err(path, where, "loguniform needs low > 0")
            rand[key] = (kind, args)
        else:
            raise _err(path, where, "expected a list (grid) or {uniform|loguniform|choice = ...}")
    run = _table(path, data, "run", _RUN)
    max_conc = run.get("max_concurrent")
    if max_conc is not None:
        max_conc = _int(path, "run.max_concurrent", max_conc, 1)
    cpus = run.get("cpus_per_trial", 1)
    if isinstance(cpus, bool) or not isinstance(cpus, int | float) or cpus <= 0:
        raise _err(path, "run.cpus_per_trial", f"expected a number > 0, got {cpus!r}")
    sched = _table(path, data, "scheduler", ("asha",))
    asha = None
    if "asha" in sched:
        a = sched["asha"]
        if not isinstance(a, dict):
            raise _err(path, "scheduler.asha", "expected a table")
        for k in a:
            if k not in _ASHA:
                raise _err(path, f"scheduler.asha.{k}", f"unknown key (known: {', '.join(_ASHA)})")
        metric = a.get("metric", "val/pnl_per_window")
        if metric not in ASHA_METRICS:
            raise _err(path, "scheduler.asha.metric", f"one of {', '.join(ASHA_METRICS)}")
        asha = Asha(metric=metric, grace=_int(path, "scheduler.asha.grace", a.get("grace", 1), 1),
                    reduction_factor=_int(path, "scheduler.asha.reduction_factor",
                                          a.get("reduction_factor", 2), 2))  # fmt: skip
    cfg_path = None
    if "config" in data:
        if not isinstance(data["config"], str):
            raise _err(path, "config", "expected a file name")
        cfg_path = (path.parent / data["config"]).resolve()
        if not cfg_path.is_file():
            raise _err(path, "config", f"no such file {cfg_path}")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name or "/" in name:
        raise _err(path, "name", "expected a folder name")
    spec = SweepSpec(
        path=path, text=text, name=name, config_path=cfg_path, replay=d["replay"], val=d["val"],
        eval=d.get("eval"), root=d.get("root"), fixed=fixed, grid=grid, random=rand,
        seeds=list(seeds), num_samples=n_samples, sample_seed=sample_seed,
        max_concurrent=max_conc, cpus_per_trial=float(cpus), asha=asha,
    )  # fmt: skip
    spec.trials.extend(expand(spec))
    return spec


def _draw(rng: np.random.Generator, kind: str, args: list[Any]) -> Any:
    if kind == "choice":
        return args[int(rng.integers(len(args)))]
    lo, hi = float(args[0]), float(args[1])
    if kind == "uniform":
        return float(rng.uniform(lo, hi))
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def config_id(params: dict[str, Any]) -> str:
    """A short stable name of a configuration's searched values."""
    blob = json.dumps(params, sort_keys=True).encode()
    return hashlib.blake2b(blob, digest_size=4).hexdigest()


def expand(spec: SweepSpec) -> list[Trial]:
    """Every trial: each grid point x ``num_samples`` random draws (only one draw when the
    space has no random key) x each seed; each trial's Config is built to check it."""
    rng = np.random.default_rng(spec.sample_seed)
    keys = list(spec.grid)
    draws = spec.num_samples if spec.random else 1
    configs: list[dict[str, Any]] = []
    for point in itertools.product(*(spec.grid[k] for k in keys)):
        for _ in range(draws):
            params = dict(zip(keys, point, strict=True))
            params.update({k: _draw(rng, kind, a) for k, (kind, a) in spec.random.items()})
            configs.append(params)
    trials = []
    for i, params in enumerate(configs):
        cid = f"c{i:02d}-{config_id(params)}"
        over: dict[str, Any] = dict(spec.fixed)
        for k, v in params.items():
            over = merge(over, _nested(k, v))
        for seed in spec.seeds:
            o = merge(over, {"train": {"seed": seed}})
            trials.append(Trial(name=f"{cid}-s{seed}", config_id=cid, seed=seed,
                                params=params, overrides=o))  # fmt: skip
            build_config(spec, o)
    return trials


def build_config(spec: SweepSpec, overrides: dict[str, Any]) -> Config:
    """A trial's Config: defaults, the spec's config file, then ``overrides``; a bad key is a
    ConfigError naming the spec."""
    try:
        return load_config(spec.config_path, overrides)
    except ConfigError as e:
        raise ConfigError(f"{spec.path}: {e}") from None
