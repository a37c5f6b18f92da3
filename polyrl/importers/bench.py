"""``polyrl bench import``: how fast the importers turn local archive files into a recording,
and how few bytes a remote PMXT import fetches.

Inputs are generated once into ``workdir`` (and reused while the parameters match):

- PMXT hour files in the archive's exact layout (:func:`polyrl.testing.pmxt.synthetic_hour`):
  the four assets' 15-minute markets at ``pmxt_rows_per_hour`` rows an hour (all four
  together) among ``other_markets`` other markets of ``other_rows`` rows each, sorted by
  market, row groups of 1,048,576 rows, ZSTD(9); and a Gamma responder for their markets;
- a Binance day of the four assets (:func:`polyrl.testing.binance_archive.synthetic_day`).

Then, in this one process, ``import_range`` (Polymarket) over the hours and
``import_binance`` over the day, each stage timed in CPU seconds (``time.process_time``:
every thread of the process, so the figure is what one core would spend) and wall seconds:
read (PMXT: the row groups holding the wanted markets; Binance: fetch, sha256, unzip, CSV),
convert, and store write (sequencing, Parquet, fsync). ``remote`` repeats the PMXT import
through the loopback :class:`~polyrl.testing.archive_server.ArchiveServer` with range reads
and reports the bytes fetched against the file sizes, per hour and per market-hour.

Volume assumption (:data:`VOLUME_NOTE`): see the constant.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ASSETS = ["btc", "eth", "sol", "xrp"]
DATE = "2026-05-01"
REAL_ROW_GROUPS = 44
"""Row groups of a real PMXT hour (45.5 M rows, 260 MB: FACTS §9)."""
VOLUME_NOTE = (
    "assumed volume: the four assets' 15-minute markets hold {rows:,} PMXT rows an hour "
    "together (90% price_change entries, 7% last_trade_price, 3% book; the default, "
    "1,000,000, is ~70 rows/s per market). Bounds: the simulator, calibrated to ~4 "
    "trades/s per token, emits ~300,000 CLOB rows an hour for the four; a raw 5-minute "
    "capture of 7 coins is ~72 M frames a day "
    "(~430,000 an hour per coin), which for four 15-minute coins would be ~2.6 M rows an "
    "hour, 6% of a real 45 M-row hour"
)


@dataclass(slots=True)
class Stage:
    cpu_s: float = 0.0
    wall_s: float = 0.0
    rows: int = 0

    def rows_per_cpu_s(self) -> float:
        return self.rows / self.cpu_s if self.cpu_s > 0 else 0.0


@dataclass(slots=True)
class ImportBench:
    machine: str
    load_avg: list[float]
    assumption: str
    hours: int
    pmxt_rows_per_hour: int
    other_markets: int
    other_rows: int
    row_group_rows: int
    pmxt_files_bytes: int = 0
    pmxt_rows_in_files: int = 0
    pmxt: dict[str, dict[str, float]] = field(default_factory=dict)
    pmxt_cpu_s: float = 0.0
    pmxt_wall_s: float = 0.0
    pmxt_rows_out: int = 0
    pmxt_hour_cpu_s: list[float] = field(default_factory=list)
    binance_files_bytes: int = 0
    binance: dict[str, dict[str, float]] = field(default_factory=dict)
    binance_cpu_s: float = 0.0
    binance_wall_s: float = 0.0
    binance_rows_out: int = 0
    day_cpu_s: dict[str, float] = field(default_factory=dict)
    remote: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


Progress = Callable[[str], None]


def _machine() -> str:
    return (
        f"{platform.machine()} {os.cpu_count()} cores, {platform.system()}, "
        f"Python {platform.python_version()}"
    )


@contextmanager
def _timed(module: Any, name: str, stage: Stage, rows: Callable[[Any, tuple], int]) -> Iterator:
    """Wrap ``module.name`` so each call adds its CPU and wall time, and ``rows(result,
    args)`` rows, to ``stage``; restored on exit."""
    orig = getattr(module, name)

    def wrapped(*args: Any, **kw: Any) -> Any:
        c, w = time.process_time(), time.perf_counter()
        out = orig(*args, **kw)
        stage.cpu_s += time.process_time() - c
        stage.wall_s += time.perf_counter() - w
        stage.rows += rows(out, args)
        return out

    setattr(module, name, wrapped)
    try:
        yield
    finally:
        setattr(module, name, orig)


def _stages(stages: dict[str, Stage]) -> dict[str, dict[str, float]]:
    return {
        k: {"cpu_s": s.cpu_s, "wall_s": s.wall_s, "rows": s.rows,
            "rows_per_cpu_s": s.rows_per_cpu_s()}
        for k, s in stages.items()
    }  # fmt: skip


def _hour0() -> int:
    return int(_dt.datetime.fromisoformat(DATE).replace(tzinfo=_dt.UTC).timestamp())


def _pmxt_inputs(
    work: Path, hours: int, rows: int, other_m: int, other_r: int, group: int, say: Progress
):
    from polyrl.importers.pmxt_format import hour_object
    from polyrl.testing.pmxt import synthetic_gamma, synthetic_hour, synthetic_markets

    h0 = _hour0()
    markets = synthetic_markets(ASSETS, h0, h0 + hours * 3600)
    folder = work / f"pmxt-{hours}h-{rows}-{other_m}x{other_r}-rg{group}"
    done = folder / ".complete"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        for k in range(hours):
            say(f"generating PMXT hour {k + 1}/{hours} ({rows:,} + {other_m * other_r:,} rows)")
            synthetic_hour(folder / hour_object(DATE, k), h0 + 3600 * k, markets, rows=rows,
                           other_markets=other_m, other_rows=other_r, seed=k,
                           row_group_size=group)  # fmt: skip
        done.write_text("ok\n")
    return folder, synthetic_gamma(markets)


def _binance_inputs(work: Path, spot_trades: int, futures_trades: int, say: Progress) -> Path:
    from polyrl.testing.binance_archive import synthetic_day

    folder = work / f"binance-{spot_trades}-{futures_trades}"
    done = folder / ".complete"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        say(f"generating a Binance day ({spot_trades:,} spot, {futures_trades:,} USD-M trades "
            "per asset)")  # fmt: skip
        synthetic_day(folder, DATE, assets=ASSETS, spot_trades=spot_trades,
                      futures_trades=futures_trades)  # fmt: skip
        done.write_text("ok\n")
    return folder


def _size(folder: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in folder.rglob(pattern))


def _import_pmxt(out: Path, archive: Any, gamma: Any, hours: int, res: ImportBench) -> dict:
    from polyrl.importers import polymarket as pm

    stages = {"read": Stage(), "convert": Stage(), "write": Stage()}
    shutil.rmtree(out, ignore_errors=True)
    start = _dt.datetime.fromisoformat(DATE).replace(tzinfo=_dt.UTC)

    def _write_rows(out_: Any, args: tuple) -> int:
        return sum(out_.rows.values()) if args[1].source == "pmxt" else 0

    hour_cpu: list[float] = []
    orig_unit = pm._pmxt_unit

    def _unit(*args: Any, **kw: Any) -> Any:
        c0 = time.process_time()
        got = orig_unit(*args, **kw)
        hour_cpu.append(-c0)  # completed by its write below
        return got

    def _hour_rows(out_: Any, args: tuple) -> int:
        if args[1].source == "pmxt" and hour_cpu and hour_cpu[-1] < 0:
            hour_cpu[-1] += time.process_time()
        return _write_rows(out_, args)

    c, w = time.process_time(), time.perf_counter()
    pm._pmxt_unit = _unit
    with (
        _timed(pm, "read_hour", stages["read"],
               lambda o, _a: 0 if o.table is None else o.table.num_rows),
        _timed(pm, "convert_hour", stages["convert"],
               lambda o, _a: sum(t.num_rows for t in o.values())),
        _timed(pm, "write_unit", stages["write"], _hour_rows),
    ):  # fmt: skip
        try:
            s = pm.import_range(out, start, start + _dt.timedelta(hours=hours), assets=ASSETS,
                                archive=archive, gamma=gamma)  # fmt: skip
        finally:
            pm._pmxt_unit = orig_unit
    cpu, wall = time.process_time() - c, time.perf_counter() - w
    rows = sum(n for st, n in s.rows.items() if st in pm.STREAMS)
    return {"stages": _stages(stages), "cpu_s": cpu, "wall_s": wall, "rows": rows,
            "summary": s, "hours": hour_cpu}  # fmt: skip


def pmxt_day_cpu_s(total: float, per_hour: list[float]) -> float:
    """A day's PMXT CPU seconds from the bench's hours: an import of a day is one process
    whose first hour pays for memory first touched (and library loading) and whose 23 others
    reuse it, so the day is the first hour + 23 x the mean of the later ones, plus the rest
    of the import (Gamma units) scaled to 24 hours. With one hour, 24 x the total."""
    n = len(per_hour)
    if n < 2:
        return total * 24 / max(1, n)
    rest = (total - sum(per_hour)) * 24 / n
    return per_hour[0] + 23 * sum(per_hour[1:]) / (n - 1) + rest


def bench_import(
    workdir: Path | str,
    *,
    hours: int = 2,
    pmxt_rows_per_hour: int = 1_000_000,
    other_markets: int = 400,
    other_rows: int = 10_000,
    spot_trades: int = 1_500_000,
    futures_trades: int = 1_000_000,
    row_group_rows: int = 1_048_576,
    remote: bool = False,
    progress: Progress | None = None,
) -> ImportBench:
    """Generate the inputs (or reuse them) and time the imports (see the module docstring)."""
    import pyarrow.parquet as pq

    from polyrl.importers import binance as bn
    from polyrl.importers import binance_convert as conv
    from polyrl.importers.fetch import HttpArchive, LocalArchive
    from polyrl.testing.archive_server import ArchiveServer
    from polyrl.testing.pmxt import gamma_route

    say = progress or (lambda _m: None)
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    res = ImportBench(machine=_machine(), load_avg=[], hours=hours,
                      assumption=VOLUME_NOTE.format(rows=pmxt_rows_per_hour),
                      pmxt_rows_per_hour=pmxt_rows_per_hour, other_markets=other_markets,
                      other_rows=other_rows, row_group_rows=row_group_rows)  # fmt: skip
    pm_dir, gamma_objs = _pmxt_inputs(
        work, hours, pmxt_rows_per_hour, other_markets, other_rows, row_group_rows, say
    )
    bn_dir = _binance_inputs(work, spot_trades, futures_trades, say)
    res.pmxt_files_bytes = _size(pm_dir, "*.parquet")
    res.binance_files_bytes = _size(bn_dir, "*.zip")
    res.pmxt_rows_in_files = sum(
        pq.ParquetFile(p).metadata.num_rows for p in sorted(pm_dir.glob("*.parquet"))
    )
    res.load_avg = [round(x, 2) for x in os.getloadavg()]

    with ArchiveServer(pm_dir) as srv:
        srv.route("/markets", gamma_route(gamma_objs))
        gamma = HttpArchive(srv.url)
        say(f"importing {hours} PMXT hours from local files")
        got = _import_pmxt(work / "out-pmxt", LocalArchive(pm_dir), gamma, hours, res)
        res.pmxt, res.pmxt_cpu_s, res.pmxt_wall_s = got["stages"], got["cpu_s"], got["wall_s"]
        res.pmxt_rows_out = got["rows"]
        res.pmxt_hour_cpu_s = got["hours"]
        if remote:
            say(f"importing {hours} PMXT hours through the loopback archive server")
            got = _import_pmxt(work / "out-remote", HttpArchive(srv.url), gamma, hours, res)
            res.remote = _remote_figures(work / "out-remote", got, hours)

    say("importing a Binance day from local files")
    stages = {"read": Stage(), "convert": Stage(), "write": Stage()}
    out = work / "out-binance"
    shutil.rmtree(out, ignore_errors=True)

    def _conv_rows(o: Any, _a: tuple) -> int:
        t = o[0] if isinstance(o, tuple) else o
        return t.num_rows

    c, w = time.process_time(), time.perf_counter()
    with (
        _timed(bn._Reader, "get", stages["read"],
               lambda o, _a: 0 if o is None else o[0].table.num_rows),
        _timed(conv, "trades", stages["convert"], _conv_rows),
        _timed(conv, "klines", stages["convert"], _conv_rows),
        _timed(conv, "mark", stages["convert"], _conv_rows),
        _timed(conv, "open_interest", stages["convert"], _conv_rows),
        _timed(bn, "write_unit", stages["write"], lambda o, _a: sum(o.rows.values())),
    ):  # fmt: skip
        s = bn.import_binance(out, DATE, DATE, assets=ASSETS, archive=str(bn_dir))
    res.binance_cpu_s, res.binance_wall_s = time.process_time() - c, time.perf_counter() - w
    res.binance = _stages(stages)
    res.binance_rows_out = sum(s.rows.values())
    pmxt_day = pmxt_day_cpu_s(res.pmxt_cpu_s, res.pmxt_hour_cpu_s)
    res.day_cpu_s = {"polymarket": pmxt_day, "binance": res.binance_cpu_s,
                     "total": pmxt_day + res.binance_cpu_s}  # fmt: skip
    res.load_avg = [round(x, 2) for x in os.getloadavg()]
    return res


def _remote_figures(out: Path, got: dict, hours: int) -> dict[str, Any]:
    """Bytes fetched against file sizes, per hour (from the PMXT units' markers)."""
    per_hour = []
    for p in sorted((out / ".import" / "pmxt").glob("*.json")):
        m = json.loads(p.read_text())
        for obj in m["objects"]:
            per_hour.append({
                "hour": m["unit"].removeprefix("pmxt-"),
                "bytes_fetched": int(obj["bytes_fetched"]),
                "size": int(obj["size"]),
                "pct": 100.0 * int(obj["bytes_fetched"]) / max(1, int(obj["size"])),
                "row_groups": obj["row_groups"],
                "markets": int(m["info"]["markets"]),
            })  # fmt: skip
    fetched = sum(h["bytes_fetched"] for h in per_hour)
    size = sum(h["size"] for h in per_hour)
    market_hours = sum(h["markets"] for h in per_hour)
    n = max((h["markets"] for h in per_hour), default=0)
    return {
        "cpu_s": got["cpu_s"],
        "wall_s": got["wall_s"],
        "bytes_fetched": fetched,
        "bytes_total": size,
        "pct": 100.0 * fetched / max(1, size),
        "bytes_per_market_hour": fetched / max(1, market_hours),
        "per_hour": per_hour,
        "real_file_share_estimate_pct": 100.0 * (1 - (1 - 1 / REAL_ROW_GROUPS) ** n),
        "real_file_note": (
            f"a real hour has ~{REAL_ROW_GROUPS} row groups; {n} wanted markets at random "
            "places in the market order touch this share of them on average, and a row group "
            "is the smallest unit read"
        ),
    }
