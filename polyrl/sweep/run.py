"""Run a sweep on Ray Tune and write its folder.

``runs/<name>/`` holds ``sweep.toml`` (the spec as given: its presence marks a sweep),
``plan.json`` (every trial's configuration and seed), ``trials/<trial>/`` (each a normal
``polyrl train`` run folder, trained with the validation days and without the test days),
``ray/`` (Ray Tune's own experiment state and logs, one ``attempt-<k>`` per invocation), and
at the end ``table.parquet`` (one row per configuration, :mod:`polyrl.sweep.table`),
``test/`` (the chosen configuration's test episodes, one file per seed) and ``summary.json``
(``"kind": "tune-sweep"``).

Resuming is by bookkeeping, not ``Tuner.restore``: the spec names the same trials every time
(:mod:`polyrl.sweep.spec`), so a rerun of the same command skips every trial whose folder has
a ``summary.json`` (or an early stop's ``stopped.json``), continues an unfinished one exactly
from its ``checkpoints/last``, and starts the others.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from polyrl.config import to_dict
from polyrl.errors import ConfigError
from polyrl.features.parallel import check_reachable, import_ray
from polyrl.features.sets import feature_set
from polyrl.policies.ppo import PPOPolicy
from polyrl.replay import build_missing, check_streams, load_days
from polyrl.rl.train import evaluate_policies, resolve_splits, split_store, train
from polyrl.runlog import atomic_write_bytes, atomic_write_parquet
from polyrl.sections import Config
from polyrl.sweep.spec import SweepSpec, Trial, build_config
from polyrl.sweep.table import format_sweep_table, sweep_table

THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Each trial is one CPU: BLAS (MLX's OpenBLAS, numpy's) on one thread in the Ray workers."""
STOPPED = "stopped.json"
VAL_EPISODES = Path("val") / "ppo-episodes.parquet"


@dataclass(slots=True)
class SweepResult:
    """What :func:`run_sweep` did: the folder, the table, trials run now and skipped."""

    sweep_dir: Path
    table: pl.DataFrame
    summary: dict[str, Any]
    ran: int
    skipped: int


def _done(run_dir: Path) -> bool:
    return (run_dir / "summary.json").exists() or (run_dir / STOPPED).exists()


def _plan(spec: SweepSpec, root: Path, dates: str, sweep_dir: Path) -> dict[str, Any]:
    return {
        "root": str(root), "replay": dates, "val": spec.val, "eval": spec.eval,
        "config_path": str(spec.config_path) if spec.config_path else None,
        "sweep_dir": str(sweep_dir),
        "trials": {t.name: {"config_id": t.config_id, "seed": t.seed, "params": t.params,
                            "overrides": t.overrides} for t in spec.trials},
    }  # fmt: skip


def _trial_config(plan: dict[str, Any], name: str) -> Config:
    from polyrl.sections import load_config

    cp = plan["config_path"]
    return load_config(Path(cp) if cp else None, plan["trials"][name]["overrides"])


def write_val_episodes(run_dir: Path, root: Path, val_days: list[str], cfg: Config) -> bool:
    """The policy of ``checkpoints/best`` (chosen on validation) on every validation window:
    ``val/ppo-episodes.parquet`` in the trial's folder. False when there is no best yet (an
    early stop before the first validation)."""
    best = run_dir / "checkpoints" / "best"
    if not (best / "meta.json").exists():
        return False
    fset = feature_set(cfg.features.feature_set)
    store = split_store(load_days(root, val_days, cfg), exclude=None)
    _, frames = evaluate_policies(store, {"ppo": PPOPolicy.load(best, fset)}, cfg,
                                  cfg.train.seed)  # fmt: skip
    (run_dir / "val").mkdir(exist_ok=True)
    atomic_write_parquet(frames["ppo"][1], run_dir / VAL_EPISODES)
    return True


def _trial_fn(config: dict[str, Any], plan: dict[str, Any]) -> None:
    """One trial in a Ray worker: ``polyrl train`` into ``trials/<name>/`` (continued from its
    last checkpoint when an earlier attempt left one), reporting each update to Tune."""
    from ray import tune

    name = config["trial"]
    cfg = _trial_config(plan, name)
    run_dir = Path(plan["sweep_dir"]) / "trials" / name
    last = run_dir / "checkpoints" / "last"
    resume = last if (last / "meta.json").exists() else None
    if resume is None and run_dir.exists():
        shutil.rmtree(run_dir)  # an attempt stopped before its first update: start over

    final: list[dict[str, Any]] = []

    def report(row: dict[str, Any]) -> None:
        out = {"update": row["update"], "pnl/per_episode": row["pnl/per_episode"]}
        for k in ("val/pnl", "val/pnl_per_window"):
            if k in row:
                out[k] = row[k]
        if row["update"] == row["of"]:
            # Held back until the run's summary is written: Tune may end a trial at any
            # report (ASHA at max_t does), and the folder must be finished by then.
            final.append(out)
        else:
            tune.report(out)

    root = Path(plan["root"])
    train(root=root, dates=plan["replay"], val_dates=plan["val"], eval_dates=None, config=cfg,
          tc=cfg.train, ppo_config=cfg.ppo, run_dir=run_dir, resume=resume,
          progress=report)  # fmt: skip
    split = resolve_splits(root, plan["replay"], plan["val"], None)
    write_val_episodes(run_dir, root, split["val"], cfg)
    for out in final:
        tune.report(out)


def _scheduler(spec: SweepSpec, updates: int, sweep_dir: Path) -> Any:
    """ASHA (maximising the spec's validation metric over updates) that also marks a trial it
    stops with ``stopped.json``, so a rerun does not start it again."""
    if spec.asha is None:
        return None
    from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

    class MarkingAsha(AsyncHyperBandScheduler):
        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            action = super().on_trial_result(tune_controller, trial, result)
            if action == TrialScheduler.STOP and result.get("update", updates) < updates:
                d = sweep_dir / "trials" / trial.config["trial"]
                if d.exists():
                    atomic_write_bytes(d / STOPPED, json.dumps(
                        {"early_stopped": True, "update": result["update"],
                         "metric": spec.asha.metric if spec.asha else None}).encode())  # fmt: skip
            return str(action)

    a = spec.asha
    return MarkingAsha(time_attr="update", metric=a.metric, mode="max", max_t=updates,
                       grace_period=a.grace, reduction_factor=a.reduction_factor)  # fmt: skip


def _run_on_ray(spec: SweepSpec, plan: dict[str, Any], pending: list[Trial], sweep_dir: Path,
                *, address: str | None, cpus: int | None, updates: int) -> list[str]:  # fmt: skip
    """Run ``pending`` as Tune trials; returns one line per trial that failed."""
    ray = import_ray("polyrl sweep")
    from ray import tune

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    env = {"env_vars": dict(THREAD_ENV)}
    try:
        if address is not None:
            check_reachable(address)
            ray.init(address=address, runtime_env=env, logging_level=logging.ERROR,
                     log_to_driver=False)  # fmt: skip
        else:
            ray.init(num_cpus=cpus or os.cpu_count() or 1, runtime_env=env,
                     include_dashboard=False, logging_level=logging.ERROR,
                     log_to_driver=False)  # fmt: skip
    except ConfigError:
        raise
    except Exception as e:  # ray raises ConnectionError, RuntimeError, ValueError, ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        where = address or "local"
        raise ConfigError(f"--ray {where}: could not start or join Ray: {first}") from None
    try:
        storage = sweep_dir / "ray"
        storage.mkdir(exist_ok=True)
        attempt = f"attempt-{sum(1 for p in storage.iterdir() if p.is_dir()) + 1}"
        trainable = tune.with_resources(tune.with_parameters(_trial_fn, plan=plan),
                                        {"cpu": spec.cpus_per_trial})  # fmt: skip
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search([t.name for t in pending])},
            tune_config=tune.TuneConfig(
                num_samples=1, max_concurrent_trials=spec.max_concurrent,
                scheduler=_scheduler(spec, updates, sweep_dir),
                # A trial's worker process is kept for the next: imports and the page cache
                # stay warm (a fresh process per short trial costs seconds).
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(name=attempt, storage_path=str(storage.resolve()),
                                      verbose=0),
        )  # fmt: skip
        grid = tuner.fit()
        failed = []
        for i in range(len(grid)):
            r = grid[i]
            if r.error is not None:
                msg = str(r.error).strip().splitlines()
                failed.append(f"{(r.config or {}).get('trial')}: {msg[-1] if msg else r.error!r}")
        return failed
    finally:
        ray.shutdown()


def run_sweep(
    spec: SweepSpec,
    *,
    root: Path,
    dates: str,
    sweep_dir: Path,
    address: str | None = None,
    cpus: int | None = None,
    workers: int = 1,
    say: Callable[[str], None] = lambda s: None,
) -> SweepResult:
    """Run (or continue) the sweep of ``spec`` over the recording ``root`` into
    ``sweep_dir`` (see the module doc); ``dates`` are the training days' globs."""
    root = root.resolve()
    sweep_dir = sweep_dir.resolve()
    marker = sweep_dir / "sweep.toml"
    if marker.exists():
        if marker.read_text() != spec.text:
            raise ConfigError(f"{sweep_dir} holds another sweep (its sweep.toml differs from "
                              f"{spec.path}); use another --name")  # fmt: skip
    elif sweep_dir.exists() and any(sweep_dir.iterdir()):
        raise ConfigError(f"{sweep_dir} is not empty and holds no sweep; use another --name")
    # The splits are checked disjoint, and the days for every feature set, before any work.
    splits = resolve_splits(root, dates, spec.val, spec.eval)
    days = [d for v in splits.values() for d in v]
    by_features: dict[str, Config] = {}
    for t in spec.trials:
        cfg = build_config(spec, t.overrides)
        by_features.setdefault(json.dumps(to_dict(cfg.features), sort_keys=True), cfg)
    for cfg in by_features.values():
        check_streams(root, days, cfg)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "trials").mkdir(exist_ok=True)
    atomic_write_bytes(marker, spec.text.encode())
    plan = _plan(spec, root, dates, sweep_dir)
    atomic_write_bytes(sweep_dir / "plan.json", json.dumps(plan, indent=2, sort_keys=True).encode())

    # Day caches are built once here, before any trial, so trials only load them: the missing
    # ones as Ray tasks on the sweep's cluster when it has one (--ray), else by `workers`
    # local processes (one by one when 1), byte for byte as a sequential build.
    def cache_prog(day: str, h: int, n: int) -> None:
        if h == n:
            say(f"features (cache): {day} ready")

    for cfg in by_features.values():
        build_missing(root, days, cfg, workers=1 if address else workers, ray_address=address,
                      progress=cache_prog)  # fmt: skip
        load_days(root, days, cfg, progress=cache_prog)
    pending = [t for t in spec.trials if not _done(sweep_dir / "trials" / t.name)]
    skipped = len(spec.trials) - len(pending)
    say(f"{len(spec.trials)} trials ({len(spec.trials) // len(spec.seeds)} configurations x "
        f"{len(spec.seeds)} seeds): {skipped} done, {len(pending)} to run")  # fmt: skip
    updates = build_config(spec, spec.trials[0].overrides).train.updates
    failed: list[str] = []
    if pending:
        failed = _run_on_ray(spec, plan, pending, sweep_dir, address=address, cpus=cpus,
                             updates=updates)  # fmt: skip
    if failed:
        raise ConfigError(f"{len(failed)} trial(s) failed (rerun to retry them): "
                          + "; ".join(failed))  # fmt: skip
    # Tune returns normally after a Ctrl-C: no table until every trial is done or stopped.
    left = [t.name for t in pending if not _done(sweep_dir / "trials" / t.name)]
    if left:
        raise KeyboardInterrupt(f"{len(left)} trial(s) did not finish")
    return finish(spec, sweep_dir, root, splits, ran=len(pending), skipped=skipped)


def finish(spec: SweepSpec, sweep_dir: Path, root: Path, splits: dict[str, list[str]], *,
           ran: int, skipped: int) -> SweepResult:  # fmt: skip
    """The table from the trials' folders; the chosen configuration's test figures."""
    val: dict[str, dict[int, pl.DataFrame]] = {}
    status: dict[str, str] = {}
    for t in spec.trials:
        d = sweep_dir / "trials" / t.name
        status[t.name] = ("finished" if (d / "summary.json").exists()
                          else "stopped" if (d / STOPPED).exists() else "missing")  # fmt: skip
        if status[t.name] == "missing":
            continue
        if not (d / VAL_EPISODES).exists():  # an early-stopped trial: its best so far
            write_val_episodes(d, root, splits["val"], build_config(spec, t.overrides))
        if (d / VAL_EPISODES).exists():
            val.setdefault(t.config_id, {})[t.seed] = pl.read_parquet(d / VAL_EPISODES)
    configs, seen = [], set()
    for t in spec.trials:
        if t.config_id not in seen:
            seen.add(t.config_id)
            configs.append((t.config_id, t.params, len(spec.seeds)))
    table = sweep_table(configs, val)
    chosen = table.filter(pl.col("chosen"))
    test: dict[int, pl.DataFrame] = {}
    chosen_id = chosen["config_id"][0] if chosen.height else None
    if chosen_id is not None and splits["eval"]:
        (sweep_dir / "test").mkdir(exist_ok=True)
        for t in (t for t in spec.trials if t.config_id == chosen_id and t.seed in
                  val.get(chosen_id, {})):  # fmt: skip
            cfg = build_config(spec, t.overrides)
            fset = feature_set(cfg.features.feature_set)
            store = split_store(load_days(root, splits["eval"], cfg), exclude=None)
            best = sweep_dir / "trials" / t.name / "checkpoints" / "best"
            _, frames = evaluate_policies(store, {"ppo": PPOPolicy.load(best, fset)}, cfg,
                                          t.seed)  # fmt: skip
            atomic_write_parquet(frames["ppo"][0], sweep_dir / "test" / f"{t.name}-trades.parquet")
            atomic_write_parquet(frames["ppo"][1],
                                 sweep_dir / "test" / f"{t.name}-episodes.parquet")  # fmt: skip
            test[t.seed] = frames["ppo"][1]
        table = sweep_table(configs, val, test)
    atomic_write_parquet(table, sweep_dir / "table.parquet")
    summary = {
        "kind": "tune-sweep",
        "name": sweep_dir.name,
        "spec": spec.path.name,
        "splits": splits,
        "seeds": spec.seeds,
        "trials": [{"name": t.name, "config_id": t.config_id, "seed": t.seed,
                    "params": t.params, "status": status[t.name]} for t in spec.trials],
        "chosen": chosen_id,
        "chosen_on": "val",
        "test_only_for_chosen": True,
        "asha": to_dict(spec.asha) if spec.asha else None,
        "table": "table.parquet",
        "table_text": format_sweep_table(table),
    }  # fmt: skip
    atomic_write_bytes(sweep_dir / "summary.json",
                       json.dumps(summary, indent=2, sort_keys=True).encode())  # fmt: skip
    return SweepResult(sweep_dir, table, summary, ran, skipped)
