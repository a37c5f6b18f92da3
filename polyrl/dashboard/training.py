"""What the dashboard shows of a training run or a sweep, read from their folders as they grow.

Three kinds of folder (:func:`folder_kind`): a **sweep** holds ``sweep.toml`` (and
``trials/<trial>/``, each a training run; at the end ``summary.json`` of kind ``tune-sweep``);
a **training run** holds ``metrics.parquet`` with an ``update`` column or ``checkpoints/``,
or a ``summary.json`` of kind ``train``, and neither ``live.json`` nor ``trades.parquet``;
anything else is a live or backtest **run** (:func:`polyrl.dashboard.state.run_snapshot`).

A training snapshot (``kind: "train"``): ``state`` (``running``, or ``finished`` once
``summary.json`` is written), ``update`` and ``updates`` (the planned total, from
``config.json``'s ``train.updates``, None when the run counts steps), ``steps``,
``steps_per_s`` (the last update's, from ``timing.parquet``), ``idle_s`` (with ``now_s``,
wall seconds since ``metrics.parquet`` was last rewritten), ``curves`` (``{column:
[[update, value]]}`` for the columns :data:`CURVES` names, NaN and missing values left
out), ``val`` (``[[update, val/pnl]]``: one point per validation), ``best_update`` and
``metrics`` (the last row).

A sweep snapshot (``kind: "sweep"``): ``state``, ``trials`` (name, state, update, updates,
the last validation and rollout PnL, ``overrides`` and the ``val`` and ``pnl`` curves).
A trial's overrides are its ``params`` in the sweep's ``plan.json`` when the sweep writes
one, else the config keys whose values differ between the trials' ``config.json``; trials
the plan names that have no folder yet are ``pending``, one holding ``stopped.json`` was
``stopped early``.

Files are read whole and defensively: a file that cannot be read right now (being replaced,
truncated) gives the last good read of it (:class:`Files`), missing columns give no curve.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl

CURVES = ("losses/policy", "losses/value", "losses/entropy", "losses/approx_kl",
          "losses/clip_frac", "losses/explained_variance", "pnl/realized",
          "pnl/per_episode")  # fmt: skip
"""The learning curves a training run's page draws, one chart each (``metrics.parquet``)."""
VAL = "val/pnl"
CURVE_POINTS = 2000
FINISHED_SWEEP = "tune-sweep"
STOPPED = "stopped.json"
"""A trial the sweep's scheduler stopped early may say so with this file in its folder."""


class Files:
    """Reads a folder's files, keeping the last good read of each: a Parquet or JSON file
    being rewritten (or truncated) gives what it held before instead of failing the view.
    Unchanged files (same size and mtime) are not read again."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[tuple[int, int], Any]] = {}

    def _load(self, path: Path, parse: Any, empty: Any) -> Any:
        try:
            st = path.stat()
        except OSError:
            return self._seen[path][1] if path in self._seen else empty
        key = (st.st_mtime_ns, st.st_size)
        old = self._seen.get(path)
        if old is not None and old[0] == key:
            return old[1]
        try:
            value = parse(path)
        except Exception:  # noqa: BLE001 - any failed read keeps the last good one
            return old[1] if old is not None else empty
        self._seen[path] = (key, value)
        return value

    def parquet(self, path: Path) -> pl.DataFrame:
        out: pl.DataFrame = self._load(path, pl.read_parquet, pl.DataFrame())
        return out

    def json(self, path: Path) -> dict[str, Any]:
        out = self._load(path, lambda p: json.loads(p.read_text()), {})
        return out if isinstance(out, dict) else {}


def folder_kind(folder: Path, files: Files | None = None) -> str:
    """``sweep``, ``train`` or ``run`` (a live or backtest run): see the module doc."""
    folder = Path(folder)
    if (folder / "sweep.toml").exists():
        return "sweep"
    if (folder / "live.json").exists() or (folder / "trades.parquet").exists():
        return "run"
    files = files or Files()
    if files.json(folder / "summary.json").get("kind") == "train":
        return "train"
    if (folder / "checkpoints").is_dir() or "update" in files.parquet(
        folder / "metrics.parquet"
    ).columns:
        return "train"
    return "run"


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def curve(m: pl.DataFrame, column: str) -> list[list[float]]:
    """``[[update, value]]`` of one column, rows without a finite value left out, thinned
    evenly to :data:`CURVE_POINTS` (the last point always kept)."""
    if column not in m.columns or "update" not in m.columns:
        return []
    pts = [[int(u), f] for u, v in zip(m["update"].to_list(), m[column].to_list(), strict=True)
           if u is not None and (f := _finite(v)) is not None]  # fmt: skip
    if len(pts) > CURVE_POINTS:
        step = len(pts) / CURVE_POINTS
        pts = [pts[int(i * step)] for i in range(CURVE_POINTS - 1)] + [pts[-1]]
    return pts


def _planned_updates(config: dict[str, Any]) -> int | None:
    train = config.get("train")
    n = train.get("updates") if isinstance(train, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def train_snapshot(run_dir: Path, files: Files | None = None, *,
                   now_s: float | None = None) -> dict[str, Any]:  # fmt: skip
    """A training run's state from its files (see the module doc)."""
    run_dir = Path(run_dir)
    files = files or Files()
    m = files.parquet(run_dir / "metrics.parquet")
    summary = files.json(run_dir / "summary.json")
    config = files.json(run_dir / "config.json")
    timing = files.parquet(run_dir / "timing.parquet")
    last = m.row(-1, named=True) if m.height else {}
    sps = curve(timing, "charts/sps")
    idle = None
    if now_s is not None and (run_dir / "metrics.parquet").exists():
        idle = max(0, round(now_s - (run_dir / "metrics.parquet").stat().st_mtime))
    finished = summary.get("kind") == "train"
    return {
        "run": run_dir.name,
        "kind": "train",
        "state": "finished" if finished else "running",
        "update": last.get("update"),
        "updates": summary.get("updates") if finished else _planned_updates(config),
        "steps": last.get("steps"),
        "steps_per_s": sps[-1][1] if sps else None,
        "idle_s": None if finished else idle,
        "curves": {c: curve(m, c) for c in CURVES},
        "val": curve(m, VAL),
        "best_update": summary.get("best_update"),
        "metrics": {k: _finite(v) if not isinstance(v, int) else v for k, v in last.items()},
    }


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v, sort_keys=True)
    return out


def overrides(configs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per trial, the config keys (dotted) whose values differ between the trials, with the
    trial's value: what the sweep varied. Keys a trial lacks count as differing."""
    flat = {name: _flat(c) for name, c in configs.items()}
    keys = sorted({k for f in flat.values() for k in f})
    varied = [k for k in keys if len({f.get(k) for f in flat.values()}) > 1]
    return {name: {k: json.loads(f[k]) for k in varied if k in f} for name, f in flat.items()}


def sweep_snapshot(sweep_dir: Path, files: Files | None = None) -> dict[str, Any]:
    """A sweep's state: one entry per trial folder (see the module doc)."""
    sweep_dir = Path(sweep_dir)
    files = files or Files()
    summary = files.json(sweep_dir / "summary.json")
    done = summary.get("kind") == FINISHED_SWEEP
    trials_dir = sweep_dir / "trials"
    names = []
    if trials_dir.is_dir():
        names = sorted(p.name for p in trials_dir.iterdir() if p.is_dir())
    planned = files.json(sweep_dir / "plan.json").get("trials")
    planned = planned if isinstance(planned, dict) else {}
    names += sorted(n for n in planned if isinstance(n, str) and n not in names)
    configs = {n: files.json(trials_dir / n / "config.json") for n in names}
    varied = overrides(configs) if len(names) > 1 else {n: {} for n in names}
    trials = []
    for n in names:
        params = planned.get(n, {}).get("params") if isinstance(planned.get(n), dict) else None
        if isinstance(params, dict) and params:
            varied[n] = params  # what the sweep's plan drew for this trial
        t = train_snapshot(trials_dir / n, files)
        state = t["state"]
        if not (trials_dir / n).is_dir():
            state = "pending"  # planned, not started
        elif (trials_dir / n / STOPPED).exists() and state != "finished":
            state = "stopped early"
        elif t["update"] is None and state == "running":
            state = "starting"
        if done and state not in ("finished", "stopped early"):
            state = "stopped"  # the sweep ended without this trial's summary
        pnl = t["curves"]["pnl/realized"]
        trials.append({"name": n, "state": state, "update": t["update"],
                       "updates": t["updates"], "last_val": t["val"][-1][1] if t["val"] else None,
                       "last_pnl": pnl[-1][1] if pnl else None, "overrides": varied.get(n, {}),
                       "val": t["val"], "pnl": pnl})  # fmt: skip
    return {
        "run": sweep_dir.name,
        "kind": "sweep",
        "state": "finished" if done else "running",
        "trials": trials,
    }
