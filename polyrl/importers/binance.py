"""``polyrl import binance``: Binance's public data archive -> the binance streams, per UTC day.

For each day and asset it reads (from a folder laid out like the archive, or over HTTP)
the daily zips of spot ``aggTrades``, spot ``klines`` 1s and 1m, USD-M ``aggTrades``,
``markPriceKlines`` and ``indexPriceKlines`` 1m and ``metrics``, and the monthly USD-M
``fundingRate`` (of the day's month and the one before, for the rate in force at midnight).
A daily file the archive lacks is read from its month's file when that exists, else it is a
gap of that stream for the day. Each zip's ``.CHECKSUM`` (sha256) is verified before its rows
are used: a mismatch stops the import with a line naming the file (or, when asked, makes
it a gap). The rows are converted (:mod:`polyrl.importers.binance_convert`), given receive
times of venue time + the configured delay, and written as one unit per UTC day through
:mod:`polyrl.importers.store`, with one ``import`` status row per file read (file, URL,
sha256, bytes, delay). The unit's marker keeps what was repaired (:mod:`binance_csv`), the
gaps, and each file's sha256, so a later run skips finished days unless a file's checksum
changed since (a replaced file): that day is imported again and the replacement reported.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from polyrl.errors import PolyrlError
from polyrl.events import NS_PER_S
from polyrl.importers import binance_convert as conv
from polyrl.importers.binance_csv import Parsed, day_slice, parse, unzip_csv
from polyrl.importers.config import ImportConfig
from polyrl.importers.fetch import Archive, ArchiveError, open_archive
from polyrl.importers.store import (
    Gap,
    Unit,
    import_entry,
    system_allocator,
    unit_done,
    write_unit,
)

SOURCE = "binance"
SYMBOLS = {"btc": "BTCUSDT", "eth": "ETHUSDT", "sol": "SOLUSDT", "xrp": "XRPUSDT"}
DAY_NS = 86_400 * NS_PER_S
METRICS_STEP_NS = 300 * NS_PER_S


@dataclass(frozen=True, slots=True)
class FileType:
    """One archive file type: market path, type, kline interval, the stream it feeds."""

    market: str  # "spot" or "futures/um"
    type: str
    stream: str
    interval: str | None = None
    monthly_only: bool = False

    def rel(self, symbol: str, period: str, monthly: bool) -> str:
        """``data/spot/daily/klines/BTCUSDT/1s/BTCUSDT-1s-2026-05-01.zip`` and the like."""
        sub = f"{self.type}/{symbol}" + (f"/{self.interval}" if self.interval else "")
        name = f"{symbol}-{self.interval or self.type}-{period}.zip"
        return f"data/{self.market}/{'monthly' if monthly else 'daily'}/{sub}/{name}"


SPOT_TRADES = FileType("spot", "aggTrades", "binance.spot.trade")
SPOT_KLINES_1S = FileType("spot", "klines", "binance.spot.kline", "1s")
SPOT_KLINES_1M = FileType("spot", "klines", "binance.spot.kline", "1m")
UM_TRADES = FileType("futures/um", "aggTrades", "binance.futures.trade")
UM_MARK = FileType("futures/um", "markPriceKlines", "binance.futures.mark", "1m")
UM_INDEX = FileType("futures/um", "indexPriceKlines", "binance.futures.mark", "1m")
UM_METRICS = FileType("futures/um", "metrics", "binance.futures.open_interest")
UM_FUNDING = FileType("futures/um", "fundingRate", "binance.futures.mark", monthly_only=True)
DAILY_TYPES = (
    SPOT_TRADES,
    SPOT_KLINES_1S,
    SPOT_KLINES_1M,
    UM_TRADES,
    UM_MARK,
    UM_INDEX,
    UM_METRICS,
)


class ChecksumError(ArchiveError):
    """A zip whose sha256 differs from its ``.CHECKSUM`` (or has none)."""


@dataclass(slots=True)
class Summary:
    """What an import did, for the CLI's stdout."""

    days_imported: list[str] = field(default_factory=list)
    days_skipped: list[str] = field(default_factory=list)
    files: int = 0
    rows: Counter = field(default_factory=Counter)
    repairs: Counter = field(default_factory=Counter)
    gaps: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0
    delays_ms: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [
            f"days: {len(self.days_imported)} imported, {len(self.days_skipped)} already done",
            f"files: {self.files} ({self.bytes:,} bytes)",
        ]
        out += [f"rows {s}: {n:,}" for s, n in sorted(self.rows.items())]
        out += [f"repair {k}: {n:,}" for k, n in sorted(self.repairs.items())]
        out += [f"replaced: {r}" for r in self.replaced]
        out.append(f"gaps: {len(self.gaps)}")
        out += [f"gap: {g}" for g in self.gaps]
        out.append("delays: " + ", ".join(f"{k} {v:g} ms" for k, v in self.delays_ms.items()))
        out.append(f"seconds: {self.seconds:.1f}")
        return out


def checksum_of(text: bytes, rel: str) -> str:
    """The sha256 hex of a ``.CHECKSUM`` file (``<hex>  <name>``)."""
    parts = text.decode("ascii", "replace").split()
    if not parts or len(parts[0]) != 64:
        raise ChecksumError(f"{rel}.CHECKSUM: not a sha256 checksum line")
    return parts[0].lower()


class _Reader:
    """Fetches and verifies zips, parses them once (a monthly file serves many days)."""

    def __init__(self, archive: Archive, *, checksum_gap: bool, say: Callable[[str], None]) -> None:
        self.archive = archive
        self.checksum_gap = checksum_gap
        self.say = say
        self.cache: dict[str, tuple[Parsed, dict[str, Any]] | None] = {}

    def expected(self, rel: str) -> str | None:
        if self.archive.stat(rel + ".CHECKSUM") is None:
            return None
        return checksum_of(self.archive.read(rel + ".CHECKSUM"), rel)

    def get(self, rel: str, kind: str) -> tuple[Parsed, dict[str, Any]] | None:
        """Parsed rows and the object entry, or None when the archive lacks the file."""
        if rel in self.cache:
            return self.cache[rel]
        info = self.archive.stat(rel)
        if info is None:
            if "/monthly/" in rel:
                self.cache[rel] = None
            self.say(f"  {rel}: not in the archive")
            return None
        data = self.archive.read(rel)
        got = hashlib.sha256(data).hexdigest()
        want = self.expected(rel)
        if want != got:
            why = "has no .CHECKSUM" if want is None else f"sha256 {got} != .CHECKSUM {want}"
            raise ChecksumError(f"{self.archive.location(rel)}: {why}")
        parsed = parse(kind, unzip_csv(data, rel), rel)
        self.say(f"  {rel}: {len(data):,} bytes, {parsed.table.num_rows:,} rows, sha256 ok")
        obj = {"file": rel, "url": self.archive.location(rel), "sha256": got, "bytes": len(data)}
        if "/monthly/" in rel:  # serves every day of its month; a daily file is read once
            self.cache[rel] = (parsed, obj)
        return parsed, obj


@dataclass(slots=True)
class _Day:
    date: str
    start_ns: int
    tables: dict[str, list[pa.Table]] = field(default_factory=dict)
    objects: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    repairs: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def add(self, stream: str, table: pa.Table) -> None:
        self.tables.setdefault(stream, []).append(table)


def _month(date: str, back: int = 0) -> str:
    d = _dt.date.fromisoformat(date).replace(day=1)
    for _ in range(back):
        d = (d - _dt.timedelta(days=1)).replace(day=1)
    return d.strftime("%Y-%m")


def _load(rd: _Reader, day: _Day, ft: FileType, symbol: str, delay_ms: float) -> pa.Table | None:
    """One file type's rows for the day (daily file, else the month's), or None (a gap)."""
    end = day.start_ns + DAY_NS
    daily = ft.rel(symbol, day.date, monthly=False)
    candidates = [(daily, False), (ft.rel(symbol, day.date[:7], monthly=True), True)]
    for rel, monthly in candidates:
        try:
            got = rd.get(rel, ft.type)
        except ChecksumError as e:
            if not rd.checksum_gap:
                raise
            day.repairs["checksum_mismatch_gap"] += 1
            day.gaps.append(Gap(day.start_ns, end, f"{rel}: checksum mismatch", ft.stream))
            day.notes.append(str(e))
            return None
        if got is None:
            continue
        parsed, obj = got
        day.objects.append({**obj, "stream": ft.stream, "delay_ms": delay_ms})
        _note_parse(day, parsed, rel)
        if monthly:
            day.repairs["monthly_file_for_missing_day"] += 1
        table = parsed.table
        tcol = {"aggTrades": "time", "metrics": "create_time"}.get(ft.type, "open_time")
        return day_slice(table, tcol, day.start_ns, end) if monthly else table
    day.repairs["missing_file_gap"] += 1
    day.gaps.append(Gap(day.start_ns, end, f"{daily} not in the archive", ft.stream))
    return None


def _note_parse(day: _Day, parsed: Parsed, rel: str) -> None:
    if parsed.header:
        day.repairs["csv_header_skipped"] += 1
    if "us" in parsed.time_units.values():
        day.repairs["timestamps_us_files"] += 1
    for k, n in parsed.repairs.items():
        day.repairs[k] += n
        day.notes.append(f"{rel}: {k} {n}")


def _funding(rd: _Reader, day: _Day, symbol: str, delay_ms: float) -> pa.Table | None:
    parts = []
    for month in (_month(day.date, 1), _month(day.date)):
        rel = UM_FUNDING.rel(symbol, month, monthly=True)
        try:
            got = rd.get(rel, "fundingRate")
        except ChecksumError as e:
            if not rd.checksum_gap:
                raise
            day.repairs["checksum_mismatch_gap"] += 1
            day.notes.append(str(e))
            got = None
        if got is None:
            day.notes.append(f"{rel} not in the archive")
            continue
        parsed, obj = got
        day.objects.append({**obj, "stream": UM_FUNDING.stream, "delay_ms": delay_ms})
        _note_parse(day, parsed, rel)
        parts.append(parsed.table)
    return pa.concat_tables(parts) if parts else None


def convert_day(rd: _Reader, date: str, assets: Sequence[str], cfg: ImportConfig) -> _Day:
    """All files of one UTC day for ``assets`` -> stream tables, objects, gaps, repairs."""
    start = int(_dt.datetime.fromisoformat(date).replace(tzinfo=_dt.UTC).timestamp()) * NS_PER_S
    day = _Day(date, start)
    spot_ms, fut_ms = cfg.binance_spot_delay_ms, cfg.binance_futures_delay_ms
    spot_ns, fut_ns = int(round(spot_ms * 1e6)), int(round(fut_ms * 1e6))
    for asset in assets:
        sym = SYMBOLS[asset]
        t = _load(rd, day, SPOT_TRADES, sym, spot_ms)
        if t is not None:
            day.add(
                SPOT_TRADES.stream,
                conv.trades(t, symbol=sym, asset=asset, delay_ns=spot_ns, futures=False),
            )
        for ft in (SPOT_KLINES_1S, SPOT_KLINES_1M):
            t = _load(rd, day, ft, sym, spot_ms)
            if t is not None:
                day.add(
                    ft.stream,
                    conv.klines(
                        t, interval=ft.interval or "", symbol=sym, asset=asset, delay_ns=spot_ns
                    ),
                )
        t = _load(rd, day, UM_TRADES, sym, fut_ms)
        if t is not None:
            day.add(
                UM_TRADES.stream,
                conv.trades(t, symbol=sym, asset=asset, delay_ns=fut_ns, futures=True),
            )
        mk = _load(rd, day, UM_MARK, sym, fut_ms)
        ix = _load(rd, day, UM_INDEX, sym, fut_ms)
        if mk is not None and ix is not None:
            fund = _funding(rd, day, sym, fut_ms)
            table, counts = conv.mark(mk, ix, fund, symbol=sym, asset=asset, delay_ns=fut_ns)
            day.add(UM_MARK.stream, table)
            for k, n in counts.items():
                if n:
                    day.repairs[k] += n
                    day.notes.append(f"{sym} {date}: {k} {n}")
        t = _load(rd, day, UM_METRICS, sym, fut_ms)
        if t is not None:
            day.add(
                UM_METRICS.stream, conv.open_interest(t, symbol=sym, asset=asset, delay_ns=fut_ns)
            )
            times = t.column("create_time").to_numpy()
            for a, b, n in conv.missing_slots(times, start, start + DAY_NS, METRICS_STEP_NS):
                day.repairs["metrics_rows_missing"] += n
                day.notes.append(f"{sym} metrics: {n} 5-minute rows missing from {_iso(a)}")
                del b
    return day


def _iso(ns: int) -> str:
    return _dt.datetime.fromtimestamp(ns / NS_PER_S, _dt.UTC).strftime("%Y-%m-%dT%H:%M")


def _days(start: str, end: str) -> list[str]:
    try:
        a, b = _dt.date.fromisoformat(start), _dt.date.fromisoformat(end)
    except ValueError as e:
        raise PolyrlError(f"--from/--to: {e} (want YYYY-MM-DD)") from None
    if b < a:
        raise PolyrlError(f"--to {end} is before --from {start}")
    return [(a + _dt.timedelta(days=k)).isoformat() for k in range((b - a).days + 1)]


def _replaced(rd: _Reader, marker: dict[str, Any]) -> list[str]:
    """Files of an earlier import whose archive checksum has changed since."""
    out = []
    for obj in marker.get("objects", []):
        rel, old = obj.get("file"), obj.get("sha256")
        if not rel or not old:
            continue
        try:
            new = rd.expected(rel)
        except ChecksumError:
            new = None
        if new is not None and new != old:
            out.append(rel)
    return out


def import_binance(
    root: Path | str,
    start: str,
    end: str,
    *,
    assets: Sequence[str] = tuple(SYMBOLS),
    cfg: ImportConfig | None = None,
    archive: str | None = None,
    force: bool = False,
    allow_mixed: bool = False,
    checksum_gap: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Summary:
    """Import days ``start``..``end`` (inclusive, UTC) of ``assets`` into ``root``."""
    cfg = cfg or ImportConfig()
    bad = [a for a in assets if a not in SYMBOLS]
    if bad or not assets:
        raise PolyrlError(f"--assets: {bad or 'none'} not in {', '.join(SYMBOLS)}")
    days = _days(start, end)
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    base = archive or cfg.binance_archive
    ar = open_archive(base, retries=cfg.retries, backoff_s=cfg.backoff_s, timeout_s=cfg.timeout_s)
    rd = _Reader(ar, checksum_gap=checksum_gap, say=say)
    delays = {"spot": cfg.binance_spot_delay_ms, "futures": cfg.binance_futures_delay_ms}
    entry = import_entry(
        SOURCE, ar.base, by="polyrl import binance", delay_ms=delays, assets=list(assets)
    )
    s = Summary(delays_ms=delays)
    for date in days:
        earlier = unit_done(root, Unit(SOURCE, date, None))
        replaced = _replaced(rd, earlier) if earlier else []
        had = list((earlier or {}).get("info", {}).get("assets", []))
        # One unit holds the day's assets: importing more keeps the ones imported before.
        want = [a for a in SYMBOLS if a in set(assets) | set(had)]
        if earlier and set(want) == set(had) and not force and not replaced:
            s.days_skipped.append(date)
            say(f"{date}: already imported, skipped")
            continue
        for rel in replaced:
            say(f"{date}: {rel} was replaced in the archive since it was imported; re-importing")
        with system_allocator():
            day = convert_day(rd, date, want, cfg)
        day.repairs["files_replaced"] += len(replaced)
        tables = {st: pa.concat_tables(ts) for st, ts in day.tables.items()}
        info = {
            "assets": want,
            "repairs": {k: n for k, n in sorted(day.repairs.items()) if n},
            "notes": day.notes,
            "replaced": replaced,
        }
        unit = Unit(SOURCE, date, None, tables, day.objects, day.gaps, info)
        res = write_unit(root, unit, entry=entry, allow_mixed=allow_mixed)
        s.days_imported.append(date)
        s.files += len(day.objects)
        s.bytes += sum(int(o["bytes"]) for o in day.objects)
        s.rows.update({k: v for k, v in res.rows.items()})
        s.repairs.update({k: n for k, n in day.repairs.items() if n})
        s.gaps += [g.what for g in day.gaps]
        s.replaced += replaced
        say(
            f"{date}: {len(day.objects)} files, "
            f"{sum(t.num_rows for t in tables.values()):,} rows, {len(day.gaps)} gaps"
        )
    s.seconds = time.perf_counter() - t0
    return s
