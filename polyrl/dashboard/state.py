"""What the dashboard shows, as one JSON-ready snapshot (pure: data in, data out).

The same snapshot shape serves a live session (built from its Engine and FeatureEngine in
memory) and a run directory (built from its files: ``live.json``, which a live session
rewrites every second, plus ``trades.parquet``, ``episodes.parquet`` and
``metrics.parquet``), so a finished run and a running one look alike:

``markets``  per market: asset, window slug, Up probability (the Up token's mid), seconds
             left in the window, velocity (change of the Up probability per minute), and
             whether it may trade;
``positions`` open and parked positions: token, shares, cost, unrealized PnL at the bid;
``pnl``      cumulative realized PnL over time, ``[[t_ns, usdc], ...]``;
``metrics``  the latest RL metrics (buffer progress, policy and value loss, entropy, KL);
``trades``   the latest trades, newest first;
``totals``   realized PnL, fees, fills, ticks, latency p50/p99.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from polyrl.events import ASSETS, NS_PER_S

TRADE_FEED = 50
PNL_POINTS = 500


def _num(x: Any) -> Any:
    """JSON-safe number (NaN and infinities become None)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, np.floating):
        return _num(float(x))
    if isinstance(x, np.integer):
        return int(x)
    return x


def _trades_and_pnl(trades: pl.DataFrame) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    feed = [
        {k: _num(v) for k, v in r.items()}
        for r in trades.tail(TRADE_FEED).reverse().iter_rows(named=True)
    ]
    closed = trades.filter(pl.col("kind").is_in(["close", "settle"])).sort("t_ns")
    if closed.height:
        cum = np.cumsum(closed["realized_pnl"].to_numpy())
        t = closed["t_ns"].to_numpy()
        step = max(1, len(t) // PNL_POINTS)
        pnl = [[int(a), float(b)] for a, b in zip(t[::step], cum[::step], strict=True)]
        if pnl[-1][0] != int(t[-1]):
            pnl.append([int(t[-1]), float(cum[-1])])
    else:
        pnl = []
    return feed, pnl


def session_snapshot(session: Any) -> dict[str, Any]:
    """A live session's state now."""
    e = session.engine
    o = session.last_obs
    t = session.last_tick_ns or 0
    markets = []
    hist = session.mid_history
    for m, asset in enumerate(session.assets):
        card: dict[str, Any] = {"asset": asset, "slug": None, "up_prob": None,
                                "time_left_s": None, "velocity_per_min": None,
                                "tradable": False}  # fmt: skip
        if o is not None and int(o.window[0, m]) >= 0:
            w = session.fe.windows[int(o.window[0, m])]
            bid, ask = o.book_px[0, m, 0, 0, 0], o.book_px[0, m, 0, 1, 0]
            mid = (bid + ask) / 2 if np.isfinite(bid) and np.isfinite(ask) else None
            card.update(slug=w.slug, time_left_s=(w.end_ns - t) / NS_PER_S,
                        tradable=bool(o.tradable[0, m]), up_prob=_num(mid))  # fmt: skip
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
    feed, pnl = _trades_and_pnl(session.runlog.frame("trades"))
    from polyrl.live import LatencyStats

    metrics = session.runlog.metrics[-1] if session.runlog.metrics else {}
    rl = getattr(session, "rl_metrics", None) or {}
    return {
        "run": session.run_dir.name,
        "kind": "live",
        "t_ns": t,
        "markets": markets,
        "positions": positions,
        "pnl": pnl,
        "metrics": {k: _num(v) for k, v in {**metrics, **rl}.items()},
        "trades": feed,
        "totals": {
            "realized": e.totals.realized,
            "fees": e.totals.fees,
            "fills": e.totals.fills,
            "ticks": session.ticks,
            "latency_ms_p50": _num(1e3 * LatencyStats.pct(session.latency.recent, 0.5)),
            "latency_ms_p99": _num(1e3 * LatencyStats.pct(session.latency.recent, 0.99)),
        },  # fmt: skip
    }


def run_snapshot(run_dir: Path) -> dict[str, Any]:
    """A run directory's state from its files (live, backtest or training run)."""
    run_dir = Path(run_dir)
    live = run_dir / "live.json"
    if live.exists():
        try:
            return json.loads(live.read_text())
        except ValueError:
            pass  # being rewritten: fall back to the tables
    summary = {}
    if (run_dir / "summary.json").exists():
        summary = json.loads((run_dir / "summary.json").read_text())
    trades = pl.read_parquet(run_dir / "trades.parquet") if (run_dir / "trades.parquet").exists() \
        else pl.DataFrame()  # fmt: skip
    episodes = (pl.read_parquet(run_dir / "episodes.parquet")
                if (run_dir / "episodes.parquet").exists() else pl.DataFrame())  # fmt: skip
    feed, pnl = _trades_and_pnl(trades) if trades.height else ([], [])
    markets = []
    if episodes.height:
        for (asset,), eps in episodes.sort("end_ns").group_by(["asset"], maintain_order=True):
            last = eps.row(eps.height - 1, named=True)
            markets.append({"asset": asset, "slug": last["slug"], "up_prob": None,
                            "time_left_s": 0.0, "velocity_per_min": None, "tradable": False,
                            "outcome": last["outcome"],
                            "pnl": float(eps["pnl"].sum())})  # fmt: skip
    order = {a: i for i, a in enumerate(ASSETS)}
    markets.sort(key=lambda c: order.get(c["asset"], len(order)))
    metrics: dict[str, Any] = {}
    if (run_dir / "metrics.parquet").exists():
        m = pl.read_parquet(run_dir / "metrics.parquet")
        if m.height:
            metrics = {k: _num(v) for k, v in m.row(m.height - 1, named=True).items()}
    realized = float(trades.filter(pl.col("kind").is_in(["close", "settle"]))["realized_pnl"]
                     .sum()) if trades.height else 0.0  # fmt: skip
    return {
        "run": run_dir.name,
        "kind": summary.get("kind", "run"),
        "t_ns": int(trades["t_ns"].max()) if trades.height else 0,  # type: ignore[arg-type]
        "markets": markets,
        "positions": [],
        "pnl": pnl,
        "metrics": metrics,
        "trades": feed,
        "totals": {
            "realized": realized,
            "fees": float(trades["fee"].sum()) if trades.height else 0.0,
            "fills": int(trades.filter(pl.col("kind") != "settle").height) if trades.height else 0,
            "ticks": None,
        },  # fmt: skip
    }
