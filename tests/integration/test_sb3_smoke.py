"""stable-baselines3's PPO trains on polyrl's replay environment through Gymnasium.

SB3 is driven through its own ``DummyVecEnv`` over the single-episode ``ReplayGymEnv`` (the
env gymnasium's checker passes): SB3 2.x has its own VecEnv API and no adapter for a
``gymnasium.vector.VectorEnv``, so this is the path an SB3 user takes, with no adapter code
of ours in between. Each sub-env is SB3's ``Monitor`` (episode returns, as SB3 logs them)
around a wrapper that records the actions SB3 sent, so the finished episodes can be played
again through polyrl's own ReplayEnv and PaperBroker and compared.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sb3 = pytest.importorskip(
    "stable_baselines3", reason="stable-baselines3 (the `bench` extra) is not installed"
)
torch = pytest.importorskip("torch", reason="torch (the `bench` extra) is not installed")

import gymnasium  # noqa: E402
from stable_baselines3.common.monitor import Monitor  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from polyrl.features.sets import feature_set  # noqa: E402
from polyrl.rl.env import ReplayEnv  # noqa: E402
from polyrl.rl.gym import make_env  # noqa: E402
from polyrl.sections import Config  # noqa: E402

pytestmark = pytest.mark.integration

CFG = Config()
N_ENVS = 2
STEPS = 4096
SEED = 3


class ActionLog(gymnasium.Wrapper):
    """Records the seed of each reset, every action, and the info of every finished episode."""

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        self.seeds: list[int | None] = []
        self.actions: list[int] = []
        self.finished: list[dict[str, Any]] = []

    def reset(self, **kwargs: Any) -> Any:
        self.seeds.append(kwargs.get("seed"))
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        self.actions.append(int(action))
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            self.finished.append(dict(info))
        return obs, reward, terminated, truncated, info


def test_sb3_ppo_trains_on_the_replay_env(small_recording: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    logs = [ActionLog(make_env(small_recording, "*", CFG)) for _ in range(N_ENVS)]
    monitors = [Monitor(log) for log in logs]
    venv = DummyVecEnv([lambda m=m: m for m in monitors])
    model = sb3.PPO("MlpPolicy", venv, n_steps=512, batch_size=128, n_epochs=2, seed=SEED,
                    device="cpu", verbose=0)  # fmt: skip
    model.learn(total_timesteps=STEPS)

    # It ran the steps: SB3 counted them, and the environments took exactly those.
    assert model.num_timesteps >= STEPS
    assert sum(len(log.actions) for log in logs) == model.num_timesteps
    assert {a for log in logs for a in log.actions} == {0, 1, 2}

    # The episodes it finished: finite PnL, the sum of the rewards SB3 learned from, and the
    # PnL polyrl's ReplayEnv and PaperBroker give the same actions.
    fset = feature_set(CFG.features.feature_set)
    finished = 0
    for i, (log, mon) in enumerate(zip(logs, monitors, strict=True)):
        assert log.seeds[0] == SEED + i  # SB3 seeds sub-env i with seed + i
        pnl = [f["pnl"] for f in log.finished]
        assert pnl and all(math.isfinite(p) for p in pnl)
        returns = mon.get_episode_rewards()
        assert returns == pytest.approx(pnl, abs=1e-5)  # Monitor rounds to 6 decimals
        ref = ReplayEnv(log.unwrapped.store, n_envs=1,
                        fset=fset, broker=CFG.broker, seed=SEED + i,
                        latency_ns=CFG.engine.latency_ns, tick_ns=CFG.engine.tick_ns)  # fmt: skip
        ref.reset()
        rows = []
        for a in log.actions:
            rows += ref.step(np.array([a]))[3]["episodes"]
        assert [r["pnl"] for r in rows] == pnl
        assert [r["fees"] for r in rows] == [f["fees"] for f in log.finished]
        assert [r["episode"] for r in rows] == [f["episode_id"] for f in log.finished]
        finished += len(rows)
    assert finished >= N_ENVS

    # A saved and reloaded model acts identically, deterministic and stochastic.
    obs = np.stack([venv.reset()[0] for _ in range(4)]).reshape(-1, fset.dim)
    obs = np.concatenate([obs, np.random.default_rng(0).standard_normal((256, fset.dim))])
    obs = obs.astype(np.float32)
    model.save(tmp_path / "ppo.zip")
    loaded = sb3.PPO.load(tmp_path / "ppo.zip", device="cpu")
    a, _ = model.predict(obs, deterministic=True)
    b, _ = loaded.predict(obs, deterministic=True)
    assert np.array_equal(a, b)
    with torch.no_grad():
        t = torch.as_tensor(obs)
        p = model.policy.get_distribution(t).distribution.probs
        q = loaded.policy.get_distribution(t).distribution.probs
    assert torch.equal(p, q)


@pytest.mark.slow
def test_the_readme_example_runs(
    small_recording: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README's "Your own algorithm" example, as written, on the test recording (its
    2024-06-01 is the sample's first day too) and for one rollout (4 envs x SB3's default 2048
    steps) instead of 50,000 steps."""
    import re

    import polyrl.sim.sample

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    m = re.search(r"<!-- algorithm-example -->\n```python\n(.*?)```", readme, re.S)
    assert m is not None, "README lost its algorithm example"
    code = m.group(1)
    assert "total_timesteps=50_000" in code
    torch.set_num_threads(1)
    monkeypatch.setattr(polyrl.sim.sample, "ensure_sample", lambda config: small_recording)
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("50_000", "1"), "README.md", "exec"), {})
    loaded = sb3.PPO.load(tmp_path / "ppo-polyrl.zip", device="cpu")
    assert loaded.num_timesteps == 4 * 2048
    assert loaded.observation_space.shape == (feature_set(CFG.features.feature_set).dim,)
