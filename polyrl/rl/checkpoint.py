"""PPO checkpoints: a directory that resumes training bit-identically.

Layout of ``<dir>/``::

    weights.safetensors     actor and critic weights   (model.actor.layers.0.weight, ...)
    optimizer.safetensors   both Adam states            (opt_actor.layers.0.weight.m, ...,
                                                         opt_actor.step, opt_actor.learning_rate)
    meta.json               format, obs_dim, n_actions, seed, update count, PPOConfig,
                            normaliser statistics, action-sampling and minibatch generator
                            states,
                            the feature set, SHA-256 of both tensor files, polyrl and mlx
                            versions, and the caller's ``meta`` verbatim (e.g. a data
                            cursor, run name)

The feature set is named by the caller: ``meta["feature_set"]`` (name) and
``meta["feature_set_version"]``; :func:`load_checkpoint` checks them, and the observation
width, against what the caller expects. Writes are atomic: everything goes to a temporary
sibling directory that is renamed into place, so a crash leaves either the old checkpoint or
the new one, never a mixture. Every load failure is a :class:`~polyrl.errors.CheckpointError`
naming the file (and tensor), or a :class:`~polyrl.errors.FeatureSetMismatch` naming the
expected and found feature set.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np

from polyrl.errors import CheckpointError, FeatureSetMismatch
from polyrl.rl.ppo import PPO, PPOConfig

FORMAT = "polyrl.ppo-checkpoint"
FORMAT_VERSION = 2
"""Written by :func:`save_checkpoint`. Version 2 replaced version 1's MLX PRNG key (``rng.key``)
with the numpy action-sampling generator's state (``rng.sample_rng``); the tensors are the
same."""
READABLE_VERSIONS = (1, 2)
META = "meta.json"
WEIGHTS = "weights.safetensors"
OPTIMIZER = "optimizer.safetensors"
# Which tensor-name prefixes live in which file.
_FILES = {WEIGHTS: ("model.",), OPTIMIZER: ("opt_actor.", "opt_critic.")}


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    directory: str | os.PathLike[str], ppo: PPO, meta: dict[str, Any] | None = None
) -> Path:
    """Write ``ppo``'s complete state to ``directory`` atomically; returns the directory.

    ``meta`` must be JSON-serialisable; it is stored verbatim and returned by
    :func:`load_checkpoint`. Give ``feature_set`` and ``feature_set_version`` in it so loads
    can be checked. An existing checkpoint at ``directory`` is replaced.
    """
    directory = Path(directory)
    meta = dict(meta or {})
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as e:
        raise CheckpointError(
            f"{directory / META}: caller meta is not JSON-serialisable: {e}"
        ) from None
    state = ppo.state_dict()
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=parent))
    try:
        hashes = {}
        for fname, prefixes in _FILES.items():
            arrays = {k: mx.array(v) for k, v in state["tensors"].items() if k.startswith(prefixes)}
            mx.save_safetensors(str(tmp / fname), arrays, metadata={"format": FORMAT})
            _fsync(tmp / fname)
            hashes[fname] = _sha256(tmp / fname)
        info = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "obs_dim": state["obs_dim"],
            "n_actions": state["n_actions"],
            "seed": state["seed"],
            "updates": state["updates"],
            "config": state["config"],
            "normaliser": state["normaliser"],
            "rng": {"sample_rng": state["sample_rng"], "perm_rng": state["perm_rng"]},
            "feature_set": meta.get("feature_set"),
            "feature_set_version": meta.get("feature_set_version"),
            "sha256": hashes,
            "versions": {"polyrl": _version("polyrl"), "mlx": _version("mlx")},
            "meta": meta,
        }
        with open(tmp / META, "w", encoding="utf-8") as fh:
            json.dump(info, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        old = None
        if directory.exists():
            old = parent / f".{directory.name}.old-{uuid.uuid4().hex}"
            os.rename(directory, old)
        os.rename(tmp, directory)
        _fsync(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _read_meta(directory: Path) -> dict[str, Any]:
    path = directory / META
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (not a polyrl checkpoint?)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt JSON ({e})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} file")
    if info.get("format_version") not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path}: format_version {info.get('format_version')!r}, "
            f"this polyrl reads {', '.join(map(str, READABLE_VERSIONS))}"
        )
    required = ("obs_dim", "n_actions", "seed", "updates", "config", "normaliser", "rng", "meta")
    for key in required:
        if key not in info:
            raise CheckpointError(f"{path}: missing key {key!r}")
    return info


def _check_feature_set(
    directory: Path, info: dict[str, Any], expect: str | tuple[str, str | int] | None
) -> None:
    if expect is None:
        return
    name, version = (expect, None) if isinstance(expect, str) else expect
    found_name, found_version = info.get("feature_set"), info.get("feature_set_version")
    if found_name != name or (version is not None and found_version != version):
        want = f"{name!r}" + ("" if version is None else f" version {version!r}")
        raise FeatureSetMismatch(
            f"checkpoint {directory} was built for feature set {found_name!r} version "
            f"{found_version!r}, expected {want}"
        )


def _read_tensors(
    directory: Path, info: dict[str, Any], expected: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    hashes = info.get("sha256", {})
    for fname, prefixes in _FILES.items():
        path = directory / fname
        if not path.is_file():
            raise CheckpointError(f"{path}: missing")
        if fname in hashes and _sha256(path) != hashes[fname]:
            raise CheckpointError(f"{path}: corrupt (SHA-256 differs from the one in {META})")
        try:
            arrays = mx.load(str(path))
        except (RuntimeError, ValueError, OSError) as e:
            raise CheckpointError(f"{path}: corrupt or truncated safetensors ({e})") from None
        if not isinstance(arrays, dict):
            raise CheckpointError(f"{path}: not a safetensors file")
        wanted = {k: v for k, v in expected.items() if k.startswith(prefixes)}
        for name, ref in wanted.items():
            if name not in arrays:
                raise CheckpointError(f"{path}: missing tensor {name!r}")
            got = tuple(arrays[name].shape)
            if got != tuple(ref.shape):
                raise CheckpointError(
                    f"{path}: tensor {name!r} has shape {got}, expected {tuple(ref.shape)}"
                )
            out[name] = np.array(arrays[name])
        extra = sorted(set(arrays) - set(wanted))
        if extra:
            raise CheckpointError(f"{path}: unexpected tensor {extra[0]!r}")
    return out


def _sample_rng_state(info: dict[str, Any]) -> dict[str, Any]:
    """The action-sampling generator's state; for a version-1 checkpoint (which held an MLX
    PRNG key instead) a generator seeded from that key, so old agents load and act (a resumed
    run then samples differently than the old code would have)."""
    if info["format_version"] == 1:
        key = [int(k) for k in info["rng"]["key"]]
        return dict(np.random.default_rng(key).bit_generator.state)
    return dict(info["rng"]["sample_rng"])


def load_checkpoint(
    directory: str | os.PathLike[str],
    *,
    expect_obs_dim: int | None = None,
    expect_feature_set: str | tuple[str, str | int] | None = None,
    compile: bool = True,
) -> tuple[PPO, dict[str, Any]]:
    """Rebuild the PPO agent saved in ``directory``; returns ``(ppo, caller_meta)``.

    ``expect_feature_set`` is a name or ``(name, version)``; a checkpoint built for another
    feature set, or for another observation width than ``expect_obs_dim``, raises
    FeatureSetMismatch. Anything missing, corrupt or mis-shaped raises CheckpointError naming
    the file and tensor.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {directory}")
    info = _read_meta(directory)
    _check_feature_set(directory, info, expect_feature_set)
    if expect_obs_dim is not None and info["obs_dim"] != expect_obs_dim:
        raise FeatureSetMismatch(
            f"checkpoint {directory} takes {info['obs_dim']} observation features "
            f"(feature set {info.get('feature_set')!r}), expected {expect_obs_dim}"
        )
    try:
        config = PPOConfig(**info["config"])
        ppo = PPO(
            int(info["obs_dim"]), int(info["n_actions"]), config, seed=info["seed"], compile=compile
        )
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{directory / META}: bad config or sizes: {e}") from None
    tensors = _read_tensors(directory, info, ppo.tensors())
    try:
        state = {
            "tensors": tensors,
            "normaliser": info["normaliser"],
            "sample_rng": _sample_rng_state(info),
            "perm_rng": info["rng"]["perm_rng"],
            "updates": info["updates"],
        }
        ppo.load_state_dict(state)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{directory / META}: {e}") from None
    return ppo, info["meta"]
