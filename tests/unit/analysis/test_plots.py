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
from polyrl.events import iso_to_ns
from polyrl.runlog import TRADES


@pytest.fixture(scope="module")
def results(small_runs: Path) -> dict[str, tuple[pl.DataFrame, pl.DataFrame]]:
    return load_run(small_runs / "train").results()


def _renders(fig: Figure) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"


def test_equity(results: dict) -> None:
    fig = plot_equity({"ppo": results["ppo"][0], "random": results["random"][0]})
    eq, dd = fig.axes
    assert eq.get_ylabel() == "cumulative realized PnL (USDC)"
    assert dd.get_ylabel() == "drawdown (USDC)" and dd.get_xlabel() == "time (UTC)"
    assert [t.get_text() for t in eq.get_legend().get_texts()] == ["ppo", "random"]
    # The random run's line ends at its total realized PnL.
    y = eq.lines[1].get_ydata()
    assert y[-1] == pytest.approx(results["random"][0]["realized_pnl"].sum())
    assert np.all(np.asarray(dd.collections[1].get_paths()[0].vertices[:, 1]) <= 1e-9)
    _renders(fig)
    empty = plot_equity(pl.DataFrame(schema=TRADES))
    assert "no realized PnL" in [t.get_text() for t in empty.axes[0].texts]


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
    assert labels == ["pnl/realized", "eval/pnl"]
    _renders(fig)
    # A metrics table without PPO losses (a live session's) says so per panel.
    live = plot_training(pl.DataFrame({"t_ns": [1, 2], "pnl/realized": [0.0, 1.0]}))
    assert "not logged" in [t.get_text() for t in live.axes[0].texts]
    assert len(live.axes[6].lines) == 1


def test_calibration(results: dict) -> None:
    pos = {n: positions(tr, ep) for n, (tr, ep) in results.items()}
    fig = plot_calibration({"random": pos["random"], "ppo": pos["ppo"]}, bins=5)
    cal, hist = fig.axes
    assert cal.get_ylabel() == "share of positions whose token won"
    assert hist.get_xlabel() == "entry price of the token bought (USDC per share)"
    assert hist.get_ylabel() == "positions"
    legend = [t.get_text() for t in cal.get_legend().get_texts()]
    assert legend == ["price = probability", "random", "ppo"]
    # The histogram counts every settled position of each run, 5 bins each.
    settled = pos["random"].filter(pl.col("won").is_not_null()).height
    assert sum(p.get_height() for p in hist.patches[:5]) == settled
    rates = cal.collections[0].get_offsets()[:, 1]
    assert np.all((rates >= 0) & (rates <= 1))
    _renders(fig)


def test_trade_pnl(results: dict) -> None:
    p = positions(*results["random"])
    fig = plot_trade_pnl({"random": p}, bins=20)
    (ax,) = fig.axes
    assert ax.get_ylabel() == "positions" and ax.get_xlabel().startswith("PnL per position")
    assert ax.get_xscale() == "symlog"
    assert sum(b.get_height() for b in ax.patches) == p.height
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
