"""Checkpoints: exact resume, atomic replace, and errors that name the file and tensor."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from polyrl.errors import CheckpointError, FeatureSetMismatch
from polyrl.rl.checkpoint import load_checkpoint, save_checkpoint
from polyrl.rl.ppo import PPO
from polyrl.rl.toy import N_ACTIONS, OBS_DIM, ToyEnv

from .helpers import SMALL, train, weights

META = {"feature_set": "seed18", "feature_set_version": 1, "cursor": {"day": "2024-06-01"}}


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    ppo = PPO(OBS_DIM, N_ACTIONS, SMALL, seed=5)
    env = ToyEnv(4, seed=5)
    train(ppo, env, env.reset(), 1)
    return save_checkpoint(tmp_path / "ckpt", ppo, META)


def _rehash(ckpt: Path, fname: str) -> None:
    """Make meta.json's SHA-256 agree with a file a test edited on purpose."""
    meta = json.loads((ckpt / "meta.json").read_text())
    meta["sha256"][fname] = hashlib.sha256((ckpt / fname).read_bytes()).hexdigest()
    (ckpt / "meta.json").write_text(json.dumps(meta))


def test_exact_resume_is_bit_identical(tmp_path: Path) -> None:
    n = 4
    straight = PPO(OBS_DIM, N_ACTIONS, SMALL, seed=9)
    env = ToyEnv(4, seed=9)
    train(straight, env, env.reset(), n)

    first = PPO(OBS_DIM, N_ACTIONS, SMALL, seed=9)
    env1 = ToyEnv(4, seed=9)
    obs = train(first, env1, env1.reset(), n // 2)
    # The env's state is the test's business: carry it alongside.
    env_state, carried_obs = env1.get_state(), obs.copy()
    save_checkpoint(tmp_path / "half", first, META)
    del first, env1

    resumed, meta = load_checkpoint(tmp_path / "half", expect_obs_dim=OBS_DIM)
    assert meta == META
    assert resumed.updates == n // 2
    env2 = ToyEnv(4, seed=9)
    env2.set_state(env_state)
    train(resumed, env2, carried_obs, n - n // 2)

    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    np.testing.assert_array_equal(straight.normaliser.mean, resumed.normaliser.mean)
    assert straight.updates == resumed.updates == n


def test_round_trip_restores_everything(saved: Path) -> None:
    ppo, meta = load_checkpoint(saved, expect_feature_set=("seed18", 1))
    again, _ = load_checkpoint(saved, expect_feature_set="seed18")
    obs = np.random.default_rng(0).standard_normal((8, OBS_DIM)).astype(np.float32)
    assert np.array_equal(ppo.act(obs)[0], again.act(obs)[0])  # same key state
    assert meta["cursor"] == {"day": "2024-06-01"}
    assert ppo.config == SMALL and ppo.normaliser.count == 4 * SMALL.buffer_steps


def test_save_replaces_atomically_and_leaves_no_temporaries(saved: Path) -> None:
    ppo, _ = load_checkpoint(saved)
    ppo.updates = 99
    save_checkpoint(saved, ppo, {**META, "cursor": "next"})
    again, meta = load_checkpoint(saved)
    assert again.updates == 99 and meta["cursor"] == "next"
    assert sorted(p.name for p in saved.parent.iterdir()) == ["ckpt"]


def test_unserialisable_meta_is_refused_and_nothing_written(tmp_path: Path) -> None:
    ppo = PPO(OBS_DIM, N_ACTIONS, SMALL, seed=0)
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "c", ppo, {"bad": object()})
    assert not (tmp_path / "c").exists()


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nowhere"):
        load_checkpoint(tmp_path / "nowhere")


@pytest.mark.parametrize("fname", ["weights.safetensors", "optimizer.safetensors", "meta.json"])
def test_missing_file_is_named(saved: Path, fname: str) -> None:
    (saved / fname).unlink()
    with pytest.raises(CheckpointError, match=fname.replace(".", r"\.")):
        load_checkpoint(saved)


def test_corrupt_meta_json(saved: Path) -> None:
    (saved / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"meta\.json.*corrupt"):
        load_checkpoint(saved)


def test_truncated_safetensors_caught_by_hash(saved: Path) -> None:
    path = saved / "optimizer.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors: corrupt"):
        load_checkpoint(saved)


def test_truncated_safetensors_caught_by_reader(saved: Path) -> None:
    path = saved / "weights.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    _rehash(saved, "weights.safetensors")  # only the safetensors reader can notice now
    with pytest.raises(CheckpointError, match=r"weights\.safetensors: corrupt or truncated"):
        load_checkpoint(saved)


def test_garbage_safetensors(saved: Path) -> None:
    (saved / "weights.safetensors").write_bytes(b"\x00garbage" * 10)
    _rehash(saved, "weights.safetensors")
    with pytest.raises(CheckpointError, match=r"weights\.safetensors"):
        load_checkpoint(saved)


def test_missing_tensor_is_named(saved: Path) -> None:
    path = saved / "weights.safetensors"
    arrays = mx.load(str(path))
    del arrays["model.critic.layers.1.bias"]
    mx.save_safetensors(str(path), arrays)
    _rehash(saved, "weights.safetensors")
    with pytest.raises(
        CheckpointError, match=r"weights\.safetensors.*model\.critic\.layers\.1\.bias"
    ):
        load_checkpoint(saved)


def test_wrong_tensor_shape_is_named(saved: Path) -> None:
    path = saved / "weights.safetensors"
    arrays = mx.load(str(path))
    arrays["model.actor.layers.0.weight"] = mx.zeros((128, 20))
    mx.save_safetensors(str(path), arrays)
    _rehash(saved, "weights.safetensors")
    with pytest.raises(CheckpointError, match=r"model\.actor\.layers\.0\.weight.*\(128, 20\)"):
        load_checkpoint(saved)


def test_wrong_obs_dim(saved: Path) -> None:
    with pytest.raises(FeatureSetMismatch, match=r"18 observation features.*expected 20"):
        load_checkpoint(saved, expect_obs_dim=20)


@pytest.mark.parametrize("expect", ["other", ("seed18", 2)])
def test_feature_set_mismatch_names_both(saved: Path, expect: object) -> None:
    with pytest.raises(FeatureSetMismatch, match=r"'seed18' version 1, expected") as err:
        load_checkpoint(saved, expect_feature_set=expect)  # type: ignore[arg-type]
    assert ("other" in str(err.value)) or ("version 2" in str(err.value))


def test_format_1_checkpoint_still_loads(saved: Path) -> None:
    """Format 1 held an MLX PRNG key where format 2 holds the numpy sampler's state; the
    tensors are the same. An old agent loads, acts like the new one and resumes
    deterministically (its sampler seeded from the old key)."""
    new, _ = load_checkpoint(saved)
    meta = json.loads((saved / "meta.json").read_text())
    meta["format_version"] = 1
    meta["rng"] = {"key": [0, 12345], "perm_rng": meta["rng"]["perm_rng"]}
    (saved / "meta.json").write_text(json.dumps(meta))
    old, again = load_checkpoint(saved), load_checkpoint(saved)
    a, b = weights(old[0]), weights(new)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    obs = np.random.default_rng(0).standard_normal((8, OBS_DIM)).astype(np.float32)
    np.testing.assert_array_equal(old[0].act_deterministic(obs), new.act_deterministic(obs))
    assert np.array_equal(old[0].act(obs)[0], again[0].act(obs)[0])


def test_unknown_format_version_is_refused(saved: Path) -> None:
    meta = json.loads((saved / "meta.json").read_text())
    meta["format_version"] = 3
    (saved / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"format_version 3, this polyrl reads 1, 2"):
        load_checkpoint(saved)
