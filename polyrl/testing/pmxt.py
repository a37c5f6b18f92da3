"""PMXT-format hour files and a static Gamma, written from polyrl's own Polymarket rows.

For tests and round trips: :func:`write_pmxt_hours` exports a recording's
``polymarket.book`` / ``price_change`` / ``trade`` / ``tick_size`` rows as the PMXT v2 archive
stores them (:data:`polyrl.importers.pmxt_format.PMXT_SCHEMA`: the documented column order and
types, NULL outside the owning event type, rows sorted by ``(market, asset_id,
timestamp_received)``, a chosen row-group size, ZSTD), one file per UTC hour of
``timestamp_received``. What the archive loses is lost here too: times are truncated to ms,
book and entry hashes are dropped, book levels are written as the wire sends them (bids
ascending, asks descending) as ``[["price","size"], ...]`` text.

:func:`gamma_objects` builds Gamma ``/markets`` objects shaped like the real ones
(JSON-encoded ``outcomes``/``clobTokenIds``/``outcomePrices``, ISO times) from
``polymarket.market`` + ``polymarket.resolution`` rows, and :func:`gamma_route` answers
``GET /markets?slug=`` from such objects (a route for :meth:`ArchiveServer.route`).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from polyrl.importers.pmxt_format import PMXT_SCHEMA, hour_object

_MS = 1_000_000
_EVENT = {
    "polymarket.book": "book",
    "polymarket.price_change": "price_change",
    "polymarket.trade": "last_trade_price",
    "polymarket.tick_size": "tick_size_change",
}


def _dec(x: float | None, scale: int) -> Decimal | None:
    if x is None:
        return None
    return Decimal(round(x * 10**scale)).scaleb(-scale)


def _num_text(x: float) -> str:
    return repr(float(x)).removesuffix(".0") if float(x).is_integer() else repr(float(x))


def _side_text(px: list[float], size: list[float], *, bids: bool) -> str:
    levels = [[_num_text(p), _num_text(s)] for p, s in zip(px, size, strict=True)]
    levels.reverse()  # the wire's order: bids ascending, asks descending (best last)
    return json.dumps(levels)


def pmxt_rows(frames: Mapping[str, pl.DataFrame]) -> list[dict[str, Any]]:
    """The archive rows of a recording's four Polymarket streams, in recorded (recv, seq)
    order (unsorted; :func:`write_pmxt_hours` sorts them as the archive does)."""
    rows: list[tuple[int, int, dict[str, Any]]] = []
    for stream, event_type in _EVENT.items():
        df = frames.get(stream)
        if df is None or df.height == 0:
            continue
        for r in df.iter_rows(named=True):
            row: dict[str, Any] = dict.fromkeys(PMXT_SCHEMA.names)
            row["timestamp_received"] = r["recv_ns"] // _MS
            row["timestamp"] = (r["exch_ns"] if r["exch_ns"] is not None else r["recv_ns"]) // _MS
            row["market"] = r["market"].encode()
            row["event_type"] = event_type
            row["asset_id"] = r["key"]
            if event_type == "book":
                row["bids"] = _side_text(r["bid_px"], r["bid_size"], bids=True)
                row["asks"] = _side_text(r["ask_px"], r["ask_size"], bids=False)
            elif event_type == "price_change":
                row["price"] = _dec(r["price"], 4)
                row["size"] = _dec(r["size"], 6)
                row["side"] = r["side"]
                row["best_bid"] = _dec(r["best_bid"], 4)
                row["best_ask"] = _dec(r["best_ask"], 4)
            elif event_type == "last_trade_price":
                row["price"] = _dec(r["price"], 4)
                row["size"] = _dec(r["size"], 6)
                row["side"] = r["side"]
                fee = r["fee_rate_bps"]
                row["fee_rate_bps"] = None if fee is None else int(fee)
                row["transaction_hash"] = r["transaction_hash"]
            else:
                row["old_tick_size"] = _dec(r["old_tick_size"], 4)
                row["new_tick_size"] = _dec(r["new_tick_size"], 4)
            rows.append((r["recv_ns"], r["seq"], row))
    rows.sort(key=lambda x: (x[0], x[1]))
    return [r for _, _, r in rows]


def write_pmxt_table(rows: list[dict[str, Any]], path: Path, *, row_group_size: int) -> Path:
    """Write archive rows as one PMXT hour file: sorted (market, asset_id,
    timestamp_received), stable for ties (so a token's same-ms rows keep their order)."""
    ordered = sorted(rows, key=lambda r: (r["market"], r["asset_id"], r["timestamp_received"]))
    cols = {f.name: [r[f.name] for r in ordered] for f in PMXT_SCHEMA}
    table = pa.Table.from_pydict(cols, schema=PMXT_SCHEMA)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        table,
        path,
        row_group_size=row_group_size,
        compression="zstd",
        compression_level=9,
        write_statistics=True,
    )
    return path


def write_pmxt_hours(
    frames: Mapping[str, pl.DataFrame],
    out: Path | str,
    *,
    row_group_size: int = 1_048_576,
    extra_rows: list[dict[str, Any]] | None = None,
) -> list[Path]:
    """One PMXT hour file per UTC hour of ``timestamp_received`` under ``out``.

    ``extra_rows`` (archive rows, e.g. of other markets) are written into the hours they fall
    in, so a test can make the wanted markets a small part of each file."""
    rows = pmxt_rows(frames) + list(extra_rows or [])
    by_hour: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        t = _dt.datetime.fromtimestamp(r["timestamp_received"] / 1000, _dt.UTC)
        name = hour_object(t.strftime("%Y-%m-%d"), t.hour)
        by_hour.setdefault(name, []).append(r)
    return [
        write_pmxt_table(rs, Path(out) / name, row_group_size=row_group_size)
        for name, rs in sorted(by_hour.items())
    ]


def _iso(ns: int) -> str:
    return _dt.datetime.fromtimestamp(ns / 1e9, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _price_text(x: float) -> str:
    return "0.5" if x == 0.5 else str(int(x))


def gamma_objects(
    markets: pl.DataFrame, resolutions: pl.DataFrame | None = None
) -> dict[str, dict[str, Any]]:
    """Gamma ``/markets`` objects by slug, from ``polymarket.market`` (+ resolution) rows:
    the last market row of each slug, closed with ``outcomePrices`` and ``closedTime`` (the
    resolution row's ``exch_ns`` when it has one) when a resolution row exists."""
    res: dict[str, dict[str, Any]] = {}
    if resolutions is not None:
        for r in resolutions.iter_rows(named=True):
            res[r["key"]] = r
    out: dict[str, dict[str, Any]] = {}
    for m in markets.iter_rows(named=True):
        obj: dict[str, Any] = {
            "id": m["market_id"],
            "question": m["question"],
            "conditionId": m["key"],
            "slug": m["slug"],
            "outcomes": '["Up", "Down"]',
            "clobTokenIds": json.dumps([m["up_token"], m["down_token"]]),
            "eventStartTime": _iso(m["window_start_ns"]),
            "endDate": _iso(m["window_end_ns"]),
            "orderPriceMinTickSize": m["tick_size"],
            "orderMinSize": m["min_size"],
            "feesEnabled": m["fees_enabled"],
            "resolutionSource": m["resolution_source"],
            "active": True,
            "closed": False,
            "outcomePrices": '["0.5", "0.5"]',
        }
        if m["fees_enabled"] and not m["fee_schedule_assumed"]:
            obj["feeSchedule"] = {
                "rate": m["fee_rate"],
                "exponent": m["fee_exponent"],
                "takerOnly": m["fee_taker_only"],
                "rebateRate": m["fee_rebate_rate"],
            }
        if m["twap_seconds"] is not None:
            obj["cryptoMarketConfig"] = {
                "asset": m["asset"],
                "twapEnabled": True,
                "twapLookbackSeconds": m["twap_seconds"],
            }
        resolved = res.get(m["key"])
        if resolved is not None and resolved["up_price"] is not None:
            obj["closed"] = True
            obj["active"] = False
            obj["outcomePrices"] = json.dumps(
                [_price_text(resolved["up_price"]), _price_text(resolved["down_price"])]
            )
            if resolved["exch_ns"] is not None:
                obj["closedTime"] = _dt.datetime.fromtimestamp(
                    resolved["exch_ns"] // 1_000_000_000, _dt.UTC
                ).strftime("%Y-%m-%d %H:%M:%S+00")
        out[m["slug"]] = obj
    return out


def gamma_route(objects: Mapping[str, Mapping[str, Any]]):  # noqa: ANN201 - an ArchiveServer Route
    """``GET /markets?slug=S`` -> ``[object]``, or ``[]`` for a slug Gamma does not know."""

    def route(query: dict[str, list[str]]) -> tuple[int, Any]:
        slug = (query.get("slug") or [""])[0]
        obj = objects.get(slug)
        return 200, ([] if obj is None else [dict(obj)])

    return route


# --- Synthetic hours of realistic size (for `polyrl bench import`) -------------------------

SYNTH_MIX = {"price_change": 0.90, "last_trade_price": 0.07, "book": 0.03}
"""Event mix of the synthetic wanted markets' rows (tick-size changes: a few per market)."""
BOOK_LEVELS = 15
"""Levels per side of a synthetic ``book`` row."""
_WINDOW_S = 900


def synthetic_markets(
    assets: list[str], start_s: int, end_s: int, *, seed: int = 0
) -> list[dict[str, Any]]:
    """One market per asset and 15-minute window starting in ``[start_s, end_s]`` (the last
    one is the next hour's first, which trades before it opens): slug, asset, window, a
    random condition id (``0x`` + 64 hex, so the markets fall anywhere in a file sorted by
    market, as real ones do) and two decimal token ids."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(start_s - start_s % _WINDOW_S, end_s + 1, _WINDOW_S):
        for a in assets:
            hexes = rng.integers(0, 16, 64)
            cid = "0x" + "".join("0123456789abcdef"[int(x)] for x in hexes)
            toks = [str(int(rng.integers(10**17, 10**18))) + f"{k:058d}" for k in (0, 1)]
            out.append({"slug": f"{a}-updown-15m-{s}", "asset": a, "start_s": s,
                        "end_s": s + _WINDOW_S, "condition_id": cid, "tokens": toks})  # fmt: skip
    return out


def synthetic_gamma(markets: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Gamma ``/markets`` objects (closed, decided) of :func:`synthetic_markets`, by slug."""
    out: dict[str, dict[str, Any]] = {}
    for i, m in enumerate(markets):
        iso = lambda s: _dt.datetime.fromtimestamp(s, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
        out[m["slug"]] = {
            "id": str(100000 + i), "question": f"{m['asset'].upper()} Up or Down",
            "conditionId": m["condition_id"], "slug": m["slug"], "outcomes": '["Up", "Down"]',
            "clobTokenIds": json.dumps(m["tokens"]), "eventStartTime": iso(m["start_s"]),
            "endDate": iso(m["end_s"]), "orderPriceMinTickSize": 0.01, "orderMinSize": 5,
            "feesEnabled": True, "resolutionSource": "https://data.chain.link",
            "active": False, "closed": True,
            "outcomePrices": '["1", "0"]' if i % 2 else '["0", "1"]',
            "feeSchedule": {"rate": 0.07, "exponent": 1, "takerOnly": True, "rebateRate": 0.2},
            "cryptoMarketConfig": {"asset": m["asset"], "twapEnabled": True,
                                   "twapLookbackSeconds": 60},
            "closedTime": _dt.datetime.fromtimestamp(m["end_s"] + 21, _dt.UTC).strftime(
                "%Y-%m-%d %H:%M:%S+00"),
        }  # fmt: skip
    return out


def _book_text(rng: np.random.Generator, mid: float, bids: bool) -> str:
    steps = np.arange(1, BOOK_LEVELS + 1) * 0.01
    px = np.clip(np.round(mid - steps if bids else mid + steps, 2), 0.01, 0.99)
    size = np.round(rng.lognormal(4.0, 0.8, BOOK_LEVELS), 2)
    levels = [[_num_text(p), _num_text(s)] for p, s in zip(px, size, strict=True)]
    levels.reverse()  # the wire's order: best last
    return json.dumps(levels)


def synthetic_hour(
    path: Path | str,
    hour_s: int,
    markets: list[dict[str, Any]],
    *,
    rows: int,
    other_markets: int,
    other_rows: int,
    seed: int = 0,
    row_group_size: int = 1_048_576,
) -> Path:
    """One PMXT hour file: ``rows`` rows of the ``markets`` live in the hour (each row in the
    window its time falls in, 10% in the next window, which trades before it opens; event
    mix :data:`SYNTH_MIX`, a tick-size change per market) and ``other_markets`` other
    markets of ``other_rows`` price_change rows each, sorted by (market, asset_id,
    timestamp_received), row groups of ``row_group_size``, ZSTD(9), as the archive writes."""
    rng = np.random.default_rng(seed)
    by_start: dict[tuple[str, int], dict[str, Any]] = {(m["asset"], m["start_s"]): m
                                                        for m in markets}  # fmt: skip
    assets = sorted({m["asset"] for m in markets})
    t = np.sort(rng.integers(hour_s * 1000, (hour_s + 3600) * 1000, rows))
    asset_i = rng.integers(0, len(assets), rows)
    start = t // 1000 // _WINDOW_S * _WINDOW_S + np.where(rng.random(rows) < 0.1, _WINDOW_S, 0)
    kinds = np.array(list(SYNTH_MIX))
    kind = kinds[np.searchsorted(np.cumsum(list(SYNTH_MIX.values())), rng.random(rows) * 0.9999)]
    uniq, code = np.unique(asset_i.astype(np.int64) * 10**11 + start, return_inverse=True)
    mk = [by_start[(assets[int(u) // 10**11], int(u) % 10**11)] for u in uniq]
    cid = np.array([m["condition_id"] for m in mk], dtype=object)[code]
    tok_i = rng.integers(0, 2, rows)
    token = np.array([[m["tokens"][0], m["tokens"][1]] for m in mk], dtype=object)[code, tok_i]
    price = np.round(rng.uniform(0.02, 0.98, rows), 2)
    cols: dict[str, Any] = {
        "timestamp_received": t,
        "timestamp": t - rng.integers(5, 60, rows),
        "market": cid,
        "event_type": kind.astype(object),
        "asset_id": token,
    }
    is_pc, is_tr, is_bk = (kind == k for k in ("price_change", "last_trade_price", "book"))
    side = np.where(rng.random(rows) < 0.5, "BUY", "SELL").astype(object)
    cols["price"] = np.where(is_pc | is_tr, price, np.nan)
    cols["size"] = np.where(is_pc | is_tr, np.round(rng.lognormal(3.0, 1.0, rows), 6), np.nan)
    cols["side"] = np.where(is_pc | is_tr, side, np.array(None, dtype=object))
    cols["best_bid"] = np.where(is_pc, np.round(np.maximum(price - 0.01, 0.01), 2), np.nan)
    cols["best_ask"] = np.where(is_pc, np.round(np.minimum(price + 0.01, 0.99), 2), np.nan)
    cols["fee_rate_bps"] = np.where(is_tr, 0, -1)
    tx = np.full(rows, None, dtype=object)
    tx[is_tr] = np.char.mod("0x%064x", rng.integers(0, 2**63, int(is_tr.sum()))).astype(object)
    cols["transaction_hash"] = tx
    bids = np.full(rows, None, dtype=object)
    asks = np.full(rows, None, dtype=object)
    for i in np.flatnonzero(is_bk):
        bids[i] = _book_text(rng, price[i], True)
        asks[i] = _book_text(rng, price[i], False)
    cols["bids"], cols["asks"] = bids, asks
    frame = pl.DataFrame(
        {k: pl.Series(k, v.tolist(), dtype=pl.String) if v.dtype == object else v
         for k, v in cols.items()}
    )  # fmt: skip
    # One tick-size change per market, at its first row.
    ticks = (
        frame.group_by("market", maintain_order=True)
        .agg(pl.col("timestamp_received", "timestamp", "asset_id").first())
        .with_columns(event_type=pl.lit("tick_size_change"), old=pl.lit(0.01), new=pl.lit(0.001))
    )
    # Other markets: price_change rows only (most of a real hour's rows).
    n_o = other_markets * other_rows
    o_hex = rng.integers(0, 16, (other_markets, 64))
    o_cid = np.array(["0x" + "".join("0123456789abcdef"[x] for x in r) for r in o_hex.tolist()])
    o_tok = np.char.mod("%d", rng.integers(10**17, 10**18, (other_markets, 2)))
    o_m = np.repeat(np.arange(other_markets), other_rows)
    o_t = rng.integers(hour_s * 1000, (hour_s + 3600) * 1000, n_o)
    o_p = np.round(rng.uniform(0.02, 0.98, n_o), 2)
    other = pl.DataFrame(
        {
            "timestamp_received": o_t, "timestamp": o_t - 20, "market": o_cid[o_m],
            "event_type": np.full(n_o, "price_change"),
            "asset_id": o_tok[o_m, rng.integers(0, 2, n_o)],
            "price": o_p, "size": np.round(rng.lognormal(3.0, 1.0, n_o), 6),
            "side": np.where(rng.random(n_o) < 0.5, "BUY", "SELL"),
            "best_bid": np.round(np.maximum(o_p - 0.01, 0.01), 2),
            "best_ask": np.round(np.minimum(o_p + 0.01, 0.99), 2),
        }
    )  # fmt: skip
    allf = pl.concat(
        [frame.with_columns(old=pl.lit(None, pl.Float64), new=pl.lit(None, pl.Float64)),
         ticks, other], how="diagonal_relaxed",
    ).sort(["market", "asset_id", "timestamp_received"], maintain_order=True)  # fmt: skip
    allf = allf.with_columns(
        pl.when(pl.col("fee_rate_bps") >= 0).then(pl.col("fee_rate_bps")).alias("fee_rate_bps"),
        *[pl.col(c).fill_nan(None) for c in ("price", "size", "best_bid", "best_ask")],
    )
    arrays = []
    dec = {"price": "price", "size": "size", "best_bid": "best_bid", "best_ask": "best_ask",
           "old_tick_size": "old", "new_tick_size": "new"}  # fmt: skip
    for f in PMXT_SCHEMA:
        src = dec.get(f.name, f.name)
        a = allf.get_column(src).to_arrow()
        if f.name in ("timestamp_received", "timestamp"):
            a = a.cast(pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
        elif f.name == "market":
            a = a.cast(pa.binary()).cast(f.type)
        else:
            a = a.cast(f.type)
        arrays.append(a)
    table = pa.Table.from_arrays(arrays, schema=PMXT_SCHEMA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    times = ["timestamp_received", "timestamp"]
    pq.write_table(
        table,
        path,
        row_group_size=row_group_size,
        compression="zstd",
        compression_level=9,
        use_dictionary=[n for n in PMXT_SCHEMA.names if n not in times],
        column_encoding=dict.fromkeys(times, "DELTA_BINARY_PACKED"),
        write_statistics=True,
    )
    return path
