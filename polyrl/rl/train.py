"""Training: PPO over the vectorised replay environment, checkpoints, held-out evaluation.

``train`` replays the selected recording days through their feature caches into a
:class:`~polyrl.rl.env.ReplayEnv`, collects ``buffer_steps`` steps from each of ``envs``
environments per update, updates the MLX PPO agent, and writes the run:

- ``metrics.parquet``: one row per update (losses, entropy, approx KL, clip fraction,
  explained variance, learning rate, episodes, fills, win rate, PnL of the rollout);
  deterministic for a seed — wall-clock figures go to ``timing.parquet`` instead;
- ``episodes.parquet``: every training episode that finished;
- ``checkpoints/last``, ``checkpoints/update-<k>`` every ``checkpoint_every`` updates and
  ``checkpoints/best`` (best held-out PnL); each resumes training exactly (weights,
  optimiser, normaliser, random state, the environment's data cursor and broker state);
- ``eval/``: the deterministic policy on the held-out days with the baselines beside it
  (trades, episodes, and the same statistics ``polyrl backtest`` prints);
- ``summary.json``.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from polyrl.analysis.stats import summarize
from polyrl.config import Config, to_dict
from polyrl.errors import CheckpointError, ConfigError
from polyrl.features.sets import feature_set
from polyrl.policies.baselines import BASELINES, make_baseline
from polyrl.policies.ppo import PPOPolicy
from polyrl.replay import load_days
from polyrl.rl.checkpoint import load_checkpoint, save_checkpoint
from polyrl.rl.env import EpisodeStore, ReplayEnv, evaluate
from polyrl.rl.ppo import PPO, PPOConfig, Rollout
from polyrl.runlog import EPISODES, atomic_write_bytes, atomic_write_parquet, file_digest


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    """The training run (``[train]``)."""

    envs: int = 8
    """Episodes stepped in lockstep (the seed traded 4 markets at once)."""
    updates: int = 30
    """PPO updates to run (each collects ppo.buffer_steps steps per env)."""
    checkpoint_every: int = 10
    """Keep a checkpoint every this many updates (``last`` is always kept)."""
    eval_every: int = 0
    """Evaluate on the held-out days every this many updates (0: only at the end)."""
    exclude_gap: bool = True
    """Leave out episodes that overlap a recording gap."""
    exclude_missing: bool = True
    """Leave out episodes whose window could not be settled."""
    seed: int = 0
    """Run seed: network initialisation, action sampling, minibatches, episode order."""

    def __post_init__(self) -> None:
        if self.envs < 1:
            raise ValueError("envs must be >= 1")
        if self.updates < 1:
            raise ValueError("updates must be >= 1")
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint_every must be >= 1")
        if self.eval_every < 0:
            raise ValueError("eval_every must be >= 0")


@dataclass(slots=True)
class TrainResult:
    """What :func:`train` did."""

    run_dir: Path
    updates: int
    """Updates the run has made in all (a resumed run counts those before it too)."""
    steps: int
    """Environment steps the run has taken in all."""
    seconds: float
    """Wall time of this call's updates."""
    eval_table: dict[str, Any] | None
    summary: dict[str, Any]
    updates_run: int = 0
    """Updates made by this call (fewer than ``updates`` after a resume)."""
    steps_run: int = 0
    """Environment steps taken by this call: what ``seconds`` measures."""


def _store(root: Path, dates: str, config: Config, tc: TrainConfig,
           progress: Callable[[str, int, int], None] | None) -> EpisodeStore:  # fmt: skip
    caches = load_days(root, [g.strip() for g in dates.split(",") if g.strip()], config,
                       progress=progress)  # fmt: skip
    return EpisodeStore.build(caches, exclude_gap=tc.exclude_gap,
                              exclude_missing=tc.exclude_missing)  # fmt: skip


def evaluate_policies(
    store: EpisodeStore, policies: dict[str, Any], config: Config, seed: int
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[pl.DataFrame, pl.DataFrame]]]:
    """Each policy once over every episode of ``store``: statistics and (trades, episodes)."""
    fset = feature_set(config.features.feature_set)
    stats, frames = {}, {}
    for name, pol in policies.items():
        tr, ep = evaluate(store, pol, fset=fset, broker=config.broker,
                          latency_ns=config.engine.latency_ns,
                          min_notional=config.engine.min_notional)  # fmt: skip
        frames[name] = (tr, ep)
        stats[name] = summarize(tr, ep, assets=tuple(config.assets),
                                capital_per_slot=config.broker.capital, seed=seed)  # fmt: skip
    return stats, frames


@contextmanager
def _uninterrupted() -> Iterator[None]:
    """Hold SIGINT off while a checkpoint and the tables it matches are written, then deliver
    it: an interrupted run always leaves a ``last`` checkpoint and tables that agree, so it
    resumes exactly. Only the main thread can take signals; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if got:
            if callable(old):
                old(signal.SIGINT, None)
            elif old == signal.SIG_DFL:
                raise KeyboardInterrupt


def _checkpoint_meta(config: Config, tc: TrainConfig, update: int, steps: int,
                     env: ReplayEnv, best: float | None) -> dict[str, Any]:  # fmt: skip
    fset = feature_set(config.features.feature_set)
    return {
        "feature_set": fset.name,
        "feature_set_version": fset.version,
        "update": update,
        "steps": steps,
        "config": to_dict(config),
        "train": to_dict(tc),
        "env": env.state_dict(),
        "best_eval_pnl": best,
    }


def train(
    *,
    root: Path,
    dates: str,
    eval_dates: str | None,
    config: Config,
    tc: TrainConfig,
    ppo_config: PPOConfig,
    run_dir: Path,
    resume: Path | None = None,
    total_steps: int | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    cache_progress: Callable[[str, int, int], None] | None = None,
) -> TrainResult:
    """Train (or resume training) and write ``run_dir`` (see the module doc)."""
    fset = feature_set(config.features.feature_set)
    store = _store(root, dates, config, tc, cache_progress)
    eval_store = _store(root, eval_dates, config, tc, cache_progress) if eval_dates else None
    env = ReplayEnv(store, n_envs=tc.envs, fset=fset, broker=config.broker, seed=tc.seed,
                    latency_ns=config.engine.latency_ns,
                    min_notional=config.engine.min_notional)  # fmt: skip
    updates = tc.updates
    if total_steps is not None:
        updates = max(1, -(-total_steps // (tc.envs * ppo_config.buffer_steps)))
    start = 0
    steps = 0
    best: float | None = None
    metrics: list[dict[str, Any]] = []
    timing: list[dict[str, Any]] = []
    episodes: dict[str, list[Any]] = {c: [] for c in EPISODES}
    if resume is not None:
        ppo, meta = load_checkpoint(resume, expect_obs_dim=fset.dim,
                                    expect_feature_set=(fset.name, fset.version))  # fmt: skip
        if meta.get("train", {}).get("envs") != tc.envs:
            raise ConfigError(
                f"--envs {tc.envs} differs from the checkpoint's "
                f"{meta.get('train', {}).get('envs')} ({resume}); resume with the same envs"
            )
        env.load_state_dict(meta["env"])
        obs = env.observe()
        start, steps, best = int(meta["update"]), int(meta["steps"]), meta.get("best_eval_pnl")
        for name, target in (("metrics", metrics), ("timing", timing)):
            p = run_dir / f"{name}.parquet"
            if p.exists():
                target += pl.read_parquet(p).filter(pl.col("update") <= start).to_dicts()
        p = run_dir / "episodes.parquet"
        if p.exists():
            old = pl.read_parquet(p)
            for c in episodes:
                episodes[c] = old[c].to_list()
        # A run stopped after its last update but before its summary resumes to finish it.
        if start > updates or (start == updates and (run_dir / "summary.json").exists()):
            raise CheckpointError(f"{resume} is at update {start}: nothing left of {updates}")
    else:
        ppo = PPO(fset.dim, 3, config=ppo_config, seed=tc.seed)
        obs = env.reset()
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_dir / "config.json", json.dumps(
        {**to_dict(config), "train": to_dict(tc), "ppo": to_dict(ppo_config),
         "replay": dates, "eval": eval_dates}, indent=2, sort_keys=True).encode())  # fmt: skip
    N, T = tc.envs, ppo.config.buffer_steps
    start_steps = steps
    t_start = time.perf_counter()
    eval_table = None
    for u in range(start + 1, updates + 1):
        t0 = time.perf_counter()
        ob = np.empty((T, N, fset.dim), dtype=np.float32)
        act = np.empty((T, N), dtype=np.int64)
        lp = np.empty((T, N), dtype=np.float32)
        val = np.empty((T, N), dtype=np.float32)
        rew = np.empty((T, N), dtype=np.float32)
        dn = np.empty((T, N), dtype=bool)
        n_eps = fills = wins = closed = 0
        pnl = 0.0
        for t in range(T):
            a, logp, v = ppo.act(obs)
            ob[t], act[t], lp[t], val[t] = obs, a, logp, v
            obs, r, d, info = env.step(a)
            rew[t], dn[t] = r, d
            for tr in info["trades"]:
                if tr["kind"] != "settle":
                    fills += 1
                if tr["kind"] in ("close", "settle"):
                    closed += 1
                    wins += tr["realized_pnl"] > 0
            for row in info["episodes"]:
                n_eps += 1
                pnl += row["pnl"]
                for c in episodes:
                    episodes[c].append(row[c])
        t_roll = time.perf_counter() - t0
        m = ppo.update(Rollout(obs=ob, actions=act, logp=lp, values=val, rewards=rew, dones=dn,
                               last_value=ppo.value(obs)))  # fmt: skip
        steps += T * N
        dt = time.perf_counter() - t0
        row = {"update": u, "steps": steps, **{k: float(v) for k, v in m.items()},
               "charts/episodes": n_eps, "charts/fills": fills,
               "charts/win_rate": (wins / closed) if closed else float("nan"),
               "pnl/realized": pnl,
               "pnl/per_episode": pnl / n_eps if n_eps else float("nan")}  # fmt: skip
        metrics.append(row)
        timing.append({"update": u, "seconds": dt, "rollout_seconds": t_roll,
                       "charts/sps": T * N / dt})  # fmt: skip
        do_eval = eval_store is not None and (
            u == updates or (tc.eval_every and u % tc.eval_every == 0)
        )
        if do_eval:
            assert eval_store is not None
            stats, frames = evaluate_policies(
                eval_store, {"ppo": PPOPolicy(ppo, fset)}, config, tc.seed
            )
            e_pnl = stats["ppo"]["total"]["pnl"]
            row["eval/pnl"] = e_pnl
            row["eval/pnl_per_window"] = stats["ppo"]["total"]["pnl_per_window"]
            if best is None or e_pnl > best:
                best = e_pnl
                save_checkpoint(run_dir / "checkpoints" / "best", ppo,
                                _checkpoint_meta(config, tc, u, steps, env, best))  # fmt: skip
        meta = _checkpoint_meta(config, tc, u, steps, env, best)
        with _uninterrupted():
            if u % tc.checkpoint_every == 0:
                save_checkpoint(run_dir / "checkpoints" / f"update-{u:05d}", ppo, meta)
            save_checkpoint(run_dir / "checkpoints" / "last", ppo, meta)
            _write_tables(run_dir, metrics, timing, episodes)
        if progress is not None:
            progress({**row, "charts/sps": T * N / dt, "of": updates})
    seconds = time.perf_counter() - t_start
    summary: dict[str, Any] = {
        "kind": "train",
        "replay": dates,
        "eval": eval_dates,
        "updates": updates,
        "steps": steps,
        "feature_set": fset.name,
        "feature_set_version": fset.version,
        "recording_digests": {c.date: c.meta["recording_digest"] for c in store.caches},
        "episodes_in_store": store.n,
        "best_eval_pnl": best,
    }
    if eval_store is not None:
        policies: dict[str, Any] = {"ppo": PPOPolicy(ppo, fset)}
        for b in BASELINES:
            policies[b] = make_baseline(b, fset, config.baselines, seed=tc.seed)
        stats, frames = evaluate_policies(eval_store, policies, config, tc.seed)
        eval_dir = run_dir / "eval"
        eval_dir.mkdir(exist_ok=True)
        for name, (tr, ep) in frames.items():
            atomic_write_parquet(tr, eval_dir / f"{name}-trades.parquet")
            atomic_write_parquet(ep, eval_dir / f"{name}-episodes.parquet")
        summary["eval_stats"] = stats
        summary["eval_recording_digests"] = {
            c.date: c.meta["recording_digest"] for c in eval_store.caches
        }
        eval_table = stats
    summary["output_digests"] = {}
    for p in sorted(run_dir.glob("*.parquet")):
        if p.name != "timing.parquet":
            summary["output_digests"][p.name] = file_digest(p)
    atomic_write_bytes(run_dir / "summary.json",
                       json.dumps(summary, indent=2, sort_keys=True).encode())  # fmt: skip
    return TrainResult(run_dir, updates, steps, seconds, eval_table, summary,
                       updates_run=updates - start, steps_run=steps - start_steps)  # fmt: skip


def _write_tables(run_dir: Path, metrics: list[dict[str, Any]], timing: list[dict[str, Any]],
                  episodes: dict[str, list[Any]]) -> None:  # fmt: skip
    atomic_write_parquet(
        pl.DataFrame(metrics, infer_schema_length=None), run_dir / "metrics.parquet"
    )
    atomic_write_parquet(pl.DataFrame(timing), run_dir / "timing.parquet")
    atomic_write_parquet(pl.DataFrame(episodes, schema=EPISODES), run_dir / "episodes.parquet")
