"""What the dashboard shows, as one JSON-ready snapshot (pure: data in, data out).

The same snapshot shape serves a live session (built from its Engine and FeatureEngine in
memory) and a run directory (built from its files: ``live.json``, which a live session
rewrites every second and once more when it stops, or else ``trades.parquet``,
``episodes.parquet``, ``metrics.parquet`` and ``summary.json``), so a finished run and a
running one look alike.

One definition per number, taken from the run's trade rows (what ``trades.parquet`` holds),
whichever source the snapshot is built from:

- **fills**: trade rows that are not settlements (opens, adds, closes);
- **realized PnL**: the sum of ``realized_pnl`` over close and settle rows (USDC, net of
  fees: a close realizes proceeds - fee - cost basis incl. buy fees; a settlement pays out
  minus the cost basis). It changes only at those rows, so ``pnl`` is a step function;
- **fees**: the sum of ``fee`` over all rows.

A run with no trade rows but episodes (a training run) takes fills, PnL and fees from
``episodes.parquet`` instead (its rollouts' episodes; ``totals.source`` says which).

Fields: ``run``, ``kind``; ``state`` (``live``, ``running``, ``finished`` or ``stale``: a
live run whose ``live.json`` stopped being rewritten) with ``finished_ns``; ``t_ns`` (the
data's latest time), ``started_ns``; ``markets`` per asset (window, Up probability, time
left, velocity per minute, tradable, and the market's fills and realized PnL); ``positions``
(token, shares, cost basis, unrealized PnL at the bid, state); ``pnl`` (``[[t_ns, usdc]]``,
the cumulative realized PnL after each closing row, from ``[started_ns, 0]``); ``metrics``
(the latest learning metrics: losses, learning rate, buffer, update; never the session's
fills or PnL, which are the header's) with ``metrics_t_ns``; ``trades`` (the latest rows,
newest first); ``totals`` (realized, fees, fills, settled windows, ticks, latency p50/p99).

This is the dashboard's own state model: it imports nothing above the run log. A live
session is read through the attributes :func:`session_snapshot` names, not by importing
:mod:`polyrl.live` (which calls it to write ``live.json``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from polyrl.events import ASSETS, NS_PER_S
from polyrl.runlog import EPISODES, TRADES

TRADE_FEED = 50
PNL_POINTS = 2000
CLOSING = ("close", "settle")
NOT_RL = ("pnl/", "latency/", "charts/fills", "charts/settled", "charts/episodes", "t_ns",
          "ticks")  # fmt: skip
"""Metric keys the RL panel leaves to the header and the chart (prefixes)."""


def _num(x: Any) -> Any:
    """JSON-safe number (NaN and infinities become None)."""
    if isinstance(x, np.floating):
        return _num(float(x))
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def totals(trades: pl.DataFrame, episodes: pl.DataFrame | None = None) -> dict[str, Any]:
    """Fills, realized PnL and fees of the whole run, and per asset (see the module doc)."""
    eps = episodes if episodes is not None else pl.DataFrame(schema=EPISODES)
    by_asset: dict[str, dict[str, Any]] = {}
    if trades.height or not eps.height:
        closing = trades.filter(pl.col("kind").is_in(CLOSING))
        fills = trades.filter(pl.col("kind") != "settle")
        out = {"source": "trades", "realized": float(closing["realized_pnl"].sum()),
               "fees": float(trades["fee"].sum()), "fills": fills.height}  # fmt: skip
        for (asset,), g in trades.group_by(["asset"]):
            by_asset[str(asset)] = {
                "realized": float(g.filter(pl.col("kind").is_in(CLOSING))["realized_pnl"].sum()),
                "fills": g.filter(pl.col("kind") != "settle").height,
            }
    else:
        out = {"source": "episodes", "realized": float(eps["pnl"].sum()),
               "fees": float(eps["fees"].sum()), "fills": int(eps["fills"].sum())}  # fmt: skip
        for (asset,), g in eps.group_by(["asset"]):
            by_asset[str(asset)] = {"realized": float(g["pnl"].sum()),
                                    "fills": int(g["fills"].sum())}  # fmt: skip
    out["settled"] = eps.height
    out["by_asset"] = by_asset
    return out


def pnl_steps(trades: pl.DataFrame, start_ns: int | None) -> list[list[Any]]:
    """Cumulative realized PnL after each time a closing row lands, ``[[t_ns, usdc]]``,
    starting at ``[start_ns, 0]`` (the chart draws it as steps: it is flat in between)."""
    closed = (trades.filter(pl.col("kind").is_in(CLOSING)).group_by("t_ns")
              .agg(pl.col("realized_pnl").sum()).sort("t_ns"))  # fmt: skip
    t = closed["t_ns"].to_numpy()
    cum = np.cumsum(closed["realized_pnl"].to_numpy())
    keep = np.arange(len(t))
    if len(t) > PNL_POINTS:  # thin evenly, always keeping the last step
        keep = np.unique(np.r_[np.linspace(0, len(t) - 1, PNL_POINTS).astype(int), len(t) - 1])
    out: list[list[Any]] = []
    if start_ns is not None and (not len(t) or start_ns < t[0]):
        out.append([int(start_ns), 0.0])
    out += [[int(t[i]), float(cum[i])] for i in keep]
    return out


def _feed(trades: pl.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: _num(v) for k, v in r.items()}
        for r in trades.tail(TRADE_FEED).reverse().iter_rows(named=True)
    ]


def positions_from_trades(trades: pl.DataFrame, episodes: pl.DataFrame) -> list[dict[str, Any]]:
    """Positions the trade rows leave open: windows with no episode row yet (not settled),
    net shares > 0; the cost basis follows the broker's rule (buys add notional + fee, a
    sell of q of Q shares removes cost x q / Q)."""
    done = set(episodes["condition_id"].to_list()) if episodes.height else set()
    rows = trades.filter(~pl.col("condition_id").is_in(list(done)) & (pl.col("kind") != "settle"))
    held: dict[tuple[str, str], list[Any]] = {}
    for r in rows.sort("t_ns", maintain_order=True).iter_rows(named=True):
        key = (r["condition_id"], r["token"])
        p = held.setdefault(key, [r["asset"], 0.0, 0.0])
        if r["side"] > 0:
            p[1] += r["shares"]
            p[2] += r["notional"] + r["fee"]
        elif p[1] > 0:
            p[2] -= p[2] * min(1.0, r["shares"] / p[1])
            p[1] -= r["shares"]
    out = [{"asset": a, "token": tok, "shares": q, "cost": c, "unrealized": None,
            "state": "open"} for (_, tok), (a, q, c) in held.items() if q > 1e-9]  # fmt: skip
    return sorted(out, key=lambda p: _asset_order(p["asset"]))


def rl_metrics(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], int | None]:
    """The latest learning metrics (the last row holding any ``losses/`` key, plus a live
    session's buffer progress) and that row's ``t_ns``; the keys :data:`NOT_RL` names are
    left out (the header shows the run's fills and PnL, whole-run, by one definition)."""
    learn = [r for r in rows if any(k.startswith("losses/") and r[k] is not None for k in r)]
    last = learn[-1] if learn else {}
    out = {k: _num(v) for k, v in last.items() if not k.startswith(NOT_RL) and v is not None}
    t = last.get("t_ns")
    return out, (int(t) if t is not None else None)


def _asset_order(asset: str) -> int:
    return ASSETS.index(asset) if asset in ASSETS else len(ASSETS)


def session_snapshot(session: Any, *, finished: bool = False) -> dict[str, Any]:
    """A live session's state now (``finished``: its last one, written as it stops).

    ``session`` is read for ``last_obs``, ``last_tick_ns``, ``first_tick_ns``, ``runlog``,
    ``mid_history``, ``assets``, ``fe.windows``, ``engine``, ``rl_metrics``, ``latency.recent``
    (real seconds), ``ticks`` and ``run_dir`` (a :class:`polyrl.live.LiveSession` has them)."""
    o = session.last_obs
    t = session.last_tick_ns or 0
    trades = session.runlog.frame("trades")
    tot = totals(trades, session.runlog.frame("episodes"))
    markets = []
    hist = session.mid_history
    for m, asset in enumerate(session.assets):
        mine = tot["by_asset"].get(asset, {"realized": 0.0, "fills": 0})
        card: dict[str, Any] = {"asset": asset, "slug": None, "up_prob": None,
                                "time_left_s": None, "velocity_per_min": None,
                                "tradable": False, **mine}  # fmt: skip
        if o is not None and int(o.window[0, m]) >= 0:
            w = session.fe.windows[int(o.window[0, m])]
            bid, ask = o.book_px[0, m, 0, 0, 0], o.book_px[0, m, 0, 1, 0]
            mid = (bid + ask) / 2 if np.isfinite(bid) and np.isfinite(ask) else None
            card.update(slug=w.slug, time_left_s=(w.end_ns - t) / NS_PER_S,
                        tradable=bool(o.tradable[0, m]) and not finished,
                        up_prob=_num(mid))  # fmt: skip
            h = hist.setdefault(asset, [])
            if mid is not None:
                h.append((t, mid))
                while h and h[0][0] < t - 2 * 60 * NS_PER_S:
                    h.pop(0)
                old = [x for x in h if x[0] <= t - 60 * NS_PER_S]
                if old:
                    card["velocity_per_min"] = _num(mid - old[-1][1])
        markets.append(card)
    positions = []
    e = session.engine
    b = e.broker
    for m, asset in enumerate(session.assets):
        if b.held[m] >= 0 and o is not None:
            bid = o.book_px[0, m, int(b.held[m]), 0, 0]
            value = float(b.shares[m] * bid) if np.isfinite(bid) else None
            positions.append({"asset": asset, "token": ("Up", "Down")[int(b.held[m])],
                              "shares": float(b.shares[m]), "cost": float(b.cost[m]),
                              "unrealized": _num(value - float(b.cost[m])) if value is not None
                              else None, "state": "open"})  # fmt: skip
    for p in e._parked:
        if p.broker is not None and p.broker.held[0] >= 0:
            positions.append({"asset": p.episode.window.asset,
                              "token": ("Up", "Down")[int(p.broker.held[0])],
                              "shares": float(p.broker.shares[0]),
                              "cost": float(p.broker.cost[0]), "unrealized": None,
                              "state": "awaiting resolution"})  # fmt: skip
    rows = list(session.runlog.metrics)
    rl = getattr(session, "rl_metrics", None) or {}
    metrics, metrics_t = rl_metrics(rows)
    if "buffer" in rl:
        metrics["buffer"] = _num(rl["buffer"])
    lat = session.latency.recent
    return {
        "run": session.run_dir.name,
        "kind": "live",
        "state": "finished" if finished else "live",
        "finished_ns": t if finished else None,
        "t_ns": t,
        "started_ns": _first_time(trades, session.first_tick_ns),
        "markets": markets,
        "positions": positions,
        "pnl": pnl_steps(trades, _first_time(trades, session.first_tick_ns)),
        "metrics": metrics,
        "metrics_t_ns": metrics_t,
        "trades": _feed(trades),
        "totals": {
            **{k: v for k, v in tot.items() if k != "by_asset"},
            "ticks": session.ticks,
            "latency_ms_p50": _num(1e3 * _pct(lat, 0.5)),
            "latency_ms_p99": _num(1e3 * _pct(lat, 0.99)),
        },  # fmt: skip
    }


def _pct(xs: list[float], q: float) -> float:
    """The ``q`` quantile of ``xs`` (nan when empty): the live session's own latency figure."""
    return float(np.quantile(np.asarray(xs), q)) if xs else float("nan")


def _opt_int(v: object) -> int | None:
    """A polars aggregate (min/max) of an integer column: None when it has no value."""
    if v is None or isinstance(v, int):
        return v
    raise TypeError(f"expected an integer, got {type(v).__name__}")


def _first_time(trades: pl.DataFrame, first_tick_ns: int | None) -> int | None:
    firsts = [x for x in (first_tick_ns, _opt_int(trades["t_ns"].min()) if trades.height else None)
              if x is not None]  # fmt: skip
    return min(firsts) if firsts else None


def _read(path: Path, schema: dict[str, Any] | None = None) -> pl.DataFrame:
    if path.exists():
        return pl.read_parquet(path)
    return pl.DataFrame(schema=schema) if schema is not None else pl.DataFrame()


def run_snapshot(run_dir: Path, *, now_ns: int | None = None, stale_s: float = 15.0
                 ) -> dict[str, Any]:  # fmt: skip
    """A run directory's state from its files (live, backtest or training run).

    A live run's ``live.json`` is what its session last showed; with ``now_ns`` (wall time)
    a ``live`` one not rewritten for ``stale_s`` seconds is reported ``stale`` (its process
    stopped without saying so)."""
    run_dir = Path(run_dir)
    live = run_dir / "live.json"
    if live.exists():
        try:
            snap = json.loads(live.read_text())
        except ValueError:
            snap = None  # being rewritten: fall back to the tables
        if snap is not None:
            snap.setdefault("state", "live")
            if snap["state"] == "live" and now_ns is not None:
                age = (now_ns - live.stat().st_mtime_ns) / NS_PER_S
                if age > stale_s:
                    snap["state"], snap["stale_s"] = "stale", round(age)
            return snap
    summary = {}
    if (run_dir / "summary.json").exists():
        summary = json.loads((run_dir / "summary.json").read_text())
    trades = _read(run_dir / "trades.parquet", TRADES)
    episodes = _read(run_dir / "episodes.parquet", EPISODES)
    tot = totals(trades, episodes)
    markets = []
    by_asset = tot["by_asset"]
    for asset in sorted({*by_asset, *episodes["asset"].to_list()}, key=_asset_order):
        card = {"asset": asset, "slug": None, "up_prob": None, "time_left_s": None,
                "velocity_per_min": None, "tradable": False, "last_outcome": None,
                **by_asset.get(asset, {"realized": 0.0, "fills": 0})}  # fmt: skip
        eps = episodes.filter(pl.col("asset") == asset).sort("end_ns")
        if eps.height:
            card.update(slug=eps["slug"][-1], last_outcome=eps["outcome"][-1])
        markets.append(card)
    m = _read(run_dir / "metrics.parquet")
    metrics, metrics_t = rl_metrics(m.to_dicts() if m.height else [])
    times = [x for x in (_opt_int(trades["t_ns"].max()), _opt_int(episodes["settled_ns"].max()))
             if x is not None]  # fmt: skip
    t = max(times) if times else 0
    started = _first_time(trades, summary.get("first_tick_ns"))
    finished = bool(summary)
    return {
        "run": run_dir.name,
        "kind": summary.get("kind", "run"),
        "state": "finished" if finished else "running",
        "finished_ns": (summary.get("last_tick_ns") or t) if finished else None,
        "t_ns": t,
        "started_ns": started,
        "markets": markets,
        "positions": positions_from_trades(trades, episodes),
        "pnl": pnl_steps(trades, started),
        "metrics": metrics,
        "metrics_t_ns": metrics_t,
        "trades": _feed(trades),
        "totals": {**{k: v for k, v in tot.items() if k != "by_asset"}, "ticks": None},
    }
