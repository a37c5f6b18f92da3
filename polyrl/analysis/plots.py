"""Figures of runs and recordings: each function takes frames and returns a matplotlib Figure.

Figures are built without pyplot (``matplotlib.figure.Figure``), so they work under any
backend, Agg included, and hold no global state: show one in Jupyter by leaving it as a
cell's value, save it with ``fig.savefig(path)``. Functions that draw runs accept one frame
or ``{name: frame}`` to draw several side by side. Times are drawn in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from polyrl.analysis.calibration import calibration_table
from polyrl.analysis.recordings import WindowView
from polyrl.analysis.stats import agg_float
from polyrl.analysis.trades import equity

Frames = pl.DataFrame | Mapping[str, pl.DataFrame]

TRAINING_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("policy loss", ("losses/policy",)),
    ("value loss", ("losses/value",)),
    ("entropy", ("losses/entropy",)),
    ("approx KL", ("losses/approx_kl",)),
    ("clip fraction", ("losses/clip_frac",)),
    ("explained variance", ("losses/explained_variance",)),
    ("PnL per update (USDC)", ("pnl/realized", "val/pnl", "eval/pnl")),
    ("win rate", ("charts/win_rate",)),
)
"""The panels of :func:`plot_training`: title and the metrics columns drawn in it."""


def _int(v: object) -> int:
    """A polars aggregate (min/max) of an integer column, which must have a value."""
    if isinstance(v, int):
        return v
    raise TypeError(f"expected an integer, got {type(v).__name__}")


def _named(x: Frames, default: str = "run") -> dict[str, pl.DataFrame]:
    return {default: x} if isinstance(x, pl.DataFrame) else dict(x)


def _times(t_ns: pl.Series | np.ndarray) -> np.ndarray:
    return np.asarray(t_ns, dtype=np.int64).astype("datetime64[ns]")


def _time_axis(ax: Any) -> None:
    loc = AutoDateLocator()
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(loc))
    ax.set_xlabel("time (UTC)")


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _bar_axes(ax: Any, ticks: list[str], xlabel: str, ylabel: str, title: str, *,
              legend: bool) -> None:  # fmt: skip
    """Finish a bar chart of groups at 0, 1, ...: zero line, tick labels, labels, legend."""
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xticks(np.arange(len(ticks)), ticks)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend:
        ax.legend(fontsize="small")


def plot_equity(trades: Frames, *, title: str = "Equity curve") -> Figure:
    """Cumulative realized PnL over time, one panel per run, each on its own PnL scale (so
    a run that lost or won far more than the others does not flatten them): the equity
    curve, its running peak (dotted) and the drawdown from that peak shaded between them;
    each panel's title gives the run's final PnL and max drawdown. Every curve starts at 0
    at the first instant any run realized PnL and holds its last value to the last such
    instant, so that the panels share one time span. From trades tables."""
    runs = _named(trades)
    curves = {name: equity(tr) for name, tr in runs.items()}
    ts = [e["t_ns"] for e in curves.values() if e.height]
    span = (min(_int(t.min()) for t in ts), max(_int(t.max()) for t in ts)) if ts else (0, 0)
    fig = Figure(figsize=(10, 1.2 + 2.1 * max(1, len(runs))), layout="constrained")
    axes = fig.subplots(max(1, len(runs)), 1, sharex=True, squeeze=False)[:, 0]
    legend = True
    for i, (ax, (name, e)) in enumerate(zip(axes, curves.items(), strict=False)):
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_ylabel("PnL (USDC)")
        if e.is_empty():
            ax.set_title(f"{name}: no realized PnL", loc="left", fontsize="medium")
            _empty(ax, "no realized PnL")
            continue
        t = _times(np.concatenate([[span[0]], e["t_ns"].to_numpy(), [span[1]]]))
        eq = np.concatenate([[0.0], e["equity"].to_numpy(), e["equity"].to_numpy()[-1:]])
        peak = np.concatenate([[0.0], e["peak"].to_numpy(), e["peak"].to_numpy()[-1:]])
        ax.step(t, eq, where="post", color=f"C{i}", label="cumulative realized PnL")
        ax.step(t, peak, where="post", color=f"C{i}", ls=":", lw=1, label="running peak")
        ax.fill_between(t, eq, peak, step="post", color="C3", alpha=0.3, lw=0,
                        label="drawdown")  # fmt: skip
        drawdown = agg_float(e["drawdown"].max())
        ax.set_title(f"{name}: PnL {eq[-1]:+.2f}, max drawdown {drawdown:.2f}",
                     loc="left", fontsize="medium")  # fmt: skip
        if legend:  # the first panel drawn explains the styles of all
            ax.legend(fontsize="x-small", loc="best")
            legend = False
    if not runs:
        _empty(axes[0], "no realized PnL")
    fig.suptitle(f"{title} (each panel on its own scale; shaded: drawdown from the peak)")
    _time_axis(axes[-1])
    return fig


def plot_pnl_by_asset(episodes: Frames, *, title: str = "PnL by asset") -> Figure:
    """Realized PnL per asset (bars grouped by run), from episodes tables; each bar is
    labelled with its windows traded."""
    runs = _named(episodes)
    assets = sorted({a for ep in runs.values() for a in ep["asset"].unique().to_list()})
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(1, len(runs))
    x = np.arange(len(assets))
    for i, (name, ep) in enumerate(runs.items()):
        g = ep.group_by("asset").agg(pl.col("pnl").sum(), (pl.col("fills") > 0).sum().alias("n"))
        pnl = dict(zip(g["asset"].to_list(), g["pnl"].to_list(), strict=True))
        n = dict(zip(g["asset"].to_list(), g["n"].to_list(), strict=True))
        bars = ax.bar(x + (i - (len(runs) - 1) / 2) * width, [pnl.get(a, 0.0) for a in assets],
                      width, label=name)  # fmt: skip
        ax.bar_label(bars, labels=[f"{n.get(a, 0)}w" for a in assets], fontsize="x-small")
    if not assets:
        _empty(ax, "no windows")
    _bar_axes(ax, assets, "asset", "realized PnL (USDC)", title, legend=len(runs) > 1)
    return fig


def plot_training(metrics: pl.DataFrame, *, title: str = "Training") -> Figure:
    """PPO's curves per update (:data:`TRAINING_PANELS`): policy and value loss, entropy,
    approx KL, clip fraction, explained variance, PnL per update (with the held-out PnL
    where evaluated) and win rate. A metric the run did not log says so in its panel."""
    fig = Figure(figsize=(14, 6.5), layout="constrained")
    axes = fig.subplots(2, 4, sharex=True).ravel()
    x = (
        metrics["update"].to_numpy()
        if "update" in metrics.columns
        else np.arange(1, metrics.height + 1)
    )
    for ax, (name, cols) in zip(axes, TRAINING_PANELS, strict=True):
        ax.set_title(name)
        present = [c for c in cols if c in metrics.columns]
        for c in present:
            y = metrics[c].cast(pl.Float64).fill_null(float("nan")).to_numpy()
            style = {"marker": "o", "ls": "none"} if c.startswith("eval/") else {"marker": "."}
            ax.plot(x, y, label=c, **style)
        if not present:
            _empty(ax, "not logged")
        elif len(present) > 1:
            ax.legend(fontsize="x-small")
    for ax in axes[4:]:
        ax.set_xlabel("update")
    fig.suptitle(title)
    return fig


def plot_calibration(
    positions: Frames, *, bins: int = 10, title: str = "Entry price vs outcome"
) -> Figure:
    """Calibration (:func:`~polyrl.analysis.calibration.calibration_table`): the price paid
    for the token bought (what the market says its chance is) against the share of those
    positions whose token won, per price bin, with the bin's Wilson 95% interval. On the
    diagonal the market is calibrated; a policy above it buys tokens that win more often
    than their price says (an edge), and only an interval clear of the diagonal says so.
    Entries of an unselective policy (``random``) show the market's own calibration.
    Below: the positions per bin (n, printed on each bar)."""
    runs = _named(positions)
    fig = Figure(figsize=(8, 8), layout="constrained")
    ax, hist = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.2])
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1, label="price = probability")
    width = 0.9 / bins / max(1, len(runs))
    for i, (name, p) in enumerate(runs.items()):
        c = calibration_table(p, bins=bins)
        s = c.filter(pl.col("positions") > 0)
        rate = s["win_rate"].to_numpy()
        err = np.vstack([rate - s["ci_low"].to_numpy(), s["ci_high"].to_numpy() - rate])
        ax.errorbar(s["mean_price"].to_numpy(), rate, yerr=err, fmt="o-", ms=5, lw=1,
                    elinewidth=1.2, capsize=3, alpha=0.85, color=f"C{i}", label=name)  # fmt: skip
        mid = ((c["price_low"] + c["price_high"]) / 2).to_numpy()
        x = mid + (i - (len(runs) - 1) / 2) * width
        n = c["positions"].to_numpy()
        b = hist.bar(x, n, width=width, color=f"C{i}", alpha=0.7, label=name)
        hist.bar_label(b, labels=[str(v) if v else "" for v in n], fontsize="x-small",
                       padding=1)  # fmt: skip
    hist.margins(y=0.25)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("share of positions whose token won (95% Wilson interval)")
    ax.set_title(title)
    ax.legend(fontsize="small", loc="upper left")
    if bins <= 10:
        hist.set_xticks(np.linspace(0, 1, bins + 1))
    hist.set_xlabel("entry price of the token bought (USDC per share)")
    hist.set_ylabel("positions")
    return fig


def plot_trade_pnl(positions: Frames, *, bins: int = 40, title: str = "PnL per position") -> Figure:
    """The distribution of realized PnL per position (fees included) on a linear axis, in
    bins of equal width, with each run's mean win and mean loss marked: the payoff asymmetry
    behind a low win rate."""
    runs = _named(positions)
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    allp = np.concatenate([p["pnl"].to_numpy() for p in runs.values()] or [np.zeros(0)])
    if allp.shape[0] == 0:
        _empty(ax, "no positions")
        edges: Any = bins
    else:
        edges = np.histogram_bin_edges(allp, bins=bins)
    for i, (name, p) in enumerate(runs.items()):
        x = p["pnl"].to_numpy()
        color = f"C{i}"
        ax.hist(x, bins=edges, alpha=0.5, color=color, label=name)
        for v, ls in ((x[x > 0], "-"), (x[x <= 0], ":")):
            if v.shape[0]:
                ax.axvline(float(v.mean()), color=color, ls=ls, lw=1.2)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_xlabel("PnL per position (USDC); lines: mean win (solid), mean loss (dotted)")
    ax.set_ylabel("positions")
    ax.set_title(title)
    if allp.shape[0]:
        ax.legend(fontsize="small")
    return fig


def plot_pnl_by_time_left(
    table: pl.DataFrame, *, title: str = "PnL by time left at entry"
) -> Figure:
    """Mean PnL per position by the minutes left in the window at entry, with bootstrap 95%
    intervals and each bar's positions (n) under it; from
    :func:`~polyrl.analysis.stats.by_time_left` or ``time_left_table``."""
    if "strategy" not in table.columns:
        table = table.with_columns(pl.lit("run").alias("strategy"))
    names = table["strategy"].unique(maintain_order=True).to_list()
    buckets = table["bucket"].unique(maintain_order=True).to_list()
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(1, len(names))
    x = np.arange(len(buckets))
    at: list[float] = []
    ns: list[str] = []
    for i, name in enumerate(names):
        t = table.filter(pl.col("strategy") == name)
        m = t["mean_pnl"].to_numpy()
        err = np.abs(np.vstack([m - t["ci_low"].to_numpy(), t["ci_high"].to_numpy() - m]))
        xi = x[: t.height] + (i - (len(names) - 1) / 2) * width
        ax.bar(xi, np.nan_to_num(m), width, yerr=np.nan_to_num(err), capsize=2,
               label=name)  # fmt: skip
        at += xi.tolist()
        ns += [f"n={v}" for v in t["positions"].to_list()]
    _bar_axes(ax, buckets, "minutes left in the window at entry", "mean PnL per position (USDC)",
              title, legend=len(names) > 1)  # fmt: skip
    # Each bar's n as a minor tick label under it; the bucket names one line lower.
    ax.xaxis.remove_overlapping_locs = False
    ax.set_xticks(at, ns, minor=True, fontsize="small")
    ax.tick_params(axis="x", which="major", pad=16, length=0)
    return fig


def plot_comparison(
    table: pl.DataFrame, *, reference: str = "ppo", title: str | None = None
) -> Figure:
    """The paired per-window PnL difference of ``reference`` over each other strategy with
    its bootstrap 95% interval (from :func:`~polyrl.analysis.paired.compare`): right of 0,
    ``reference`` earned more on the same windows."""
    fig = Figure(figsize=(8, 1.2 + 0.5 * max(1, table.height)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(table.height)
    d = table["mean_diff"].to_numpy()
    err = np.abs(np.vstack([d - table["ci_low"].to_numpy(), table["ci_high"].to_numpy() - d]))
    ax.errorbar(d, y, xerr=np.nan_to_num(err), fmt="o", capsize=3)
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_yticks(y, table["strategy"].to_list())
    ax.invert_yaxis()
    ax.set_xlabel(f"PnL per window, {reference} minus the strategy (USDC), 95% interval")
    ax.set_ylabel("strategy")
    ax.set_title(title or f"{reference} against each strategy on the same windows")
    return fig


def plot_data_quality(
    rates: pl.DataFrame, status: pl.DataFrame | None = None, *, title: str = "Data quality"
) -> Figure:
    """A recording's health over time: rows per second per stream (top, log scale; a drop
    to zero is a silence) and, per venue connection, the recorded gaps (bars) and
    disconnects (crosses) from ``recorder.status`` (bottom). From
    :meth:`Recording.rates <polyrl.analysis.recordings.Recording.rates>` and
    :meth:`Recording.status <polyrl.analysis.recordings.Recording.status>`."""
    fig = Figure(figsize=(12, 7), layout="constrained")
    ax, gx = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    for (stream,), r in rates.group_by(["stream"], maintain_order=True):
        ax.plot(_times(r["t_ns"]), r["rate_per_s"].to_numpy(), lw=1, label=str(stream))
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_ylabel("rows per second")
    ax.set_title(title)
    if rates.height:
        ax.legend(fontsize="x-small", ncol=3, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    st = status if status is not None else pl.DataFrame(schema={"key": pl.String})
    channels = sorted(
        st.filter(pl.col("kind").is_in(["gap", "disconnect", "connect"]))["key"].unique().to_list()
    ) if st.height else []  # fmt: skip
    for i, ch in enumerate(channels):
        c = st.filter(pl.col("key") == ch)
        g = c.filter(pl.col("kind") == "gap")
        for start, end, recv in g.select("gap_start_ns", "gap_end_ns", "recv_ns").iter_rows():
            a = _times(np.array([start if start is not None else recv]))[0]
            b = _times(np.array([end if end is not None else recv]))[0]
            gx.barh(i, b - a, left=a, height=0.6, color="C3", alpha=0.7)
        d = c.filter(pl.col("kind") == "disconnect")
        gx.plot(_times(d["recv_ns"]), np.full(d.height, i), "x", color="k")
    gx.set_yticks(np.arange(len(channels)), channels)
    gx.set_ylim(-0.7, max(0.7, len(channels) - 0.3))
    gx.set_ylabel("channel")
    gx.set_title("gaps (bars) and disconnects (x)", fontsize="small")
    if not channels:
        _empty(gx, "no connection status recorded")
    _time_axis(gx)
    return fig


def plot_window(view: WindowView) -> Figure:
    """One window around its close (:meth:`Recording.window_close
    <polyrl.analysis.recordings.Recording.window_close>`): the Up token's best bid, ask and
    mid (top) and the settlement reference price with its value at the window's open, the
    line it must close at or above for Up to win (bottom)."""
    m = view.market
    fig = Figure(figsize=(10, 6), layout="constrained")
    ax, rx = fig.subplots(2, 1, sharex=True)
    b = view.book
    t = _times(b["t_ns"])
    ax.step(t, b["best_bid"].to_numpy(), where="post", label="best bid", lw=1)
    ax.step(t, b["best_ask"].to_numpy(), where="post", label="best ask", lw=1)
    ax.step(t, b["mid"].to_numpy(), where="post", label="mid", lw=1.5, color="k")
    ax.set_ylabel("Up token price")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize="small", loc="best")
    r = view.reference
    rx.plot(_times(r["t_ns"]), r["value"].to_numpy(), lw=1.2, label="reference")
    if view.open_price is not None:
        rx.axhline(view.open_price, color="C3", ls="--", lw=1, label="reference at open")
        values = [view.open_price, *r["value"].to_list()]
        pad = 0.05 * (max(values) - min(values) or abs(view.open_price) * 1e-4 or 1.0)
        rx.set_ylim(min(values) - pad, max(values) + pad)
    rx.set_ylabel(f"{m['asset']} reference price")
    rx.legend(fontsize="small", loc="best")
    end = _times(np.array([m["window_end_ns"]]))[0]
    for a in (ax, rx):
        a.axvline(end, color="0.3", ls=":", lw=1)
    ax.set_title(f"{m['slug']}: window close (outcome {m.get('outcome') or 'not recorded'})")
    _time_axis(rx)
    return fig
