"""RunLog: the files of one run under ``runs/<run>/``.

Every run kind (backtest, train, live) writes the same files:

``config.json``        the resolved config the run used
``decisions.parquet``  one row per market per decision tick: what the policy saw and did
``trades.parquet``     one row per executed order leg (open, close, add) and per settlement
``episodes.parquet``   one row per market window traded over
``metrics.parquet``    one row per update (training) or per minute (live)
``summary.json``       the headline numbers, plus digests of the events consumed and of the
                       files above so two runs can be compared at a glance

Files are rewritten atomically (temporary name, then rename), so a live run's files can be
read while it runs. Nothing here reads the clock: two identical runs write identical bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from polyrl.errors import ConfigError

DECISIONS = {
    "t_ns": pl.Int64, "slot": pl.Int8, "asset": pl.String, "window": pl.Int32,
    "tradable": pl.Boolean, "action": pl.Int8,
}  # fmt: skip
TRADES = {
    "t_ns": pl.Int64, "slot": pl.Int8, "asset": pl.String, "condition_id": pl.String,
    "slug": pl.String, "kind": pl.String, "action": pl.Int8, "token": pl.String,
    "side": pl.Int8, "shares": pl.Float64, "avg_price": pl.Float64, "notional": pl.Float64,
    "fee": pl.Float64, "levels": pl.Int16, "partial": pl.Boolean, "rejected": pl.Int8,
    "realized_pnl": pl.Float64,
}  # fmt: skip
EPISODES = {
    "slot": pl.Int8, "asset": pl.String, "condition_id": pl.String, "slug": pl.String,
    "start_ns": pl.Int64, "end_ns": pl.Int64, "outcome": pl.String, "outcome_source": pl.String,
    "gap": pl.Boolean, "settled_ns": pl.Int64, "no_outcome": pl.Boolean, "orders": pl.Int32,
    "fills": pl.Int32, "pnl": pl.Float64, "fees": pl.Float64, "first_entry_ns": pl.Int64,
    "first_entry_time_left": pl.Float64, "first_entry_price": pl.Float64,
    "first_entry_token": pl.String, "reference_mismatch": pl.Boolean,
    "reference_stale": pl.Boolean,
}  # fmt: skip
TABLES = {"decisions": DECISIONS, "trades": TRADES, "episodes": EPISODES}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary name and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_write_parquet(df: pl.DataFrame, path: Path) -> None:
    """Write a frame as zstd Parquet atomically (statistics off: identical bytes per content)."""
    tmp = path.with_name(f".{path.name}.tmp")
    df.write_parquet(tmp, compression="zstd", statistics=False)
    os.replace(tmp, path)


def file_digest(path: Path) -> str:
    """blake2b-128 of a file's bytes."""
    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


class RunLog:
    """Accumulates a run's rows and writes them under ``directory``.

    ``overwrite=False`` refuses a directory that already holds a run (naming it).
    """

    def __init__(
        self, directory: Path, *, config: Mapping[str, Any], overwrite: bool = False
    ) -> None:
        path = Path(directory)
        if (path / "summary.json").exists() and not overwrite:
            raise ConfigError(f"run directory {path} already holds a run; use another --name")
        path.mkdir(parents=True, exist_ok=True)
        self.dir: Path | None = path
        self.config = dict(config)
        atomic_write_bytes(
            path / "config.json", json.dumps(config, indent=2, sort_keys=True).encode()
        )
        self.rows: dict[str, dict[str, list[Any]]] = {
            name: {c: [] for c in schema} for name, schema in TABLES.items()
        }
        self.metrics: list[dict[str, Any]] = []

    @classmethod
    def in_memory(cls, *, config: Mapping[str, Any]) -> RunLog:
        """A log that keeps its rows and writes no files (parity's replay)."""
        self = cls.__new__(cls)
        self.dir = None
        self.rows = {name: {c: [] for c in schema} for name, schema in TABLES.items()}
        self.metrics = []
        self.config = dict(config)
        return self

    def add(self, table: str, row: Mapping[str, Any]) -> None:
        """One row of ``decisions``, ``trades`` or ``episodes`` (every column given)."""
        cols = self.rows[table]
        for c in cols:
            cols[c].append(row[c])

    def add_columns(self, table: str, columns: Mapping[str, list[Any]]) -> None:
        """Many rows at once, column-wise (equal lengths). A column of the table that is not
        given (rows of a table written before the column existed) is null in those rows."""
        cols = self.rows[table]
        n = len(next(iter(columns.values()))) if columns else 0
        for c in cols:
            cols[c].extend(columns[c] if c in columns else [None] * n)

    def metric(self, row: Mapping[str, Any]) -> None:
        """One metrics row (namespaced keys like ``losses/policy``, ``pnl/realized``)."""
        self.metrics.append(dict(row))

    def frame(self, table: str) -> pl.DataFrame:
        """A table as it stands."""
        if table == "metrics":
            return pl.DataFrame(self.metrics) if self.metrics else pl.DataFrame()
        return pl.DataFrame(self.rows[table], schema=TABLES[table])

    def _directory(self) -> Path:
        if self.dir is None:
            raise RuntimeError("an in-memory run log writes no files")
        return self.dir

    def flush(self) -> None:
        """Rewrite every table file from the rows so far."""
        directory = self._directory()
        for name in TABLES:
            atomic_write_parquet(self.frame(name), directory / f"{name}.parquet")
        if self.metrics:
            atomic_write_parquet(self.frame("metrics"), directory / "metrics.parquet")

    def finish(self, summary: Mapping[str, Any]) -> dict[str, Any]:
        """Flush, then write ``summary.json`` with the digests of the files written."""
        self.flush()
        directory = self._directory()
        files = sorted(p.name for p in directory.glob("*.parquet") if not p.name.startswith("."))
        out = dict(summary)
        out["output_digests"] = {f: file_digest(directory / f) for f in files}
        h = hashlib.blake2b(digest_size=16)
        for f in files:
            h.update(f"{f}:{out['output_digests'][f]}".encode())
        out["outputs_digest"] = h.hexdigest()
        atomic_write_bytes(
            directory / "summary.json", json.dumps(out, indent=2, sort_keys=True).encode()
        )
        return out
