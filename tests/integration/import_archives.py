"""One simulated recording exported to the public archives' formats and imported back through
the real CLI, built once per test session and shared by the round-trip and end-to-end tests.

The simulation (btc and eth, 01:52-02:17 UTC, seed 7) spans the 02:00 boundary. Its
Polymarket streams become PMXT v2 hour files and a static Gamma; its Binance streams one
archive day of zips with checksums. The recorder's warm-up (the hour of closed 1 m bars read
at start) goes into that day's 1 m kline files ahead of the bars built from the trades, as
the real archive holds the bars before any recording. Both archives are served by one
:class:`ArchiveServer` on 127.0.0.1 while ``polyrl import polymarket`` and ``polyrl import
binance`` run as subprocesses into a new root.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from polyrl.events import NS_PER_S, iso_to_ns
from polyrl.recording.reader import RecordingReader
from polyrl.recording.writer import RecordingConfig
from polyrl.sections import Config
from polyrl.sim.record import simulate_to_recording
from polyrl.testing import binance_archive as ba
from polyrl.testing.archive_server import ArchiveServer
from polyrl.testing.pmxt import gamma_objects, gamma_route, write_pmxt_hours

from .conftest import run_cli

DAY = "2024-06-01"
START = iso_to_ns(f"{DAY}T01:52:00Z")
END = START + 25 * 60 * NS_PER_S
ASSETS = ("btc", "eth")
PM_STREAMS = ("polymarket.book", "polymarket.price_change", "polymarket.trade",
              "polymarket.tick_size", "polymarket.market", "polymarket.resolution")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Archives:
    base: Path
    original: Path
    """The simulated recording."""
    archive: Path
    """PMXT hour files and the Binance ``data/...`` tree."""
    gamma: dict
    imported: Path
    """The root both imports wrote."""
    stdout: dict
    """``polymarket`` / ``binance``: the imports' summaries."""
    url: str
    """The archive server's base URL during the imports."""
    seconds: dict


_CACHE: list[Archives] = []


def _export_binance(original: Path, archive: Path) -> None:
    ba.export_day(original, DAY, archive, assets=ASSETS)
    r = RecordingReader(original)
    kl, st = r.read_stream("binance.spot.kline"), r.read_stream("binance.spot.trade")
    for a in ASSETS:
        sym = ba.SYMBOLS[a]
        bars = ba.bars_from_trades(st.filter(pl.col("key") == sym), 60 * NS_PER_S)
        warm = kl.filter((pl.col("key") == sym) & (pl.col("interval") == "1m") & pl.col("closed"))
        warm = warm.filter(pl.col("open_ns") < bars["open_ns"].min()).sort("open_ns")
        assert warm["open_ns"].min() >= iso_to_ns(f"{DAY}T00:00:00Z")  # all in the day's file
        csv = ba.klines_csv(pl.concat([warm.select(bars.columns), bars]), div=ba.MS, header=False)
        ba.write_zip(archive, ba.rel("spot", "klines", sym, DAY, "1m"), csv)


def archives(factory: pytest.TempPathFactory) -> Archives:
    """The session's :class:`Archives` (built on first use)."""
    if _CACHE:
        return _CACHE[0]
    base = factory.mktemp("import-archives")
    t0 = time.monotonic()
    original = base / "original"
    cfg = Config(assets=ASSETS, recording=RecordingConfig(fsync=False))
    simulate_to_recording(original, start_ns=START, end_ns=END, seed=7, config=cfg)
    t1 = time.monotonic()
    r = RecordingReader(original)
    frames = {s: r.read_stream(s) for s in PM_STREAMS}
    archive = base / "archive"
    write_pmxt_hours(frames, archive, row_group_size=2000)
    gamma = gamma_objects(frames["polymarket.market"], frames["polymarket.resolution"])
    _export_binance(original, archive)
    t2 = time.monotonic()
    imported = base / "imported"
    out = {}
    with ArchiveServer(archive) as srv:
        srv.route("/markets", gamma_route(gamma))
        common = ("--assets", ",".join(ASSETS), "--archive", srv.url, "--out", str(imported))
        pm = run_cli("import", "polymarket", "--from", f"{DAY}T01", "--to", f"{DAY}T02",
                     "--gamma", srv.url, *common, timeout=300)  # fmt: skip
        assert pm.returncode == 0, pm.stderr
        bn = run_cli("import", "binance", "--from", DAY, "--to", DAY, *common, timeout=300)
        assert bn.returncode == 0, bn.stderr
        out = {"polymarket": pm.stdout, "binance": bn.stdout}
        url = srv.url
    t3 = time.monotonic()
    seconds = {"simulate": t1 - t0, "export": t2 - t1, "import": t3 - t2}
    _CACHE.append(Archives(base, original, archive, gamma, imported, out, url, seconds))
    return _CACHE[0]
