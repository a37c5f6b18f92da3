"""How fast PPO trains here: end-to-end env-steps/s on the toy env, and the compute ceiling.

``bench_ppo`` times whole updates (rollout with ``PPO.act`` + ``PPO.update``) after one
untimed warm-up update (which pays for tracing and compiling), and reports how much of the
machine's matmul throughput the update reaches: FLOPs of forward+backward of both MLPs per
sample per epoch (matmuls only) against a measured 1024x1024 float32 MLX matmul.
``bench_sb3`` runs stable-baselines3's PPO with the same network and settings on the same
env, for comparison (torch and stable-baselines3 are optional and imported lazily).

Run ``python -m polyrl.rl.bench`` for the standard pair of settings: (a) the seed's 4 envs,
buffer 512, minibatch 64, 10 epochs and (b) 128 envs, buffer 512, minibatch 2048, 10 epochs.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import mlx.core as mx
import numpy as np

from polyrl.rl.mlx_setup import blas_status
from polyrl.rl.ppo import PPO, PPOConfig
from polyrl.rl.toy import N_ACTIONS, OBS_DIM, ToyEnv, collect_rollout


def measure_matmul_gflops(n: int = 1024, repeats: int = 20) -> float:
    """GFLOP/s of an n x n float32 MLX matmul on the default device (best of 3 runs)."""
    a = mx.random.normal((n, n), key=mx.random.key(1))
    b = mx.random.normal((n, n), key=mx.random.key(2))
    mx.eval(a, b)
    for _ in range(3):
        mx.eval(a @ b)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeats):
            mx.eval(a @ b)
        best = min(best, (time.perf_counter() - t0) / repeats)
    return 2.0 * n**3 / best / 1e9


def network_flops_per_sample(obs_dim: int, n_actions: int, hidden: int) -> float:
    """Matmul FLOPs of forward+backward of actor and critic for one sample.

    Forward is 2 FLOPs per multiply-accumulate; backward costs twice the forward (gradients
    for the weights and for the layer inputs). Element-wise work is not counted.
    """
    macs = 2 * (obs_dim * hidden + hidden * hidden) + hidden * n_actions + hidden
    return 3.0 * 2.0 * macs


def _greedy_accuracy(ppo: PPO, env: ToyEnv, seed: int) -> float:
    test = np.random.default_rng([seed, 99]).standard_normal((4096, OBS_DIM)).astype(np.float32)
    return float(np.mean(ppo.act_deterministic(test) == env.target(test)))


def _time_updates(ppo: PPO, env: Any, buffer_steps: int, updates: int) -> tuple[float, float]:
    """Mean seconds per update of collecting a rollout and of the PPO update, over
    ``updates`` of them after one warm-up (tracing and compiling are not what we measure)."""
    obs = env.reset()
    rollout, obs = collect_rollout(ppo, env, obs, buffer_steps)
    ppo.update(rollout)
    rollout_s = update_s = 0.0
    for _ in range(updates):
        t0 = time.perf_counter()
        rollout, obs = collect_rollout(ppo, env, obs, buffer_steps)
        t1 = time.perf_counter()
        ppo.update(rollout)
        rollout_s += t1 - t0
        update_s += time.perf_counter() - t1
    return rollout_s / updates, update_s / updates


def bench_ppo(
    n_envs: int,
    buffer_steps: int,
    minibatch_size: int,
    n_epochs: int,
    updates: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Time ``updates`` PPO updates (after one warm-up) on the toy env; returns figures.

    Keys: ``steps_per_s`` (env steps per wall second, rollout + update), ``rollout_s`` and
    ``update_s`` (per update, means), ``update_gflops`` (counted matmul FLOPs per second of
    update time), ``matmul_gflops`` (1024^3 float32 MLX matmul), ``ceiling_fraction``
    (their ratio), ``accuracy`` (greedy policy on the rewarded action; chance is 1/3),
    the settings and the BLAS in use.
    """
    cfg = PPOConfig(buffer_steps=buffer_steps, minibatch_size=minibatch_size, n_epochs=n_epochs)
    env = ToyEnv(n_envs, seed=seed)
    ppo = PPO(OBS_DIM, N_ACTIONS, cfg, seed=seed)
    rollout_s, update_s = _time_updates(ppo, env, buffer_steps, updates)
    samples = n_envs * buffer_steps
    used = (samples // minibatch_size) * minibatch_size  # samples per epoch actually trained on
    flops = network_flops_per_sample(OBS_DIM, N_ACTIONS, cfg.hidden) * used * n_epochs
    update_gflops = flops / update_s / 1e9
    matmul = measure_matmul_gflops()
    status = blas_status()
    return {
        "n_envs": n_envs,
        "buffer_steps": buffer_steps,
        "minibatch_size": minibatch_size,
        "n_epochs": n_epochs,
        "updates": updates,
        "steps_per_s": samples / (rollout_s + update_s),
        "rollout_s": rollout_s,
        "update_s": update_s,
        "update_gflops": update_gflops,
        "matmul_gflops": matmul,
        "ceiling_fraction": update_gflops / matmul,
        "accuracy": _greedy_accuracy(ppo, env, seed),
        "blas": status.source if status.loaded else f"bundled ({status.source})",
    }


def bench_sb3(
    n_envs: int,
    buffer_steps: int,
    minibatch_size: int,
    n_epochs: int,
    updates: int,
    seed: int = 0,
    torch_threads: int = 1,
) -> dict[str, Any]:
    """stable-baselines3 PPO with the seed's network and settings on the same toy env.

    Same shapes (18 -> 128 -> 128 -> 3 and -> 1, tanh, separate actor and critic), rollout
    length, minibatch, epochs, clipping and coefficients. SB3 has one optimizer, so one
    learning rate (``lr_actor``) serves both networks. ``torch_threads`` defaults to 1, like
    the BLAS thread pin on the MLX side. Raises ImportError naming what to install when torch,
    gymnasium or stable-baselines3 is missing.
    """
    try:
        import gymnasium as gym
        import torch
        from stable_baselines3 import PPO as SB3PPO
        from stable_baselines3.common.logger import Logger
        from stable_baselines3.common.vec_env import VecEnv
    except ImportError as e:
        raise ImportError(
            f"bench_sb3 needs torch and stable-baselines3 ({e}); "
            "pip install torch stable-baselines3 (they are not polyrl dependencies)"
        ) from None

    torch.set_num_threads(torch_threads)
    cfg = PPOConfig()

    class ToyVecEnv(VecEnv):
        """ToyEnv behind SB3's VecEnv interface (auto-reset, terminal_observation info)."""

        def __init__(self) -> None:
            self.toy = ToyEnv(n_envs, seed=seed)
            space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
            super().__init__(n_envs, space, gym.spaces.Discrete(N_ACTIONS))
            self._actions = np.zeros(n_envs, dtype=np.int64)

        def reset(self) -> np.ndarray:
            return self.toy.reset()

        def step_async(self, actions: np.ndarray) -> None:
            self._actions = np.asarray(actions)

        def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
            prev = self.toy._obs.copy()
            obs, reward, done = self.toy.step(self._actions)
            infos: list[dict[str, Any]] = [
                {"terminal_observation": prev[i]} if done[i] else {} for i in range(n_envs)
            ]
            return obs, reward, done, infos

        def close(self) -> None:
            return None

        def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
            return [None] * n_envs

        def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
            return None

        def env_method(self, method_name: str, *args: Any, indices: Any = None, **kw: Any) -> list:
            return [None] * n_envs

        def env_is_wrapped(self, wrapper_class: Any, indices: Any = None) -> list[bool]:
            return [False] * n_envs

    venv = ToyVecEnv()
    model = SB3PPO(
        "MlpPolicy",
        venv,
        learning_rate=cfg.lr_actor,
        n_steps=buffer_steps,
        batch_size=minibatch_size,
        n_epochs=n_epochs,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        clip_range=cfg.clip_coef,
        ent_coef=cfg.ent_coef,
        vf_coef=cfg.vf_coef,
        max_grad_norm=cfg.max_grad_norm,
        policy_kwargs={
            "net_arch": {"pi": [cfg.hidden, cfg.hidden], "vf": [cfg.hidden, cfg.hidden]},
            "activation_fn": torch.nn.Tanh,
        },
        device="cpu",
        seed=seed,
        verbose=0,
    )
    model.set_logger(Logger(folder=None, output_formats=[]))  # no log directory in $TMPDIR
    samples = n_envs * buffer_steps
    model.learn(total_timesteps=samples)  # warm-up, as for MLX
    t0 = time.perf_counter()
    model.learn(total_timesteps=samples * updates, reset_num_timesteps=False)
    elapsed = time.perf_counter() - t0
    test = np.random.default_rng([seed, 99]).standard_normal((4096, OBS_DIM)).astype(np.float32)
    greedy, _ = model.predict(test, deterministic=True)
    return {
        "n_envs": n_envs,
        "buffer_steps": buffer_steps,
        "minibatch_size": minibatch_size,
        "n_epochs": n_epochs,
        "updates": updates,
        "steps_per_s": samples * updates / elapsed,
        "torch_threads": torch_threads,
        "accuracy": float(np.mean(greedy == venv.toy.target(test))),
    }


def main(argv: list[str] | None = None) -> None:
    """Print (a) and (b) as JSON lines; ``--sb3`` adds stable-baselines3 on the same settings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=3, help="timed updates per setting")
    parser.add_argument("--sb3", action="store_true", help="also run stable-baselines3")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps({"blas": str(blas_status())}))
    for name, (n_envs, buf, mb) in {"a": (4, 512, 64), "b": (128, 512, 2048)}.items():
        row = bench_ppo(n_envs, buf, mb, 10, args.updates, args.seed)
        print(json.dumps({"setting": name, "impl": "mlx", **row}))
        if args.sb3:
            row = bench_sb3(n_envs, buf, mb, 10, args.updates, args.seed)
            print(json.dumps({"setting": name, "impl": "sb3", **row}))


if __name__ == "__main__":
    main()


def bench_replay_train(
    store: Any,
    fset: Any,
    broker: Any,
    *,
    n_envs: int,
    buffer_steps: int,
    minibatch_size: int,
    n_epochs: int,
    updates: int,
    seed: int = 0,
) -> dict[str, Any]:
    """End-to-end training steps/s on the real replay environment (rollout through the
    PaperBroker over cached observations, plus the PPO update), after one warm-up update."""
    from polyrl.rl.env import ReplayEnv

    cfg = PPOConfig(buffer_steps=buffer_steps, minibatch_size=minibatch_size, n_epochs=n_epochs)
    env = ReplayEnv(store, n_envs=n_envs, fset=fset, broker=broker, seed=seed)
    ppo = PPO(fset.dim, 3, cfg, seed=seed)
    roll, upd = _time_updates(ppo, env, buffer_steps, updates)
    samples = n_envs * buffer_steps
    return {
        "n_envs": n_envs, "buffer_steps": buffer_steps, "minibatch_size": minibatch_size,
        "n_epochs": n_epochs, "updates": updates,
        "steps_per_s": samples / (roll + upd), "rollout_s": roll, "update_s": upd,
    }  # fmt: skip
