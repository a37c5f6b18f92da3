"""PMXT-format hour files and a static Gamma, written from polyrl's own Polymarket rows.

For tests and round trips: :func:`write_pmxt_hours` exports a recording's
``polymarket.book`` / ``price_change`` / ``trade`` / ``tick_size`` rows as the PMXT v2 archive
stores them (:data:`polyrl.importers.pmxt.PMXT_SCHEMA`: the documented column order and
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

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from polyrl.importers.pmxt import PMXT_SCHEMA, hour_object

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
        r = res.get(m["key"])
        if r is not None and r["up_price"] is not None:
            obj["closed"] = True
            obj["active"] = False
            obj["outcomePrices"] = json.dumps(
                [_price_text(r["up_price"]), _price_text(r["down_price"])]
            )
            if r["exch_ns"] is not None:
                obj["closedTime"] = _dt.datetime.fromtimestamp(
                    r["exch_ns"] // 1_000_000_000, _dt.UTC
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
