"""Parity: replay what a live run recorded and diff every decision, fill and PnL against it.

A live run's ``summary.json`` names the recording root and the span of recorder sequence
numbers its decisions consumed; its ``decisions.parquet`` names every tick. Parity feeds
exactly those events, in recorded order, through a fresh FeatureEngine and Engine with the
same policy and config, observes exactly the live ticks, and compares the three tables row
by row. The first divergence is reported as (table, tick, market, column, live, replay).
Live decisions depend only on what the recording captured, so the diff must be empty.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from polyrl.broker import PaperBroker
from polyrl.engine import Engine, TickObs
from polyrl.errors import ConfigError, RecordingError
from polyrl.events import NS_PER_S, partition_of
from polyrl.features.engine import FeatureEngine
from polyrl.features.sets import feature_set
from polyrl.recording.reader import RecordingReader
from polyrl.runlog import RunLog
from polyrl.sections import Config, config_from_mapping


@dataclass(slots=True)
class Divergence:
    """The first difference between a live run and its replay."""

    table: str
    row: int
    t_ns: int | None
    slot: int | None
    column: str
    live: Any
    replay: Any

    def __str__(self) -> str:
        from polyrl.events import ns_to_iso

        when = ns_to_iso(self.t_ns) if self.t_ns is not None else "?"
        return (f"{self.table} row {self.row} (tick {when}, market {self.slot}): {self.column} "
                f"is {self.live!r} live but {self.replay!r} in replay")  # fmt: skip


@dataclass(slots=True)
class ParityReport:
    """What parity compared and the first divergence (None: identical)."""

    ticks: int
    events: int
    rows: dict[str, int]
    divergence: Divergence | None


def load_live_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], Config]:
    """(summary, run config, Config) of a finished live run; errors name the file."""
    run_dir = Path(run_dir)
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
        run_cfg = json.loads((run_dir / "config.json").read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"{run_dir} is not a finished run: {e.filename} is missing") from None
    if summary.get("kind") != "live":
        raise ConfigError(f"{run_dir} is a {summary.get('kind')!r} run; parity needs a live run")
    if summary.get("resumed"):
        raise ConfigError(
            f"{run_dir} was resumed: parity replays a single session; compare "
            "the sessions before and after the restart as separate runs"
        )
    if run_cfg.get("train_online"):
        raise ConfigError(
            f"{run_dir} trained online (--train): its policy changed as it ran, "
            "so a replay cannot reproduce it; parity needs a fixed policy"
        )
    cfg = config_from_mapping(summary["config"], source=str(run_dir / "summary.json"))
    return summary, run_cfg, cfg


def make_policy(run_cfg: dict[str, Any], cfg: Config) -> Any:
    """The policy a live run used, rebuilt from its saved config."""
    from polyrl.policies.plugin import make_strategy

    fset = feature_set(cfg.features.feature_set)
    if run_cfg.get("checkpoint"):
        from polyrl.policies.ppo import PPOPolicy

        return PPOPolicy.load(Path(run_cfg["checkpoint"]), fset)
    return make_strategy(run_cfg["strategy"], fset, cfg.baselines, seed=int(run_cfg["seed"]))


def replay_live_run(run_dir: Path) -> tuple[RunLog, ParityReport]:
    """Replay a live run's recorded events (see the module doc); returns the replay's log."""
    summary, run_cfg, cfg = load_live_run(run_dir)
    live_dec = pl.read_parquet(Path(run_dir) / "decisions.parquet")
    ticks = np.unique(live_dec["t_ns"].to_numpy())
    first, last = summary.get("first_seq"), summary.get("last_seq")
    if first is None or last is None or ticks.shape[0] == 0:
        raise RecordingError(f"{run_dir}: the live run made no decisions; nothing to compare")
    root = Path(summary["recording_root"])
    lat = cfg.engine.latency_ns
    dates = sorted({partition_of(int(ticks[0]) - 3600 * NS_PER_S)[0],
                    partition_of(int(ticks[-1]) + lat)[0]})  # fmt: skip
    dates = [d for d in dates if (root / "recorder.status" / f"date={d}").exists()] or dates
    reader = RecordingReader(root, dates=dates)
    fe = FeatureEngine(tuple(cfg.assets), cfg.features, fill_latency_ns=lat)
    fset = feature_set(cfg.features.feature_set)
    log = RunLog.in_memory(config=run_cfg)
    timeout = int(cfg.engine.resolution_timeout_s * NS_PER_S)
    engine = Engine(
        assets=tuple(cfg.assets), fset=fset, policy=make_policy(run_cfg, cfg),
        broker=PaperBroker(len(cfg.assets), cfg.broker), windows=lambda i: fe.windows[i],
        outcome=lambda w, t: fe.settle_outcome(w, t, timeout), runlog=log, config=cfg.engine,
    )  # fmt: skip
    k = 0
    events = 0

    def observe_upto(limit: int) -> None:
        nonlocal k
        while k < ticks.shape[0] and int(ticks[k]) + lat <= limit:
            t = int(ticks[k])
            o = fe.observe(t)
            engine.step(TickObs(
                t_ns=t, features=o.features[0], tradable=o.tradable[0], window=o.window[0],
                top_px=o.book_px[0, ..., 0], top_size=o.book_size[0, ..., 0],
                fill_px=o.fill_px[0], fill_size=o.fill_size[0],
            ))  # fmt: skip
            k += 1

    for batch in reader.batches():
        sel = (batch.seq >= first) & (batch.seq <= last)
        if not sel.any():
            if batch.seq[0] > last:
                break
            continue
        idx = np.flatnonzero(sel)
        part = batch.slice(int(idx[0]), int(idx[-1]) + 1)
        # Every tick whose horizon lies before this part's first event is complete.
        observe_upto(int(part.recv_ns[0]) - 1)
        fe.ingest(part)
        events += len(part)
    observe_upto(2**62)
    if k != ticks.shape[0]:
        raise RecordingError(f"replayed {k} of the live run's {ticks.shape[0]} ticks")
    report = ParityReport(ticks=int(ticks.shape[0]), events=events, rows={}, divergence=None)
    for table in ("decisions", "trades", "episodes"):
        a = pl.read_parquet(Path(run_dir) / f"{table}.parquet")
        b = log.frame(table)
        report.rows[table] = a.height
        if report.divergence is None:
            report.divergence = first_divergence(table, a, b)
    return log, report


def first_divergence(table: str, live: pl.DataFrame, replay: pl.DataFrame) -> Divergence | None:
    """The first row and column where two tables of one schema differ (None if equal)."""
    n = min(live.height, replay.height)
    for c in live.columns:
        a, b = live[c].head(n), replay[c].head(n)
        ne = ~(a.eq_missing(b))
        if a.dtype.is_float():
            ne = ne & ~(a.is_nan() & b.is_nan())
        # The first differing row: arg_max of a boolean Series is its first True (None only
        # for no non-null values, which ne.any() rules out).
        i = ne.arg_max() if ne.any() else None
        if i is not None:
            return _div(table, live, i, c, a[i], b[i])
    if live.height != replay.height:
        i = n
        longer = live if live.height > replay.height else replay
        return _div(table, longer, i, "(row count)", live.height, replay.height)
    return None


def _div(table: str, df: pl.DataFrame, i: int, col: str, a: Any, b: Any) -> Divergence:
    t = int(df["t_ns"][i]) if "t_ns" in df.columns and i < df.height else None
    slot = int(df["slot"][i]) if "slot" in df.columns and i < df.height else None
    return Divergence(table, i, t, slot, col, a, b)
