"""Write Binance data-archive files (zips + ``.CHECKSUM``) in the real layout, from polyrl rows.

For tests and round trips: a recording's binance streams for one UTC day ->
``data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2026-05-01.zip`` and the rest of the
files ``polyrl import binance`` reads (spot aggTrades, klines 1s and 1m built from the trades
or given bars; USD-M aggTrades; mark and index 1m klines from ``binance.futures.mark``; the
monthly fundingRate from its funding schedule; 5-minute metrics from
``binance.futures.open_interest``), each with a ``<sha256>  <name>`` ``.CHECKSUM``, with
the archive's defects on request (:class:`Defects`). :func:`synthetic_day` writes a day of
realistic size for benchmarks.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from polyrl.events import NS_PER_S

SYMBOLS = {"btc": "BTCUSDT", "eth": "ETHUSDT", "sol": "SOLUSDT", "xrp": "XRPUSDT"}
MS = 1_000_000
US = 1_000
DAY_NS = 86_400 * NS_PER_S
KLINE_COLUMNS = (
    "open_time open high low close volume close_time quote_volume count taker_buy_volume "
    "taker_buy_quote_volume ignore"
).split()
UM_AGG_COLUMNS = "agg_trade_id price quantity first_trade_id last_trade_id transact_time "
UM_AGG_COLUMNS += "is_buyer_maker"
METRICS_COLUMNS = (
    "create_time symbol sum_open_interest sum_open_interest_value "
    "count_toptrader_long_short_ratio sum_toptrader_long_short_ratio count_long_short_ratio "
    "sum_taker_long_short_vol_ratio"
).split()


@dataclass(frozen=True, slots=True)
class Defects:
    """The archive's known defects, to write on purpose."""

    spot_header: bool = False
    """Spot files with a header row (the real ones have none)."""
    futures_header: bool = True
    """USD-M files with a header row (the real ones have one since 2022)."""
    spot_unit: str = "auto"
    """Spot timestamps: "ms", "us", or "auto" (µs from 2025-01-01, ms before, as the archive)."""
    duplicate_metrics: int = 0
    """Metrics rows written twice (the first n)."""
    drop_metrics: int = 0
    """Metrics rows left out (the n after the first)."""
    bad_checksum: tuple[str, ...] = ()
    """File types (e.g. "aggTrades", "metrics") whose .CHECKSUM is wrong."""
    missing: tuple[str, ...] = ()
    """File types (e.g. "metrics", "1s") not written: a 404 to the importer."""
    monthly: tuple[str, ...] = ()
    """File types written as their month's file (holding this day) instead of the daily one."""
    shuffle_monthly: bool = False
    """Rows of those monthly files written out of order (as some USD-M monthly files are)."""


def _csv(table: pa.Table, header: bool) -> bytes:
    buf = io.BytesIO()
    opts = pacsv.WriteOptions(include_header=header, quoting_style="none")
    pacsv.write_csv(table, buf, write_options=opts)
    return buf.getvalue()


def write_zip(root: Path | str, rel: str, csv: bytes, *, bad_checksum: bool = False) -> Path:
    """``root/rel`` (a zip holding ``<name>.csv``) and ``root/rel.CHECKSUM``."""
    path = Path(root) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    info = zipfile.ZipInfo(path.name.removesuffix(".zip") + ".csv", (2026, 1, 1, 0, 0, 0))
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(info, csv, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
    data = buf.getvalue()
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    if bad_checksum:
        digest = hashlib.sha256(data + b"x").hexdigest()
    path.with_name(path.name + ".CHECKSUM").write_text(f"{digest}  {path.name}\n")
    return path


def rel(market: str, type_: str, symbol: str, period: str, interval: str | None = None) -> str:
    monthly = len(period) == 7
    sub = f"{type_}/{symbol}" + (f"/{interval}" if interval else "")
    name = f"{symbol}-{interval or type_}-{period}.zip"
    return f"data/{market}/{'monthly' if monthly else 'daily'}/{sub}/{name}"


def _spot_div(date: str, unit: str) -> int:
    if unit == "auto":
        unit = "us" if date >= "2025-01-01" else "ms"
    return US if unit == "us" else MS


def agg_trades_csv(df: pl.DataFrame, *, futures: bool, div: int, header: bool) -> bytes:
    """Trade rows (``trade_id price qty first_id last_id trade_ns buyer_maker``) -> CSV."""
    bm = df["buyer_maker"]
    cols = {
        "agg_trade_id": df["trade_id"],
        "price": df["price"],
        "quantity": df["qty"],
        "first_trade_id": df["first_id"],
        "last_trade_id": df["last_id"],
        "transact_time": df["trade_ns"] // div,
        "is_buyer_maker": bm.cast(pl.String).str.to_lowercase()
        if futures
        else pl.Series(np.where(bm.to_numpy(), "True", "False")),
    }
    if not futures:
        cols["is_best_match"] = pl.Series(["True"] * len(df))
    return _csv(pl.DataFrame(cols).to_arrow(), header)


def bars_from_trades(df: pl.DataFrame, interval_ns: int) -> pl.DataFrame:
    """Trades -> klines (``open_ns close_ns open high low close volume quote_volume trades
    taker_buy_base taker_buy_quote``), one per interval holding a trade."""
    d = df.sort("trade_ns").with_columns(
        (pl.col("trade_ns") // interval_ns * interval_ns).alias("open_ns"),
        (pl.col("price") * pl.col("qty")).alias("_q"),
    )
    buy = ~pl.col("buyer_maker")
    return (
        d.group_by("open_ns", maintain_order=True)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("qty").sum().alias("volume"),
            pl.col("_q").sum().alias("quote_volume"),
            pl.len().cast(pl.Int64).alias("trades"),
            pl.col("qty").filter(buy).sum().alias("taker_buy_base"),
            pl.col("_q").filter(buy).sum().alias("taker_buy_quote"),
        )
        .with_columns((pl.col("open_ns") + interval_ns - MS).alias("close_ns"))
    )


def klines_csv(bars: pl.DataFrame, *, div: int, header: bool) -> bytes:
    """Bars (as :func:`bars_from_trades` gives, or kline rows) -> klines CSV."""
    n = len(bars)
    zero = pl.Series([0.0] * n)
    g = bars.get_column
    cols = {
        "open_time": g("open_ns") // div,
        "open": g("open"),
        "high": g("high"),
        "low": g("low"),
        "close": g("close"),
        "volume": g("volume") if "volume" in bars.columns else zero,
        "close_time": (g("close_ns") + MS) // div - 1,
        "quote_volume": g("quote_volume") if "quote_volume" in bars.columns else zero,
        "count": g("trades") if "trades" in bars.columns else pl.Series([0] * n),
        "taker_buy_volume": g("taker_buy_base") if "taker_buy_base" in bars.columns else zero,
        "taker_buy_quote_volume": g("taker_buy_quote")
        if "taker_buy_quote" in bars.columns
        else zero,
        "ignore": pl.Series(["0"] * n),
    }
    return _csv(pl.DataFrame(cols).to_arrow(), header)


def price_bars(df: pl.DataFrame, column: str) -> pl.DataFrame:
    """``binance.futures.mark`` rows -> 1m OHLC bars of ``column`` by event time."""
    t = pl.col("exch_ns").fill_null(pl.col("recv_ns"))
    return (
        df.with_columns(((t - 1) // (60 * NS_PER_S) * (60 * NS_PER_S)).alias("open_ns"))
        .sort("open_ns", maintain_order=True)
        .group_by("open_ns", maintain_order=True)
        .agg(
            pl.col(column).first().alias("open"),
            pl.col(column).max().alias("high"),
            pl.col(column).min().alias("low"),
            pl.col(column).last().alias("close"),
        )
        .with_columns((pl.col("open_ns") + 60 * NS_PER_S - MS).alias("close_ns"))
    )


def funding_rows(df: pl.DataFrame) -> pl.DataFrame:
    """``binance.futures.mark`` rows -> settlements (``calc_time`` ms, ``funding_interval_hours``,
    ``last_funding_rate``): each funding time the rows moved past, at the last rate announced
    for it."""
    d = df.drop_nulls("funding_rate").sort("recv_ns")
    settled = d.group_by("next_funding_ns", maintain_order=True).agg(pl.col("funding_rate").last())
    settled = settled.filter(pl.col("next_funding_ns") < d["next_funding_ns"].max())
    return pl.DataFrame(
        {
            "calc_time": settled["next_funding_ns"] // MS,
            "funding_interval_hours": pl.Series([8] * len(settled), dtype=pl.Int64),
            "last_funding_rate": settled["funding_rate"],
        }
    )


def write_funding(out: Path | str, symbol: str, rows: pl.DataFrame, bad: bool = False) -> list:
    """Settlements -> one monthly fundingRate file per month they fall in, merged with what an
    earlier call wrote there (so days exported one by one build up the month)."""
    written = []
    month = pl.from_epoch(rows["calc_time"], time_unit="ms").dt.strftime("%Y-%m")
    for m in sorted(set(month.to_list())):
        r = rel("futures/um", "fundingRate", symbol, m)
        part = rows.filter(month == m)
        path = Path(out) / r
        if path.exists():
            with zipfile.ZipFile(path) as z:
                old = pl.read_csv(z.read(z.namelist()[0]), schema=part.schema)
            part = pl.concat([old, part]).unique("calc_time", keep="last").sort("calc_time")
        write_zip(out, r, _csv(part.to_arrow(), True), bad_checksum=bad)
        written.append(r)
    return written


def metrics_csv(df: pl.DataFrame, symbol: str, defects: Defects, header: bool = True) -> bytes:
    """``binance.futures.open_interest`` rows -> metrics CSV (one row per row given; its
    ``create_time`` the row's ``exch_ns``, whole seconds)."""
    t = df["exch_ns"].fill_null(df["recv_ns"])
    ts = pl.from_epoch(t // NS_PER_S, time_unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    n = len(df)
    oi = df["open_interest"]
    cols = {
        "create_time": ts,
        "symbol": pl.Series([symbol] * n),
        "sum_open_interest": oi,
        "sum_open_interest_value": oi * 1000.0,
        "count_toptrader_long_short_ratio": pl.Series([1.5] * n),
        "sum_toptrader_long_short_ratio": pl.Series([1.25] * n),
        "count_long_short_ratio": pl.Series([1.1] * n),
        "sum_taker_long_short_vol_ratio": pl.Series([0.9] * n),
    }
    out = pl.DataFrame(cols)
    if defects.drop_metrics:
        out = pl.concat([out.head(1), out.slice(1 + defects.drop_metrics)])
    if defects.duplicate_metrics:
        out = pl.concat([out, out.head(defects.duplicate_metrics)]).sort("create_time")
    return _csv(out.to_arrow(), header)


def _shuffled(csv: bytes) -> bytes:
    lines = csv.splitlines(keepends=True)
    head = lines[:1] if lines and not lines[0][:1].isdigit() else []
    body = lines[len(head) :]
    order = np.random.default_rng(7).permutation(len(body))
    return b"".join(head + [body[i] for i in order])


def _day_rows(root: Path | str, date: str, stream: str, t_col: str) -> pl.DataFrame:
    from polyrl.recording.reader import RecordingReader

    d = _dt.date.fromisoformat(date)
    dates = [(d + _dt.timedelta(days=k)).isoformat() for k in (-1, 0, 1)]
    df = RecordingReader(root, dates=dates, streams=[stream]).read_stream(stream)
    if df.is_empty():
        return df
    start = int(_dt.datetime.fromisoformat(date).replace(tzinfo=_dt.UTC).timestamp()) * NS_PER_S
    t = pl.col(t_col).fill_null(pl.col("recv_ns"))
    return df.filter((t >= start) & (t < start + DAY_NS))


def export_day(
    recording: Path | str,
    date: str,
    out: Path | str,
    *,
    assets: Sequence[str] = tuple(SYMBOLS),
    defects: Defects = Defects(),
) -> list[str]:
    """A recording's binance rows of one UTC day -> archive files under ``out``; the files'
    paths relative to ``out``. Klines are built from the spot trades; funding files are the
    months of the settlements the mark rows show, merged into earlier exports."""
    written: list[str] = []
    streams = {
        s: _day_rows(recording, date, s, c)
        for s, c in (
            ("binance.spot.trade", "trade_ns"),
            ("binance.futures.trade", "trade_ns"),
            ("binance.futures.mark", "exch_ns"),
            ("binance.futures.open_interest", "exch_ns"),
        )
    }
    sdiv = _spot_div(date, defects.spot_unit)

    def put(r: str, kind: str, csv: bytes) -> None:
        if kind in defects.missing:
            return
        if kind in defects.monthly:
            r = r.replace("/daily/", "/monthly/").replace(f"-{date}.zip", f"-{date[:7]}.zip")
            if defects.shuffle_monthly:
                csv = _shuffled(csv)
        write_zip(out, r, csv, bad_checksum=kind in defects.bad_checksum)
        written.append(r)

    for asset in assets:
        sym = SYMBOLS[asset]
        sel = {s: df.filter(pl.col("key") == sym) if len(df) else df for s, df in streams.items()}
        st = sel["binance.spot.trade"]
        if len(st):
            csv = agg_trades_csv(st, futures=False, div=sdiv, header=defects.spot_header)
            put(rel("spot", "aggTrades", sym, date), "aggTrades", csv)
            for iv, ns in (("1s", NS_PER_S), ("1m", 60 * NS_PER_S)):
                csv = klines_csv(bars_from_trades(st, ns), div=sdiv, header=defects.spot_header)
                put(rel("spot", "klines", sym, date, iv), iv, csv)
        ft = sel["binance.futures.trade"]
        if len(ft):
            csv = agg_trades_csv(ft, futures=True, div=MS, header=defects.futures_header)
            put(rel("futures/um", "aggTrades", sym, date), "futures_aggTrades", csv)
        mk = sel["binance.futures.mark"]
        if len(mk):
            for col, typ in (("mark_px", "markPriceKlines"), ("index_px", "indexPriceKlines")):
                csv = klines_csv(price_bars(mk, col), div=MS, header=defects.futures_header)
                put(rel("futures/um", typ, sym, date, "1m"), typ, csv)
            if "fundingRate" not in defects.missing:
                bad = "fundingRate" in defects.bad_checksum
                written += write_funding(out, sym, funding_rows(mk), bad)
        oi = sel["binance.futures.open_interest"]
        if len(oi):
            put(rel("futures/um", "metrics", sym, date), "metrics", metrics_csv(oi, sym, defects))
    return written


def _coarser(bars: pl.DataFrame, interval_ns: int) -> pl.DataFrame:
    """Bars on a full grid -> bars of a longer interval (every interval present)."""
    sums = ("volume", "quote_volume", "trades", "taker_buy_base", "taker_buy_quote")
    return (
        bars.with_columns(pl.col("open_ns") // interval_ns * interval_ns)
        .group_by("open_ns", maintain_order=True)
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            *[pl.col(c).sum() for c in sums],
        )
        .with_columns((pl.col("open_ns") + interval_ns - MS).alias("close_ns"))
    )


def _random_trades(rng: np.random.Generator, start: int, n: int, px0: float) -> pl.DataFrame:
    t = np.sort(rng.integers(start, start + DAY_NS, n)) // MS * MS
    px = np.round(px0 * np.exp(np.cumsum(rng.normal(0, 2e-5, n))), 2)
    ids = np.arange(n, dtype=np.int64) + 1_000_000
    return pl.DataFrame(
        {
            "trade_id": ids,
            "price": px,
            "qty": np.round(rng.exponential(0.05, n) + 0.001, 5),
            "first_id": ids * 2,
            "last_id": ids * 2 + 1,
            "trade_ns": t,
            "buyer_maker": rng.random(n) < 0.5,
        }
    )


def synthetic_day(
    out: Path | str,
    date: str,
    *,
    assets: Sequence[str] = tuple(SYMBOLS),
    spot_trades: int = 1_500_000,
    futures_trades: int = 1_000_000,
    seed: int = 0,
) -> list[str]:
    """A day of archive files of realistic size (random walk prices): per asset
    ``spot_trades`` spot and ``futures_trades`` USD-M aggTrades, 86,400 1 s and 1,440 1 m
    klines, 1,440 mark and index bars, 288 metrics rows and the month's funding file."""
    rng = np.random.default_rng(seed)
    start = int(_dt.datetime.fromisoformat(date).replace(tzinfo=_dt.UTC).timestamp()) * NS_PER_S
    written: list[str] = []
    sdiv = _spot_div(date, "auto")
    for k, asset in enumerate(assets):
        sym = SYMBOLS[asset]
        px0 = (60_000.0, 3_000.0, 150.0, 0.6)[k % 4]

        st = _random_trades(rng, start, spot_trades, px0)
        written.append(rel("spot", "aggTrades", sym, date))
        write_zip(out, written[-1], agg_trades_csv(st, futures=False, div=sdiv, header=False))
        grid = pl.DataFrame({"open_ns": np.arange(start, start + DAY_NS, NS_PER_S)})
        bars = grid.join(bars_from_trades(st, NS_PER_S), on="open_ns", how="left")
        bars = bars.with_columns(pl.col("close").forward_fill().backward_fill())
        bars = bars.with_columns(
            pl.col("open").fill_null(pl.col("close")),
            pl.col("high").fill_null(pl.col("close")),
            pl.col("low").fill_null(pl.col("close")),
            (pl.col("open_ns") + NS_PER_S - MS).alias("close_ns"),
        ).fill_null(0)
        written.append(rel("spot", "klines", sym, date, "1s"))
        write_zip(out, written[-1], klines_csv(bars, div=sdiv, header=False))
        written.append(rel("spot", "klines", sym, date, "1m"))
        m1 = klines_csv(_coarser(bars, 60 * NS_PER_S), div=sdiv, header=False)
        write_zip(out, written[-1], m1)
        ft = _random_trades(rng, start, futures_trades, px0)
        written.append(rel("futures/um", "aggTrades", sym, date))
        write_zip(out, written[-1], agg_trades_csv(ft, futures=True, div=MS, header=True))
        mbars = bars_from_trades(ft, 60 * NS_PER_S)
        for typ in ("markPriceKlines", "indexPriceKlines"):
            written.append(rel("futures/um", typ, sym, date, "1m"))
            write_zip(out, written[-1], klines_csv(mbars, div=MS, header=True))
        t5 = np.arange(start, start + DAY_NS, 300 * NS_PER_S)
        oi = pl.DataFrame(
            {"recv_ns": t5, "exch_ns": t5, "open_interest": 1e4 + rng.random(len(t5))}
        )
        written.append(rel("futures/um", "metrics", sym, date))
        write_zip(out, written[-1], metrics_csv(oi, sym, Defects()))
        ft8 = np.arange(start - 8 * 3600 * NS_PER_S, start + DAY_NS, 8 * 3600 * NS_PER_S)
        fund = pl.DataFrame(
            {"calc_time": ft8 // MS, "funding_interval_hours": [8] * len(ft8)}
        ).with_columns(pl.Series("last_funding_rate", rng.normal(1e-4, 5e-5, len(ft8))))
        written.append(rel("futures/um", "fundingRate", sym, date[:7]))
        write_zip(out, written[-1], _csv(fund.to_arrow(), True))
    return written
