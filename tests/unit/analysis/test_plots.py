"""Every plot function draws a Figure with the expected axes and labels from a small run."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from matplotlib.figure import Figure

from polyrl.analysis import (
    compare,
    load_recording,
    load_run,
    plot_calibration,
    plot_comparison,
    plot_data_quality,
    plot_equity,
    plot_pnl_by_asset,
    plot_pnl_by_time_left,
    plot_trade_pnl,
    plot_training,
    plot_window,
    positions,
    time_left_table,
)
from polyrl.analysis.plots import TRAINING_PANELS
from polyrl.analysis.stats import max_drawdown
from polyrl.analysis.trades import closed_pnl
from polyrl.events import iso_to_ns
from polyrl.runlog import TRADES

from .frames import trades


@pytest.fixture(scope="module")
def results(small_runs: Path) -> dict[str, tuple[pl.DataFrame, pl.DataFrame]]:
    return load_run(small_runs / "train").results()


def _renders(fig: Figure) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"


def test_equity(results: dict) -> None:
    fig = plot_equity({"ppo": results["ppo"][0], "random": results["random"][0]})
    # One panel per run, the time axis under the last.
    ppo, rnd = fig.axes
    assert ppo.get_title(loc="left").startswith("ppo: ")
    assert rnd.get_title(loc="left").startswith("random: PnL ")
    assert ppo.get_ylabel() == rnd.get_ylabel() == "PnL (USDC)" and rnd.get_xlabel() == "time (UTC)"
    labels = [t.get_text() for t in ppo.get_legend().get_texts()]
    assert labels == ["cumulative realized PnL", "running peak", "drawdown"]
    # The random run's line starts at 0 and ends at its total realized PnL; the drawdown
    # shaded between it and its running peak is the run's max drawdown.
    _, line, peak = rnd.lines
    y, p = np.asarray(line.get_ydata()), np.asarray(peak.get_ydata())
    assert y[0] == 0.0 and y[-1] == pytest.approx(results["random"][0]["realized_pnl"].sum())
    assert np.all(p >= y) and len(rnd.collections) == 1
    assert float(np.max(p - y)) == pytest.approx(max_drawdown(closed_pnl(results["random"][0])[
        "pnl"].to_numpy()))  # fmt: skip
    # Both panels span the same time.
    assert ppo.lines[1].get_xdata()[0] == line.get_xdata()[0]
    assert ppo.lines[1].get_xdata()[-1] == line.get_xdata()[-1]
    _renders(fig)
    empty = plot_equity(pl.DataFrame(schema=TRADES))
    assert "no realized PnL" in [t.get_text() for t in empty.axes[0].texts]


def test_equity_keeps_each_run_on_its_own_scale() -> None:
    """A run that lost 1000 times more does not flatten the others: each panel's PnL axis
    fits its own run (frames.py: +16.7 in total, max drawdown 5.1)."""
    small = trades()
    big = small.with_columns(pl.col("realized_pnl") * -1000.0)
    none = small.clear()
    fig = plot_equity({"small": small, "big": big, "idle": none})
    s, b, idle = fig.axes
    assert not s.get_shared_y_axes().joined(s, b)
    lo, hi = s.get_ylim()
    assert -10 < lo < -3.1 and 16.7 < hi < 25  # -3.1 .. 16.7, plus margins
    lo, hi = b.get_ylim()
    assert lo < -16_700 and hi > 3_100  # cumulative -2000, +3100, -16700
    assert s.get_title(loc="left") == "small: PnL +16.70, max drawdown 5.10"
    assert b.get_title(loc="left") == "big: PnL -16700.00, max drawdown 19800.00"
    assert idle.get_title(loc="left") == "idle: no realized PnL"
    assert "no realized PnL" in [t.get_text() for t in idle.texts]
    _renders(fig)


def test_pnl_by_asset(results: dict) -> None:
    fig = plot_pnl_by_asset({n: ep for n, (_, ep) in results.items()})
    (ax,) = fig.axes
    assert ax.get_xlabel() == "asset" and ax.get_ylabel() == "realized PnL (USDC)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["btc", "eth", "sol", "xrp"]
    assert len(ax.patches) == 4 * len(results)  # a bar per asset per strategy
    ep = results["random"][1]
    want = ep.filter(pl.col("asset") == "eth")["pnl"].sum()
    heights = [p.get_height() for p in ax.patches]
    random_eth = heights[list(results).index("random") * 4 + 1]
    assert random_eth == pytest.approx(want)
    _renders(fig)


def test_training(small_runs: Path) -> None:
    m = load_run(small_runs / "train").metrics
    fig = plot_training(m)
    assert len(fig.axes) == len(TRAINING_PANELS) == 8
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["policy loss", "value loss", "entropy", "approx KL", "clip fraction",
                      "explained variance", "PnL per update (USDC)", "win rate"]  # fmt: skip
    assert all(ax.get_xlabel() == "update" for ax in fig.axes[4:])
    ent = fig.axes[2].lines[0]
    assert list(ent.get_xdata()) == [1, 2]
    assert list(ent.get_ydata()) == pytest.approx(m["losses/entropy"].to_list())
    labels = [ln.get_label() for ln in fig.axes[6].lines]
    assert labels == ["pnl/realized", "val/pnl"]
    _renders(fig)
    # A metrics table without PPO losses (a live session's) says so per panel.
    live = plot_training(pl.DataFrame({"t_ns": [1, 2], "pnl/realized": [0.0, 1.0]}))
    assert "not logged" in [t.get_text() for t in live.axes[0].texts]
    assert len(live.axes[6].lines) == 1


def test_calibration(results: dict) -> None:
    pos = {n: positions(tr, ep) for n, (tr, ep) in results.items()}
    fig = plot_calibration({"random": pos["random"], "ppo": pos["ppo"]}, bins=5)
    cal, hist = fig.axes
    assert cal.get_ylabel() == "share of positions whose token won (95% Wilson interval)"
    assert hist.get_xlabel() == "entry price of the token bought (USDC per share)"
    assert hist.get_ylabel() == "positions"
    legend = [t.get_text() for t in cal.get_legend().get_texts()]
    assert legend == ["price = probability", "random", "ppo"]
    # The histogram counts every settled position of each run, 5 bins each.
    settled = pos["random"].filter(pl.col("won").is_not_null()).height
    assert sum(p.get_height() for p in hist.patches[:5]) == settled
    rates = cal.containers[0].lines[0].get_ydata()
    assert np.all((rates >= 0) & (rates <= 1))
    _renders(fig)


def test_calibration_draws_counts_and_wilson_intervals() -> None:
    """Hand-computed (test_calibration.py): 1 of 2 won at 0.05-0.08, 2 of 3 at 0.55-0.57,
    1 of 1 at 0.95."""
    pos = pl.DataFrame({"entry_price": [0.05, 0.08, 0.55, 0.56, 0.57, 0.95],
                        "won": [False, True, True, True, False, True]})  # fmt: skip
    fig = plot_calibration({"run": pos}, bins=10)
    cal, hist = fig.axes
    (bars,) = cal.containers
    points, _, (segments,) = bars.lines
    assert list(points.get_xdata()) == pytest.approx([0.065, 0.56, 0.95])
    assert list(points.get_ydata()) == pytest.approx([0.5, 2 / 3, 1.0])
    ends = [(seg[0][1], seg[1][1]) for seg in segments.get_segments()]
    want = [(0.094531, 0.905469), (0.207660, 0.938508), (0.206549, 1.0)]
    assert ends == [pytest.approx(w, abs=1e-6) for w in want]
    # Every bin's n is a bar, printed on it (empty bins print nothing).
    assert [p.get_height() for p in hist.patches] == [2, 0, 0, 0, 0, 3, 0, 0, 0, 1]
    assert [t.get_text() for t in hist.texts] == ["2", "", "", "", "", "3", "", "", "", "1"]
    _renders(fig)


def test_trade_pnl(results: dict) -> None:
    p = positions(*results["random"])
    fig = plot_trade_pnl({"random": p}, bins=20)
    (ax,) = fig.axes
    assert ax.get_ylabel() == "positions" and ax.get_xlabel().startswith("PnL per position")
    assert ax.get_xscale() == "linear"
    assert sum(b.get_height() for b in ax.patches) == p.height
    # Bins of equal width spanning the PnLs.
    widths = [b.get_width() for b in ax.patches]
    assert len(widths) == 20 and widths == pytest.approx([widths[0]] * 20)
    x = p["pnl"].to_numpy()
    assert ax.patches[0].get_x() == pytest.approx(x.min())
    assert ax.patches[-1].get_x() + widths[-1] == pytest.approx(x.max())
    vlines = [ln.get_xdata()[0] for ln in ax.lines]
    wins = p.filter(pl.col("pnl") > 0)["pnl"]
    losses = p.filter(pl.col("pnl") <= 0)["pnl"]
    # The mean win, the mean loss and the zero line are marked.
    assert vlines == pytest.approx([wins.mean(), losses.mean(), 0.0])
    _renders(fig)


def test_pnl_by_time_left(results: dict) -> None:
    t = time_left_table({"ppo": results["ppo"], "random": results["random"]})
    fig = plot_pnl_by_time_left(t)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "minutes left in the window at entry"
    assert ax.get_ylabel() == "mean PnL per position (USDC)"
    assert [x.get_text() for x in ax.get_xticklabels()] == t["bucket"].unique(
        maintain_order=True
    ).to_list()
    assert len(ax.patches) == t.height
    # Each bar's n under it, as a minor tick label at the bar.
    n = [f"n={v}" for v in t["positions"].to_list()]
    assert [x.get_text() for x in ax.get_xticklabels(minor=True)] == n
    centres = [p.get_x() + p.get_width() / 2 for p in ax.patches]
    assert list(ax.get_xticks(minor=True)) == pytest.approx(centres)
    _renders(fig)


def test_comparison(results: dict) -> None:
    t = compare(results, reference="ppo")
    fig = plot_comparison(t, reference="ppo")
    (ax,) = fig.axes
    assert ax.get_xlabel().startswith("PnL per window, ppo minus the strategy")
    assert [x.get_text() for x in ax.get_yticklabels()] == t["strategy"].to_list()
    assert list(ax.lines[0].get_xdata()) == pytest.approx(t["mean_diff"].to_list())
    _renders(fig)


def test_data_quality_and_window(small_recording: Path) -> None:
    rec = load_recording(small_recording)
    status = rec.status()
    # One gap and a disconnect of our own, to see them drawn.
    t0 = iso_to_ns("2024-06-01T00:10:00Z")
    gap = pl.DataFrame({"recv_ns": [t0 + 30 * 10**9, t0], "key": ["binance.spot.ws"] * 2,
                        "kind": ["gap", "disconnect"], "stream_id": [None, None],
                        "message": ["", ""], "gap_start_ns": [t0, None],
                        "gap_end_ns": [t0 + 30 * 10**9, None]},
                       schema=dict(status.schema))  # fmt: skip
    fig = plot_data_quality(rec.rates(), pl.concat([status, gap]))
    rates_ax, gaps_ax = fig.axes
    assert rates_ax.get_ylabel() == "rows per second" and rates_ax.get_yscale() == "symlog"
    assert len(rates_ax.lines) == len(rec.streams)
    assert gaps_ax.get_xlabel() == "time (UTC)" and gaps_ax.get_ylabel() == "channel"
    channels = [t.get_text() for t in gaps_ax.get_yticklabels()]
    assert "binance.spot.ws" in channels
    assert len(gaps_ax.patches) == 1  # the one gap
    _renders(fig)
    m = rec.markets().filter(pl.col("outcome").is_not_null())
    view = rec.window_close(m["slug"][0], before_s=60, after_s=10)
    fig = plot_window(view)
    book, ref = fig.axes
    assert book.get_ylabel() == "Up token price"
    assert ref.get_ylabel() == f"{view.market['asset']} reference price"
    assert [ln.get_label() for ln in book.lines[:3]] == ["best bid", "best ask", "mid"]
    assert view.market["slug"] in book.get_title()
    lo, hi = ref.get_ylim()
    assert view.open_price is not None and lo <= view.open_price <= hi
    _renders(fig)
