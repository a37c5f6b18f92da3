"""``polyrl bench sweep``: 8 short trials as a sweep on local Ray against the same 8 runs one
after another in this process (wall time each; day caches built before either is timed)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from polyrl.replay import load_days
from polyrl.rl.train import resolve_splits, train
from polyrl.sweep.run import run_sweep, write_val_episodes
from polyrl.sweep.spec import build_config, load_spec

BENCH_SPEC = """
name = "bench"
[data]
replay = "{replay}"
val = "{val}"
root = "{root}"
[set]
train = {{ updates = {updates}, envs = {envs} }}
[space]
"ppo.lr_actor" = [1e-4, 3e-4, 1e-3, 3e-3]
seeds = [0, 1]
[run]
max_concurrent = {concurrent}
"""


def bench_sweep(
    root: Path,
    replay: str,
    val: str,
    *,
    updates: int = 3,
    envs: int = 4,
    cpus: int | None = None,
    concurrent: int | None = None,
    say: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Seconds of the 8 trials run sequentially (``train`` then the validation episodes of
    its best, as a trial does) and as a sweep on a local Ray of ``cpus`` CPUs with at most
    ``concurrent`` trials at once (default: one per CPU), Ray's start and the table included."""
    cpus = cpus or os.cpu_count() or 1
    concurrent = concurrent or cpus
    with tempfile.TemporaryDirectory(prefix="polyrl-bench-sweep-") as tmp:
        base = Path(tmp)
        spec_path = base / "bench.toml"
        spec_path.write_text(BENCH_SPEC.format(replay=replay, val=val, root=root.resolve(),
                                               updates=updates, envs=envs,
                                               concurrent=concurrent))  # fmt: skip
        spec = load_spec(spec_path)
        splits = resolve_splits(root, replay, val, None)
        cfg0 = build_config(spec, spec.trials[0].overrides)
        load_days(root, splits["train"] + splits["val"], cfg0)  # caches: outside both timings
        say(f"sequential: {len(spec.trials)} trials")
        t0 = time.perf_counter()
        for t in spec.trials:
            cfg = build_config(spec, t.overrides)
            run_dir = base / "seq" / t.name
            train(root=root, dates=replay, val_dates=val, eval_dates=None, config=cfg,
                  tc=cfg.train, ppo_config=cfg.ppo, run_dir=run_dir)  # fmt: skip
            write_val_episodes(run_dir, root, splits["val"], cfg)
        seq = time.perf_counter() - t0
        say(f"sweep on local Ray: {cpus} CPUs, {concurrent} at once")
        t0 = time.perf_counter()
        run_sweep(spec, root=root, dates=replay, sweep_dir=base / "sweep", cpus=cpus)
        swp = time.perf_counter() - t0
    return {"trials": len(spec.trials), "updates": updates, "envs": envs, "cpus": cpus,
            "concurrent": concurrent, "sequential_s": seq, "sweep_s": swp,
            "ratio": swp / seq, "load_avg_1m": os.getloadavg()[0]}  # fmt: skip
