"""Training: PPO over the vectorised replay environment, checkpoints, held-out evaluation.

``train`` replays the selected recording days through their feature caches into a
:class:`~polyrl.rl.env.ReplayEnv`, collects ``buffer_steps`` steps from each of ``envs``
environments per update, updates the MLX PPO agent, and writes the run:

- ``metrics.parquet``: one row per update (losses, entropy, approx KL, clip fraction,
  explained variance, learning rate, episodes, fills, win rate, PnL of the rollout);
  deterministic for a seed — wall-clock figures go to ``timing.parquet`` instead;
- ``episodes.parquet``: every training episode that finished;
- ``checkpoints/last``, ``checkpoints/update-<k>`` every ``checkpoint_every`` updates and,
  only with validation days, ``checkpoints/best`` (best PnL on the validation days); each
  resumes training exactly (weights, optimiser, normaliser, random state, the environment's
  data cursor and broker state);
- ``eval/``: the deterministic policy on the test days with the baselines beside it
  (trades, episodes, and the same statistics ``polyrl backtest`` prints);
- ``summary.json``: with the days of each split and which split chose what.

Splits cannot leak: the training, validation and test days are expanded against the
recording and must be disjoint (an overlap is a :class:`ConfigError` naming the days). Only
the validation days choose anything (``best``); the test days are evaluated and never
select. There is no early stopping. Training leaves out episodes that overlap a recording
gap or have no outcome (``[train]`` exclude_gap / exclude_missing); validation and test play
every window with a tradable tick, gap and missing-outcome windows included and counted
(``summary.json`` ``eval_windows``).
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
from polyrl.features.cache import DayCache, recording_days
from polyrl.features.sets import feature_set
from polyrl.policies.baselines import BASELINES, make_baseline
from polyrl.policies.ppo import PPOPolicy
from polyrl.recording.provenance import data_section
from polyrl.replay import build_missing, load_days
from polyrl.rl.checkpoint import load_checkpoint, save_checkpoint
from polyrl.rl.env import ReplayEnv, evaluate
from polyrl.rl.episodes import EpisodeStore
from polyrl.rl.ppo import PPO, PPOConfig, Rollout
from polyrl.runlog import EPISODES, atomic_write_bytes, atomic_write_parquet, file_digest
from polyrl.storage import Location


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


SPLIT_OPTIONS = {"train": "--replay", "val": "--val", "eval": "--eval"}
"""The CLI option that selects each split's days (named in overlap errors)."""


def _globs(dates: str) -> list[str]:
    return [g.strip() for g in dates.split(",") if g.strip()]


def resolve_splits(
    root: Path | Location, dates: str, val_dates: str | None, eval_dates: str | None
) -> dict[str, list[str]]:
    """Each split's recording days (globs expanded against ``root``); disjoint or a
    :class:`ConfigError` naming the shared days and the options that select them."""
    splits = {"train": recording_days(root, _globs(dates))}
    for key, globs in (("val", val_dates), ("eval", eval_dates)):
        splits[key] = recording_days(root, _globs(globs)) if globs else []
    clashes = []
    keys = list(splits)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            both = sorted(set(splits[a]) & set(splits[b]))
            if both:
                clashes.append(f"{SPLIT_OPTIONS[a]} and {SPLIT_OPTIONS[b]} share {', '.join(both)}")
    if clashes:
        raise ConfigError(
            "; ".join(clashes) + " (training, validation and test days must be disjoint)"
        )
    return splits


def _store(root: Path | Location, days: list[str], config: Config, *, exclude: TrainConfig | None,
           progress: Callable[[str, int, int], None] | None) -> EpisodeStore:  # fmt: skip
    """The episodes of ``days``: with ``exclude`` (training) its gap/missing rules apply;
    without (validation, test) every window with a tradable tick is played."""
    return split_store(load_days(root, days, config, progress=progress), exclude=exclude)


def split_store(caches: list[DayCache], *, exclude: TrainConfig | None) -> EpisodeStore:
    """A split's episodes: training (``exclude``: its gap/missing rules) or evaluation
    (``None``: every window with a tradable tick, flagged ones included)."""
    if exclude is None:
        return EpisodeStore.build(caches, exclude_gap=False, exclude_missing=False)
    return EpisodeStore.build(caches, exclude_gap=exclude.exclude_gap,
                              exclude_missing=exclude.exclude_missing)  # fmt: skip


def window_coverage(store: EpisodeStore) -> dict[str, Any]:
    """What an evaluation over ``store`` covers: the windows of its days (those with a tick
    in the day), how many were played, the flagged ones among them, and the windows with no
    tradable tick (no decision possible: not played, counted here). ``window_set`` is a digest
    of the played windows' (date, condition id): runs compare like for like only when equal."""
    import hashlib

    in_days = 0
    for c in store.caches:
        win = np.asarray(c.arrays["window"])
        in_days += sum(
            bool((win[:, r["slot"]] == r["index"]).any()) for r in c.windows.iter_rows(named=True)
        )
    info = store.info
    h = hashlib.blake2b(digest_size=16)
    for d, cid in sorted(zip(info["date"].to_list(), info["condition_id"].to_list(), strict=True)):
        h.update(f"{d}:{cid};".encode())
    return {
        "days": [c.date for c in store.caches],
        "windows_in_days": in_days,
        "played": store.n,
        "not_tradable": in_days - store.n,
        "gap": int(info["gap"].sum()),
        "missing_outcome": int((~info["outcome"].is_in(["Up", "Down"])).sum()),
        "window_set": h.hexdigest(),
    }


def evaluate_policies(
    store: EpisodeStore, policies: dict[str, Any], config: Config, seed: int
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[pl.DataFrame, pl.DataFrame]]]:
    """Each policy once over every episode of ``store``: statistics and (trades, episodes)."""
    fset = feature_set(config.features.feature_set)
    stats, frames = {}, {}
    for name, pol in policies.items():
        tr, ep = evaluate(store, pol, fset=fset, broker=config.broker,
                          latency_ns=config.engine.latency_ns, tick_ns=config.engine.tick_ns,
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
                     env: ReplayEnv, best: float | None,
                     best_update: int | None) -> dict[str, Any]:  # fmt: skip
    fset = feature_set(config.features.feature_set)
    return {
        "feature_set": fset.name,
        "feature_set_version": fset.version,
        "update": update,
        "steps": steps,
        "config": to_dict(config),
        "train": to_dict(tc),
        "env": env.state_dict(),
        "best_val_pnl": best,
        "best_update": best_update,
    }


def train(
    *,
    root: Path | Location,
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
    val_dates: str | None = None,
    workers: int = 1,
    ray_address: str | None = None,
    days_progress: Callable[[str, int, int], None] | None = None,
) -> TrainResult:
    """Train (or resume training) and write ``run_dir`` (see the module doc). ``dates``,
    ``val_dates`` and ``eval_dates`` are date globs (comma-separated) selecting disjoint
    days: training, validation (chooses ``best``) and test (evaluated only). With
    ``workers`` > 1 or a ``ray_address``, the missing caches of all three splits are built
    in parallel first (:func:`polyrl.replay.build_missing`)."""
    fset = feature_set(config.features.feature_set)
    splits = resolve_splits(root, dates, val_dates, eval_dates)
    build_missing(root, [d for v in splits.values() for d in v], config, workers=workers,
                  ray_address=ray_address, progress=cache_progress,
                  days_progress=days_progress)  # fmt: skip
    store = _store(root, splits["train"], config, exclude=tc, progress=cache_progress)
    val_store = (_store(root, splits["val"], config, exclude=None, progress=cache_progress)
                 if splits["val"] else None)  # fmt: skip
    eval_store = (_store(root, splits["eval"], config, exclude=None, progress=cache_progress)
                  if splits["eval"] else None)  # fmt: skip
    env = ReplayEnv(store, n_envs=tc.envs, fset=fset, broker=config.broker, seed=tc.seed,
                    latency_ns=config.engine.latency_ns, tick_ns=config.engine.tick_ns,
                    min_notional=config.engine.min_notional)  # fmt: skip
    updates = tc.updates
    if total_steps is not None:
        updates = max(1, -(-total_steps // (tc.envs * ppo_config.buffer_steps)))
    start = 0
    steps = 0
    best: float | None = None
    best_update: int | None = None
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
        start, steps = int(meta["update"]), int(meta["steps"])
        # Only a best chosen on validation carries over (older checkpoints chose on test days).
        best, best_update = meta.get("best_val_pnl"), meta.get("best_update")
        for name, target in (("metrics", metrics), ("timing", timing)):
            p = run_dir / f"{name}.parquet"
            if p.exists():
                target += pl.read_parquet(p).filter(pl.col("update") <= start).to_dicts()
        p = run_dir / "episodes.parquet"
        if p.exists():
            old = pl.read_parquet(p)
            for c in episodes:
                # A column added since the run started is null in its earlier rows.
                episodes[c] = old[c].to_list() if c in old.columns else [None] * old.height
        # A run stopped after its last update but before its summary resumes to finish it.
        if start > updates or (start == updates and (run_dir / "summary.json").exists()):
            raise CheckpointError(f"{resume} is at update {start}: nothing left of {updates}")
    else:
        ppo = PPO(fset.dim, 3, config=ppo_config, seed=tc.seed)
        obs = env.reset()
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_dir / "config.json", json.dumps(
        {**to_dict(config), "train": to_dict(tc), "ppo": to_dict(ppo_config),
         "replay": dates, "val": val_dates, "eval": eval_dates, "splits": splits},
        indent=2, sort_keys=True).encode())  # fmt: skip
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
                if row["pnl"] is not None:  # null for a window with no outcome
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
        # Model selection sees the validation days only; the test days are never looked at
        # before training ends.
        do_val = val_store is not None and (
            u == updates or (tc.eval_every and u % tc.eval_every == 0)
        )
        if do_val:
            assert val_store is not None
            stats, frames = evaluate_policies(
                val_store, {"ppo": PPOPolicy(ppo, fset)}, config, tc.seed
            )
            v_pnl = stats["ppo"]["total"]["pnl"]
            row["val/pnl"] = v_pnl
            row["val/pnl_per_window"] = stats["ppo"]["total"]["pnl_per_window"]
            if best is None or v_pnl > best:
                best, best_update = v_pnl, u
                save_checkpoint(run_dir / "checkpoints" / "best", ppo,
                                _checkpoint_meta(config, tc, u, steps, env, best,
                                                 best_update))  # fmt: skip
        meta = _checkpoint_meta(config, tc, u, steps, env, best, best_update)
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
        "val": val_dates,
        "eval": eval_dates,
        "splits": splits,
        # Which split chose what: the test days choose nothing; without validation days
        # there is no best (the policy is checkpoints/last) and no early stopping exists.
        "best_chosen_on": "val" if val_store is not None else None,
        "best_update": best_update,
        "best_val_pnl": best,
        "early_stopping": None,
        "updates": updates,
        "steps": steps,
        "feature_set": fset.name,
        "feature_set_version": fset.version,
        "recording_digests": {c.date: c.meta["recording_digest"] for c in store.caches},
        "episodes_in_store": store.n,
        # What made the days of every split: simulated (settings, seed), recorded, imported.
        "data": data_section(
            root, [d for days in splits.values() for d in days], sim_class=type(config.sim)
        ),
    }
    if val_store is not None:
        summary["val_windows"] = window_coverage(val_store)
        summary["val_recording_digests"] = {
            c.date: c.meta["recording_digest"] for c in val_store.caches
        }
    if eval_store is not None:
        # The test days score the policy the run hands over: best (chosen on validation)
        # when there is one, else last.
        best_dir = run_dir / "checkpoints" / "best"
        chosen = PPOPolicy.load(best_dir, fset) if best_update is not None else PPOPolicy(ppo, fset)
        summary["eval_checkpoint"] = "best" if best_update is not None else "last"
        policies: dict[str, Any] = {"ppo": chosen}
        for b in BASELINES:
            policies[b] = make_baseline(b, fset, config.baselines, seed=tc.seed)
        stats, frames = evaluate_policies(eval_store, policies, config, tc.seed)
        eval_dir = run_dir / "eval"
        eval_dir.mkdir(exist_ok=True)
        for name, (tr, ep) in frames.items():
            atomic_write_parquet(tr, eval_dir / f"{name}-trades.parquet")
            atomic_write_parquet(ep, eval_dir / f"{name}-episodes.parquet")
        summary["eval_stats"] = stats
        summary["eval_windows"] = window_coverage(eval_store)
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
