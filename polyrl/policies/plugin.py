"""Your own strategy: ``--strategy package.module:Name`` or ``--strategy path/to/file.py:Name``.

The spec names a class that follows the :class:`~polyrl.policies.base.Policy` protocol
(``polyrl/policies/base.py``; the baselines in ``polyrl/policies/baselines.py`` are examples):

- ``act(self, obs, tradable)``: ``obs`` float32 [M, F] (one row per market, columns in the
  order of the run's feature set), ``tradable`` bool [M]; returns one action per market,
  an integer array [M] of 0 HOLD, 1 BUY (long Up), 2 SELL (long Down). Markets that may not
  trade are held whatever it returns. It must not modify ``obs``.
- ``name``: a non-empty ``str`` (a class or instance attribute), the strategy's label in
  logs and summaries.

The class is constructed once per run with the keyword arguments its ``__init__`` declares
among ``feature_set`` (the run's :class:`~polyrl.features.sets.FeatureSet`: ``names``,
``index(name)``, ``dim``) and ``seed`` (``int``, the run's ``--seed``); a class without an
``__init__`` gets none. Anything else it requires is refused.

A module spec is imported as Python imports any module (``sys.path``, which includes
``PYTHONPATH``; the current directory is tried last). A file spec is imported on its own
under a private module name (its directory is not put on ``sys.path``: a strategy spread
over several files is a package, named by module).

Every way a spec can be wrong is a :class:`~polyrl.errors.ConfigError` naming what is
wrong: the spec's syntax, the module or file, the attribute, not a class, a missing method
or attribute, a constructor argument polyrl does not pass, the constructor's own exception.
At run time, an ``act`` that returns the wrong shape or a value outside 0/1/2 is refused the
same way; an exception raised inside the strategy's own code keeps its traceback (it is a
bug in that code, and the traceback is what finds it).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import keyword
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polyrl.errors import ConfigError

if TYPE_CHECKING:
    from polyrl.features.sets import FeatureSet
    from polyrl.policies.base import Policy
    from polyrl.policies.baselines import BaselineConfig

PROTOCOL_DOC = "the Policy protocol, polyrl/policies/base.py"
"""Where the protocol a strategy follows is written down (named in every error)."""
PASSED = ("feature_set", "seed")
"""The keyword arguments a strategy's constructor may declare."""


def is_spec(strategy: str) -> bool:
    """Whether ``--strategy`` names a class (``module:Name``) rather than a baseline."""
    return ":" in strategy


def _identifier(s: str) -> bool:
    return s.isidentifier() and not keyword.iskeyword(s)


def parse_spec(spec: str) -> tuple[str, str, bool]:
    """``spec`` -> (module or file path, class name, is_file); bad syntax is a ConfigError."""
    target, sep, attr = spec.rpartition(":")
    usage = "expected package.module:Name or path/to/file.py:Name"
    if not sep or not target or not attr:
        raise ConfigError(f"--strategy {spec!r}: {usage}")
    if not _identifier(attr):
        raise ConfigError(f"--strategy {spec!r}: {attr!r} is not a class name ({usage})")
    if target.endswith(".py"):
        return target, attr, True
    if not all(_identifier(p) for p in target.split(".")):
        raise ConfigError(f"--strategy {spec!r}: {target!r} is not a module name ({usage})")
    return target, attr, False


def _import_module(spec: str, module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        # Not found itself (or a package above it), rather than something it imports.
        if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
            raise ConfigError(
                f"--strategy {spec}: importing module {module!r} failed: {type(e).__name__}: {e}"
            ) from None
        cwd = str(Path.cwd())
        if cwd not in sys.path and "" not in sys.path:
            sys.path.append(cwd)
            try:
                return importlib.import_module(module)
            except ModuleNotFoundError:
                pass
            finally:
                sys.path.remove(cwd)
        raise ConfigError(
            f"--strategy {spec}: module {module!r} not found (put its directory on "
            "PYTHONPATH, or give a file: path/to/file.py:Name)"
        ) from None
    except Exception as e:
        raise ConfigError(
            f"--strategy {spec}: importing module {module!r} failed: {type(e).__name__}: {e}"
        ) from None


def _import_file(spec: str, path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"--strategy {spec}: file {path} not found")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"_polyrl_strategy_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ConfigError(f"--strategy {spec}: file {path} cannot be imported")
    mod = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = mod  # dataclasses and pickling look their module up here
    try:
        loader_spec.loader.exec_module(mod)
    except Exception as e:
        del sys.modules[name]
        raise ConfigError(
            f"--strategy {spec}: importing file {path} failed: {type(e).__name__}: {e}"
        ) from None
    return mod


def _kwargs(spec: str, cls: type, fset: FeatureSet, seed: int) -> dict[str, Any]:
    """The keyword arguments of :data:`PASSED` the constructor declares."""
    offer: dict[str, Any] = {"feature_set": fset, "seed": seed}
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):  # a builtin-backed class: give it nothing
        return {}
    params = sig.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return offer
    out = {}
    for p in params:
        if p.name in offer and p.kind is not inspect.Parameter.POSITIONAL_ONLY:
            out[p.name] = offer[p.name]
        elif p.default is inspect.Parameter.empty and p.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            raise ConfigError(
                f"--strategy {spec}: {cls.__name__}() requires argument {p.name!r}, which "
                f"polyrl does not pass (it passes only {' and '.join(PASSED)}, by keyword, "
                "to a constructor that declares them)"
            )
    return out


def _check_act(spec: str, cls: type, act: Any) -> None:
    """``act`` of an instance (bound): present, callable, callable as ``act(obs, tradable)``."""
    if act is None:
        raise ConfigError(
            f"--strategy {spec}: class {cls.__name__} has no method `act` "
            f"(act(obs, tradable) -> actions; {PROTOCOL_DOC})"
        )
    if not callable(act):
        raise ConfigError(
            f"--strategy {spec}: `act` of class {cls.__name__} is not a method ({PROTOCOL_DOC})"
        )
    try:
        sig = inspect.signature(act)
    except (TypeError, ValueError):  # no signature to read (a builtin): the call will tell
        return
    try:
        sig.bind(np.zeros((1, 1), np.float32), np.ones(1, bool))
    except TypeError:
        raise ConfigError(
            f"--strategy {spec}: {cls.__name__}.act{sig} cannot be called as "
            f"act(obs, tradable) ({PROTOCOL_DOC})"
        ) from None


class PluginPolicy:
    """A user's strategy as the Engine sees it: its ``name``, and its actions checked for
    shape and values before they reach the broker."""

    def __init__(self, inner: Any, spec: str, cls: type, source: dict[str, Any]) -> None:
        self.inner = inner
        self.spec = spec
        self.cls = cls
        self.name: str = inner.name
        """The strategy's own ``name``."""
        self.source = source
        """What ran: the spec, the class, its module's file and the file's sha256."""

    def act(self, obs: np.ndarray, tradable: np.ndarray) -> np.ndarray:
        out = self.inner.act(obs, tradable)
        arr = np.asarray(out)
        m = obs.shape[0]
        if arr.shape != (m,):
            raise ConfigError(
                f"--strategy {self.spec}: {self.cls.__name__}.act returned shape "
                f"{arr.shape}, expected ({m},): one action per market"
            )
        if arr.dtype.kind not in "biu" and not (
            arr.dtype.kind == "f" and np.array_equal(arr, np.round(arr))
        ):
            raise ConfigError(
                f"--strategy {self.spec}: {self.cls.__name__}.act returned dtype {arr.dtype}, "
                "expected integer actions 0 HOLD, 1 BUY, 2 SELL"
            )
        bad = ~np.isin(arr, (0, 1, 2))
        if bad.any():
            raise ConfigError(
                f"--strategy {self.spec}: {self.cls.__name__}.act returned {arr[bad][0].item()!r}, "
                "expected 0 HOLD, 1 BUY or 2 SELL"
            )
        return arr.astype(np.int64)


def load_strategy(spec: str, fset: FeatureSet, *, seed: int = 0) -> PluginPolicy:
    """The class ``spec`` names, checked against the Policy protocol and constructed (see the
    module doc); every way it can be wrong is a ConfigError naming what is wrong."""
    target, attr, is_file = parse_spec(spec)
    if is_file:
        path = Path(target)
        mod = _import_file(spec, path)
        where = f"file {target}"
    else:
        mod = _import_module(spec, target)
        where = f"module {target!r}"
    if not hasattr(mod, attr):
        raise ConfigError(f"--strategy {spec}: {where} has no attribute {attr!r}")
    cls = getattr(mod, attr)
    if not inspect.isclass(cls):
        raise ConfigError(
            f"--strategy {spec}: {attr!r} is a {type(cls).__name__}, not a class ({PROTOCOL_DOC})"
        )
    if not hasattr(cls, "act"):  # before constructing: the cheapest refusal first
        _check_act(spec, cls, None)
    kwargs = _kwargs(spec, cls, fset, seed)
    try:
        inst = cls(**kwargs)
    except Exception as e:
        raise ConfigError(
            f"--strategy {spec}: {cls.__name__}() failed: {type(e).__name__}: {e}"
        ) from None
    name = getattr(inst, "name", None)
    if name is None:
        raise ConfigError(
            f"--strategy {spec}: class {cls.__name__} has no attribute `name` "
            f"(a str naming the strategy; {PROTOCOL_DOC})"
        )
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f"--strategy {spec}: {cls.__name__}.name is {name!r}, expected a non-empty str"
        )
    _check_act(spec, cls, getattr(inst, "act", None))
    file = getattr(mod, "__file__", None)
    source: dict[str, Any] = {"spec": spec, "class": cls.__qualname__}
    if file:
        source["file"] = str(Path(file).resolve())
        source["sha256"] = hashlib.sha256(Path(file).read_bytes()).hexdigest()
    return PluginPolicy(inst, spec, cls, source)


def resolve_spec(spec: str) -> str:
    """A spec as a run saves it: a file path made absolute (a replay from elsewhere, e.g.
    ``polyrl parity``, then finds the same file); a module spec as given."""
    target, attr, is_file = parse_spec(spec)
    return f"{Path(target).resolve()}:{attr}" if is_file else spec


def label(strategy: str) -> str:
    """A strategy's name in run directories and tables: a baseline's own name, a spec's
    class name."""
    return parse_spec(strategy)[1] if is_spec(strategy) else strategy


def make_strategy(
    strategy: str, fset: FeatureSet, config: BaselineConfig, *, seed: int = 0
) -> Policy:
    """A baseline by name or a user's class by spec (``module:Name``, ``file.py:Name``)."""
    if is_spec(strategy):
        return load_strategy(strategy, fset, seed=seed)
    from polyrl.policies.baselines import make_baseline

    return make_baseline(strategy, fset, config, seed=seed)
