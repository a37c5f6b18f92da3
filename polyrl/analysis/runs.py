"""Loading runs: one run directory -> a :class:`Run` of polars frames; several -> stacked frames.

Every run kind writes the files :mod:`polyrl.runlog` names (``config.json``,
``summary.json`` and the Parquet tables); which of them exist depends on the kind:

========  =====================================================================================
kind      what the directory holds
========  =====================================================================================
backtest  ``decisions``, ``trades``, ``episodes`` (one row per window), ``summary`` with stats
train     ``metrics`` (one row per update), ``timing``, ``episodes`` (training episodes),
          ``checkpoints/``; with a held-out evaluation ``eval/<policy>-trades.parquet`` and
          ``eval/<policy>-episodes.parquet`` for the trained policy and every baseline
live      ``decisions``, ``trades``, ``episodes``, ``metrics`` (one row per minute, and per
          update with ``--train``); the files are rewritten as the session runs, so a live
          run can be loaded while it trades (``summary.json`` appears when it stops)
========  =====================================================================================

A table a run does not have loads as an empty frame (with the RunLog schema where there is
one), so code over runs need not ask which kind it holds. A directory that is not a run, or
a file that cannot be read, is a :class:`RunError` naming the path.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from polyrl.errors import PolyrlError
from polyrl.runlog import DECISIONS, EPISODES, TRADES

TABLES = ("metrics", "trades", "episodes", "decisions", "timing")
_SCHEMAS: dict[str, Mapping[str, Any]] = {
    "trades": TRADES,
    "episodes": EPISODES,
    "decisions": DECISIONS,
}


class RunError(PolyrlError):
    """A run directory or one of its files cannot be used; the message names the path."""


def _empty(table: str) -> pl.DataFrame:
    schema = _SCHEMAS.get(table)
    return pl.DataFrame(schema=dict(schema)) if schema is not None else pl.DataFrame()


def _read_parquet(path: Path, table: str) -> pl.DataFrame:
    if not path.exists():
        return _empty(table)
    try:
        return pl.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - polars raises several types for a bad file
        raise RunError(f"unreadable run file {path}: {e}") from None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RunError(f"unreadable run file {path}: {e}") from None
    if not isinstance(data, dict):
        raise RunError(f"run file {path} does not hold a JSON object")
    return data


def is_run(path: Path | str) -> bool:
    """Whether ``path`` is a run directory (a ``config.json`` or ``summary.json`` in it)."""
    p = Path(path)
    return p.is_dir() and ((p / "config.json").exists() or (p / "summary.json").exists())


def find_runs(root: Path | str) -> list[Path]:
    """``root`` itself if it is a run, else the runs directly under it (sorted by name)."""
    p = Path(root)
    if is_run(p):
        return [p]
    if not p.is_dir():
        return []
    return sorted(c for c in p.iterdir() if is_run(c))


def _kind(path: Path, summary: dict[str, Any], metrics: pl.DataFrame) -> str:
    if summary.get("kind") in ("train", "backtest", "live"):
        return str(summary["kind"])
    if "latency/p50_ms" in metrics.columns or (path / "state.json").exists():
        return "live"
    if (path / "checkpoints").is_dir() or "losses/policy" in metrics.columns:
        return "train"
    return "backtest"


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One run's files as polars frames (see the module doc for which kind has which).

    ``trades`` [one row per order leg and settlement], ``episodes`` [one row per window],
    ``decisions`` [one row per market per tick], ``metrics`` [one row per update or minute],
    ``timing`` [wall-clock seconds per update]; ``eval_trades`` and ``eval_episodes`` stack
    a train run's held-out evaluation with a ``policy`` column (empty for other kinds).
    """

    path: Path
    name: str
    kind: str
    strategy: str
    config: dict[str, Any]
    summary: dict[str, Any]
    metrics: pl.DataFrame
    trades: pl.DataFrame
    episodes: pl.DataFrame
    decisions: pl.DataFrame
    timing: pl.DataFrame
    eval_trades: pl.DataFrame = field(default_factory=lambda: _empty("trades"))
    eval_episodes: pl.DataFrame = field(default_factory=lambda: _empty("episodes"))

    @property
    def capital_per_slot(self) -> float:
        """The broker's capital per market slot (USDC) the run used."""
        return float(self.config.get("broker", {}).get("capital", 10.0))

    @property
    def assets(self) -> tuple[str, ...]:
        """The assets the run traded, in slot order."""
        return tuple(self.config.get("assets", ("btc", "eth", "sol", "xrp")))

    @property
    def policies(self) -> list[str]:
        """The policies of the held-out evaluation (the trained one first), or []."""
        if self.eval_episodes.is_empty():
            return []
        names = self.eval_episodes["policy"].unique(maintain_order=True).to_list()
        return sorted(names, key=lambda n: (n != "ppo", names.index(n)))

    def results(self) -> dict[str, tuple[pl.DataFrame, pl.DataFrame]]:
        """``{strategy: (trades, episodes)}``: what the run's trading statistics are about.

        A backtest or live run: its own tables under its strategy's name. A train run: its
        held-out evaluation per policy (the trained policy first, then the baselines on the
        same windows), or ``{}`` without one (training episodes are in ``episodes``).
        """
        if self.kind != "train":
            return {self.strategy: (self.trades, self.episodes)}
        out = {}
        for p in self.policies:
            out[p] = (
                self.eval_trades.filter(pl.col("policy") == p).drop("policy"),
                self.eval_episodes.filter(pl.col("policy") == p).drop("policy"),
            )
        return out


def _eval_frames(path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    d = path / "eval"
    if not d.is_dir():
        return _empty("trades"), _empty("episodes")
    out: dict[str, list[pl.DataFrame]] = {"trades": [], "episodes": []}
    for table in out:
        for f in sorted(d.glob(f"*-{table}.parquet")):
            policy = f.name[: -len(f"-{table}.parquet")]
            df = _read_parquet(f, table)
            out[table].append(df.with_columns(pl.lit(policy).alias("policy")))
    stacked = []
    for table, frames in out.items():
        if frames:
            stacked.append(pl.concat(frames, how="diagonal_relaxed"))
        else:
            stacked.append(_empty(table).with_columns(pl.lit("").alias("policy")).clear())
    return stacked[0], stacked[1]


def load_run(path: Path | str) -> Run:
    """Every file of the run at ``path`` as frames (see :class:`Run`).

    Errors: ``path`` missing, not a directory, or holding no run (a directory of runs, such
    as ``polyrl backtest --strategy all`` writes, names the runs inside); a file that cannot
    be read — each a :class:`RunError` naming the path.
    """
    p = Path(path)
    if not p.exists():
        raise RunError(f"run directory {p} does not exist")
    if not p.is_dir():
        raise RunError(f"{p} is not a run directory (it is a file)")
    if not is_run(p):
        inner = find_runs(p)
        if inner:
            names = ", ".join(r.name for r in inner)
            raise RunError(f"{p} holds several runs ({names}), not one: name one of them")
        raise RunError(f"{p} is not a run directory (no config.json or summary.json in it)")
    config = _read_json(p / "config.json")
    summary = _read_json(p / "summary.json")
    frames = {t: _read_parquet(p / f"{t}.parquet", t) for t in TABLES}
    kind = _kind(p, summary, frames["metrics"])
    if kind == "train":
        strategy = "ppo"
    else:
        strategy = str(summary.get("strategy") or config.get("strategy") or summary.get("policy")
                       or kind)  # fmt: skip
    eval_trades, eval_episodes = _eval_frames(p)
    return Run(
        path=p,
        name=p.name,
        kind=kind,
        strategy=strategy,
        config=config,
        summary=summary,
        eval_trades=eval_trades,
        eval_episodes=eval_episodes,
        **frames,
    )


def _same_data(
    a: tuple[dict[str, Any], dict[str, Any]], b: tuple[dict[str, Any], dict[str, Any]]
) -> bool:
    """Whether two runs' ``(config, summary)`` are finished backtests of the same recorded
    days (by their content digests) with the same config but for the strategy."""
    (ca, sa), (cb, sb) = a, b
    if sa.get("kind") != "backtest" or sb.get("kind") != "backtest":
        return False
    if not sa.get("recording_digests") or sa.get("recording_digests") != sb.get(
        "recording_digests"
    ):
        return False
    if sa.get("days") != sb.get("days"):
        return False
    return {k: v for k, v in ca.items() if k != "strategy"} == {
        k: v for k, v in cb.items() if k != "strategy"
    }


def sibling_runs(run: Run) -> list[Run]:
    """The backtests beside ``run`` (in the same directory) over the same recorded days
    (equal recording digests in ``summary.json``) with the same config but another strategy,
    as ``polyrl backtest --strategy all`` writes them; sorted by directory name. Told from
    the runs' own ``config.json`` and ``summary.json``, not from their names; [] for a run
    that is not a finished backtest. A neighbour whose JSON cannot be read is not a sibling;
    a sibling whose tables cannot be read is a :class:`RunError` naming the file."""
    me = (run.config, run.summary)
    if not _same_data(me, me):
        return []
    out = []
    for p in find_runs(run.path.parent):
        if p.resolve() == run.path.resolve():
            continue
        try:
            other = (_read_json(p / "config.json"), _read_json(p / "summary.json"))
        except RunError:
            continue
        if _same_data(me, other) and other[0].get("strategy") != run.config.get("strategy"):
            out.append(load_run(p))
    return out


def _stack(runs: Sequence[Run], table: str) -> pl.DataFrame:
    frames = [
        getattr(r, table).with_columns(pl.lit(r.name).alias("run"))
        for r in runs
        if not getattr(r, table).is_empty()
    ]
    if not frames:
        return pl.DataFrame(schema={"run": pl.String})
    df = pl.concat(frames, how="diagonal_relaxed")
    return df.select("run", pl.exclude("run"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Runs:
    """Several runs, their tables stacked with a leading ``run`` column (the run's name).

    ``runs`` keeps each :class:`Run`; ``metrics``, ``trades``, ``episodes``, ``decisions``,
    ``eval_trades`` and ``eval_episodes`` are the stacked frames (columns a run lacks are
    null in its rows).
    """

    runs: dict[str, Run]
    metrics: pl.DataFrame
    trades: pl.DataFrame
    episodes: pl.DataFrame
    decisions: pl.DataFrame
    eval_trades: pl.DataFrame
    eval_episodes: pl.DataFrame

    def __getitem__(self, name: str) -> Run:
        return self.runs[name]

    def results(self) -> dict[str, tuple[pl.DataFrame, pl.DataFrame]]:
        """Every run's :meth:`Run.results` in one mapping (see :func:`combined_results`)."""
        return combined_results(self.runs.values())


def combined_results(
    runs: Iterable[Run], *, into: Mapping[str, tuple[pl.DataFrame, pl.DataFrame]] | None = None
) -> dict[str, tuple[pl.DataFrame, pl.DataFrame]]:
    """The :meth:`Run.results` of ``runs`` added to ``into`` (default empty), keyed by
    strategy, or ``run/strategy`` where a strategy's name is already taken."""
    out = dict(into or {})
    for r in runs:
        for strategy, frames in r.results().items():
            out[strategy if strategy not in out else f"{r.name}/{strategy}"] = frames
    return out


def load_runs(paths: Iterable[Path | str] | Path | str) -> Runs:
    """Several runs stacked (see :class:`Runs`). ``paths``: run directories, or one directory
    whose sub-directories are runs (``polyrl backtest --strategy all`` writes one). Two runs
    with the same directory name are told apart by their parent's name."""
    if isinstance(paths, str | Path):
        found = find_runs(paths)
        if not found:
            raise RunError(f"no run directory at or under {paths}")
        plist = found
    else:
        plist = [Path(p) for p in paths]
    loaded = [load_run(p) for p in plist]
    names = [r.name for r in loaded]
    runs: dict[str, Run] = {}
    for r in loaded:
        name = r.name if names.count(r.name) == 1 else f"{r.path.parent.name}/{r.name}"
        if name in runs:
            raise RunError(f"{r.path}: run name {name!r} given twice")
        runs[name] = dataclasses.replace(r, name=name)
    rl = list(runs.values())
    return Runs(
        runs=runs,
        **{t: _stack(rl, t) for t in ("metrics", "trades", "episodes", "decisions")},
        eval_trades=_stack(rl, "eval_trades"),
        eval_episodes=_stack(rl, "eval_episodes"),
    )
