"""The Gymnasium face of the replay environment: the checker, seeding, parity with ReplayEnv."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium", reason="gymnasium (the `gym` extra) not installed")

from gymnasium.utils.env_checker import check_env, data_equivalence  # noqa: E402

from polyrl.errors import ConfigError, FeatureSetMismatch, RecordingError  # noqa: E402
from polyrl.features.sets import feature_set  # noqa: E402
from polyrl.replay import load_days  # noqa: E402
from polyrl.rl.env import ReplayEnv  # noqa: E402
from polyrl.rl.episodes import EpisodeStore  # noqa: E402
from polyrl.rl.gym import (  # noqa: E402
    GYM_MISSING,
    ReplayGymEnv,
    ReplayVectorEnv,
    make_env,
    make_vector_env,
)
from polyrl.sections import Config  # noqa: E402

CFG = Config()
FSET = feature_set(CFG.features.feature_set)
KW = {"broker": CFG.broker, "latency_ns": CFG.engine.latency_ns, "tick_ns": CFG.engine.tick_ns}


@pytest.fixture(scope="module")
def store(small_recording: Path) -> EpisodeStore:
    return EpisodeStore.build(load_days(small_recording, "*", CFG))


def _actions(seed: int, steps: int, n: int) -> np.ndarray:
    """A fixed action sequence [steps, n], mostly HOLD so positions are held for a while."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random((steps, n)) < 0.9, 0, rng.integers(1, 3, (steps, n)))


def test_the_single_env_passes_gymnasiums_checker(small_recording: Path) -> None:
    env = make_env(small_recording, "*", CFG, seed=1)
    assert env.observation_space == gymnasium.spaces.Box(-np.inf, np.inf, (FSET.dim,), np.float32)
    assert env.action_space == gymnasium.spaces.Discrete(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # The one warning let through: the observation Box is unbounded because the features
        # are (returns, sizes, imbalances have no natural bound), exactly as ReplayEnv and
        # `polyrl train` see them; a finite bound would be invented.
        warnings.filterwarnings(
            "ignore", message=r".*A Box observation space (minimum|maximum) value is -?infinity"
        )
        # Rendering: the env declares no render modes, so there is nothing to check.
        check_env(env, skip_render_check=True)


def test_the_vector_env_declares_its_spaces_and_autoreset_mode(store: EpisodeStore) -> None:
    env = ReplayVectorEnv(store, num_envs=3, fset=FSET, **KW)
    assert env.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.SAME_STEP
    assert env.single_observation_space == gymnasium.spaces.Box(
        -np.inf, np.inf, (FSET.dim,), np.float32
    )
    assert env.single_action_space == gymnasium.spaces.Discrete(3)
    assert env.observation_space.shape == (3, FSET.dim)
    assert env.action_space == gymnasium.spaces.MultiDiscrete([3, 3, 3])


def test_gymnasiums_episode_statistics_wrapper_reads_the_autoreset_mode(
    store: EpisodeStore,
) -> None:
    """gymnasium's own vector RecordEpisodeStatistics, which follows the declared autoreset
    mode, sums each episode's rewards to the PnL the env reports at settlement."""
    from gymnasium.wrappers.vector import RecordEpisodeStatistics

    env = RecordEpisodeStatistics(ReplayVectorEnv(store, num_envs=2, fset=FSET, seed=4, **KW))
    env.reset(seed=4)
    seen = 0
    for a in _actions(3, 1850, 2):
        _, _, term, _, info = env.step(a)
        for i in np.flatnonzero(term):
            assert info["_episode"][i]
            assert info["episode"]["r"][i] == pytest.approx(info["final_info"]["pnl"][i])
            assert info["episode"]["l"][i] == store.length[info["final_info"]["episode_id"][i]]
            seen += 1
    assert seen >= 2


def _vector_run(env: ReplayVectorEnv, seed: int, acts: np.ndarray) -> list:
    out: list = [env.reset(seed=seed)[0]]
    for a in acts:
        obs, rew, term, trunc, info = env.step(a)
        out += [obs, rew, term, trunc, info["episode_id"], info.get("final_info")]
    return out


def _same(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    return all(data_equivalence(x, y, exact=True) for x, y in zip(a, b, strict=True))


def test_same_seed_same_trajectory(store: EpisodeStore) -> None:
    acts = _actions(0, 1850, 2)  # episodes are up to 1800 steps
    a = ReplayVectorEnv(store, num_envs=2, fset=FSET, **KW)
    b = ReplayVectorEnv(store, num_envs=2, fset=FSET, **KW)
    run_a = _vector_run(a, 7, acts)
    assert any(x is not None for x in run_a[6::6]), "no episode ended: lengthen the run"
    assert _same(run_a, _vector_run(b, 7, acts))
    assert _same(run_a, _vector_run(a, 7, acts))  # reseeding the same env starts over
    assert not _same(run_a, _vector_run(b, 8, acts))  # another seed: another episode order
    single = [make_env_from(store, 3), make_env_from(store, 3)]
    traj, ended = [], 0
    for env in single:
        obs, _ = env.reset(seed=11)
        steps = [obs]
        for a in acts[:, 0]:
            step = env.step(int(a))
            steps += list(step)
            if step[2]:
                steps.append(env.reset()[0])
                ended += 1
        traj.append(steps)
    assert ended >= 2  # each env ended an episode and began the next
    assert _same(traj[0], traj[1])


def make_env_from(store: EpisodeStore, seed: int) -> ReplayGymEnv:
    return ReplayGymEnv(store, fset=FSET, seed=seed, **KW)


def test_rewards_and_pnl_are_replayenvs_own(store: EpisodeStore) -> None:
    """A fixed action sequence earns in the vector env exactly the rewards, fills, fees and
    settled PnL that ReplayEnv itself gives it."""
    n, steps = 3, 1500
    acts = _actions(1, steps, n)
    gym_env = ReplayVectorEnv(store, num_envs=n, fset=FSET, seed=5, **KW)
    ref = ReplayEnv(store, n_envs=n, fset=FSET, seed=5, **KW)
    obs_g, _ = gym_env.reset(seed=5)
    assert np.array_equal(obs_g, ref.reset())
    ended = 0
    ep_reward = np.zeros(n)
    for a in acts:
        last = obs_g
        obs_g, rew_g, term, trunc, info = gym_env.step(a)
        obs_r, rew_r, done_r, info_r = ref.step(a)
        assert np.array_equal(obs_g, obs_r) and np.array_equal(rew_g, rew_r)
        assert np.array_equal(term, done_r) and not trunc.any()
        ep_reward += rew_g
        for row in info_r["episodes"]:
            i = row["env"]
            fin = info["final_info"]
            assert fin["_pnl"][i] and fin["pnl"][i] == row["pnl"] and fin["fees"][i] == row["fees"]
            assert fin["fills"][i] == row["fills"] and fin["episode_id"][i] == row["episode"]
            # PnL reward: the episode's rewards add up to its settled PnL.
            assert ep_reward[i] == pytest.approx(row["pnl"], abs=1e-9)
            # Final observation: the last decision's market features, the settled (flat)
            # position.
            final = info["final_obs"][i]
            pix = list(FSET.position_index)
            mix = list(FSET.market_index)
            assert np.array_equal(final[mix], last[i][mix]) and not final[pix].any()
            ep_reward[i] = 0.0
            ended += 1
        assert set(np.flatnonzero(term)) == {r["env"] for r in info_r["episodes"]}
    assert ended >= 3


def test_single_env_matches_replayenv_episode_by_episode(store: EpisodeStore) -> None:
    acts = _actions(2, 2600, 1)[:, 0]
    env = make_env_from(store, 9)
    ref = ReplayEnv(store, n_envs=1, fset=FSET, seed=9, **KW)
    obs, info = env.reset(seed=9)
    assert np.array_equal(obs, ref.reset()[0]) and info["episode_id"] == ref.ep[0]
    settled = 0
    for a in acts:
        obs, rew, term, trunc, info = env.step(int(a))
        obs_r, rew_r, done_r, info_r = ref.step(np.array([a]))
        assert rew == rew_r[0] and term == bool(done_r[0]) and trunc is False
        if term:
            row = info_r["episodes"][0]
            assert (info["pnl"], info["fees"], info["fills"]) == (
                row["pnl"], row["fees"], row["fills"],
            )  # fmt: skip
            with pytest.raises(RuntimeError, match="reset"):
                env.step(0)
            obs, _ = env.reset()  # the next episode of the order, as ReplayEnv started it
            settled += 1
        assert np.array_equal(obs, obs_r[0])
    assert settled >= 1


def test_bad_arguments_are_clear_errors(small_recording: Path, store: EpisodeStore) -> None:
    with pytest.raises(ValueError, match="num_envs must be an int >= 1"):
        ReplayVectorEnv(store, num_envs=0, fset=FSET, **KW)
    with pytest.raises(TypeError, match="store must be an EpisodeStore"):
        ReplayGymEnv([], fset=FSET, **KW)  # type: ignore[arg-type]
    env = ReplayVectorEnv(store, num_envs=2, fset=FSET, **KW)
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        env.step(np.array([0, 0]))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions must be in 0\.\.2"):
        env.step(np.array([0, 3]))
    with pytest.raises(ValueError, match="actions must be 2 integer"):
        env.step(np.array([0]))
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        env.reset(seed=-1)
    with pytest.raises(ConfigError, match="unknown feature set 'nope'"):
        make_env(small_recording, "*", CFG, feature_set="nope")
    with pytest.raises(TypeError, match="config must be a polyrl Config"):
        make_vector_env(small_recording, "*", {}, num_envs=2)  # type: ignore[arg-type]
    with pytest.raises(RecordingError, match="1999-01-01"):
        make_env(small_recording, "1999-01-01", CFG)
    with pytest.raises(FeatureSetMismatch, match="holds feature set 'seed18'"):
        ReplayGymEnv(store, fset=feature_set("history"), **KW)  # same width, other features


def test_without_gymnasium_the_module_imports_and_using_it_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['gymnasium'] = None\n"
        "import polyrl.rl.gym as g\n"
        "try:\n"
        "    g.make_env('nowhere', '*', None)\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == GYM_MISSING + "\n"
    assert "`gym` extra" in GYM_MISSING and "\n" not in GYM_MISSING
