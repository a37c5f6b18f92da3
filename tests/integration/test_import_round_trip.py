"""The round trip: a simulated recording exported to the PMXT, Gamma and Binance archive
formats, served on 127.0.0.1 and imported back with ``polyrl import polymarket`` and ``polyrl
import binance`` (:mod:`tests.integration.import_archives`), rebuilds the same Up/Down books
at every tick and gives the same backtest as the original normalised to what the archives
keep (:mod:`polyrl.testing.normalise`): fills, PnL and every decision equal, exactly.

Against the raw original the backtest differs, and that difference is what the archives
lose: (1) settlement: a window the recording closed before Gamma resolved it is settled in
the raw original from the reference feed, which no archive holds, so on the imported root it
has no outcome and is left out; (2) time: Binance rows arrive at venue time + 20 ms instead
of their recorded receive time, Polymarket rows at whole milliseconds, markets 60 s before
their window, resolutions at Gamma's ``closedTime``. On this recording (1) is the whole PnL
difference; (2) moves 2 of 17 fills by one 0.5 s tick (same orders, same prices) and settles
windows 2.5-28.5 s earlier than the recorder's Gamma poll saw them.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from polyrl.events import NS_PER_S
from polyrl.recording.reader import RecordingReader
from polyrl.sources.polymarket.book import TokenBook
from polyrl.testing.normalise import normalise_to_archives

from .conftest import run_cli
from .import_archives import ASSETS, DAY, END, START, archives

pytestmark = pytest.mark.integration
TICK = NS_PER_S // 2
"""The engine's decision interval."""


@pytest.fixture(scope="session")
def arch(tmp_path_factory):
    return archives(tmp_path_factory)


@pytest.fixture(scope="session")
def normalised(arch, tmp_path_factory) -> Path:
    """The original as the archives give it back (:mod:`polyrl.testing.normalise`)."""
    root = tmp_path_factory.mktemp("round-trip-normalised") / "rec"
    normalise_to_archives(arch.original, root)
    return root


@pytest.fixture(scope="session")
def backtests(arch, normalised, tmp_path_factory) -> dict:
    """momentum on the history set over the imported root, the normalised original and the
    raw original: each run's trades, decisions, episodes and summary."""
    base = tmp_path_factory.mktemp("round-trip-runs")
    cfg = base / "assets.toml"
    cfg.write_text(f"assets = {json.dumps(list(ASSETS))}\n")
    out = {}
    for name, root in (("imported", arch.imported), ("normalised", normalised),
                       ("raw", arch.original)):  # fmt: skip
        res = run_cli("backtest", "--strategy", "momentum", "--replay", DAY, "--root", str(root),
                      "--feature-set", "history", "--runs", str(base / "runs"), "--name", name,
                      "--config", str(cfg), timeout=300)  # fmt: skip
        assert res.returncode == 0, res.stderr
        run = base / "runs" / name
        out[name] = {
            "trades": pl.read_parquet(run / "trades.parquet"),
            "decisions": pl.read_parquet(run / "decisions.parquet"),
            "episodes": pl.read_parquet(run / "episodes.parquet"),
            "summary": json.loads((run / "summary.json").read_text()),
        }
    return out


def _books_at_ticks(root: Path) -> list:
    """Every current market's Up/Down books at each decision tick (every 0.5 s) of the
    simulated span, rebuilt from the book and price_change rows in (recv_ns, seq) order."""
    r = RecordingReader(root, dates=DAY)
    ev = []
    for row in r.read_stream("polymarket.book").iter_rows(named=True):
        ev.append((row["recv_ns"], row["seq"], 0, row["key"],
                   (row["bid_px"], row["bid_size"], row["ask_px"], row["ask_size"])))  # fmt: skip
    for row in r.read_stream("polymarket.price_change").iter_rows(named=True):
        ev.append((row["recv_ns"], row["seq"], 1, row["key"],
                   (row["side"] == "BUY", row["price"], row["size"])))  # fmt: skip
    ev.sort(key=lambda e: (e[0], e[1]))
    m = r.read_stream("polymarket.market").unique("key").sort("window_start_ns", "asset")
    markets = list(m.iter_rows(named=True))
    books: dict[str, TokenBook] = {}
    out, i = [], 0
    for t in range(START + TICK, END, TICK):
        while i < len(ev) and ev[i][0] <= t:
            _, _, kind, key, p = ev[i]
            book = books.setdefault(key, TokenBook(key))
            book.replace(*p) if kind == 0 else book.set_level(*p)
            i += 1
        snap = []
        for m in markets:
            if m["window_start_ns"] <= t < m["window_end_ns"]:
                for tok in (m["up_token"], m["down_token"]):
                    b = books.get(tok)
                    snap.append(None if b is None else (tuple(b.bids()), tuple(b.asks())))
        out.append(tuple(snap))
    return out


def test_the_combined_root_rebuilds_the_books_at_every_tick(arch, normalised):
    got = _books_at_ticks(arch.imported)
    want = _books_at_ticks(normalised)
    assert len(got) == 2 * 25 * 60 - 1
    # both assets' Up and Down books exist at nearly every tick: the check is not vacuous
    assert sum(all(b is not None for b in snap) and len(snap) == 4 for snap in got) > 2800
    assert got == want


def _pnl(summary: dict) -> dict:
    s = summary["stats"]
    keys = ("pnl", "fills", "fees", "roi", "windows", "windows_traded", "max_drawdown")
    return {k: {a: s["by_asset"][a][k] for a in ASSETS} | {"total": s["total"][k]} for k in keys}


def _episodes(run: dict) -> pl.DataFrame:
    ep = run["episodes"]
    last = run["decisions"]["t_ns"].max()
    given_up = ep.filter(pl.col("no_outcome"))["settled_ns"]
    assert (given_up == last).all()  # the last tick: no decision of the policy
    return ep.with_columns(
        pl.when(pl.col("no_outcome")).then(None).otherwise(pl.col("settled_ns")).alias("settled_ns")
    )


def test_the_same_backtest_as_the_original_normalised_to_the_archives(backtests):
    imp, norm = backtests["imported"], backtests["normalised"]
    assert len(imp["trades"]) >= 10  # the baseline trades: equality is not of two empty runs
    assert imp["trades"].equals(norm["trades"])
    assert _pnl(imp["summary"]) == _pnl(norm["summary"])
    od_i, od_n = imp["summary"]["output_digests"], norm["summary"]["output_digests"]
    assert od_i["trades.parquet"] == od_n["trades.parquet"]
    # Episodes equal but for when a window with no outcome was given up: at the replay's
    # last tick, which on the imported root is later (its grid runs to the gap rows the
    # import writes for the windows Gamma does not know, dated at their ends).
    e_i, e_n = _episodes(imp), _episodes(norm)
    assert e_i.equals(e_n)
    assert imp["episodes"]["no_outcome"].sum() == 2
    # The imported root's tick grid starts earlier (its import status rows are dated at the
    # day's start; the normalised copy's first rows are market rows): decisions are compared
    # over the simulated span, where the data are.
    span = (pl.col("t_ns") >= START) & (pl.col("t_ns") < END)
    d_i, d_n = imp["decisions"].filter(span), norm["decisions"].filter(span)
    assert len(d_i) == 2 * 2 * 25 * 60  # two assets, a decision every 0.5 s
    assert d_i.equals(d_n)
    assert (d_i["action"] != 0).sum() > 0
    # The recording digests differ (seq, raw frames, status rows): they are not compared.


def test_how_far_the_imported_backtest_is_from_the_raw_original(backtests):
    """What the archives lose, measured on this recording (see the module docstring): the
    same orders at the same prices, a few of them a tick apart, settlements at Gamma's
    ``closedTime`` (before the recorder's poll saw them), and the windows only the reference
    feed settles left out. Asserted loosely, with the reason for each bound."""
    imp, raw = backtests["imported"], backtests["raw"]
    ti, tr = imp["summary"]["stats"]["total"], raw["summary"]["stats"]["total"]
    fills = pl.col("kind") != "settle"
    f_i, f_r = imp["trades"].filter(fills), raw["trades"].filter(fills)
    same = ["asset", "slug", "kind", "token", "side", "shares", "avg_price", "fee"]
    # The same orders, filled at the same prices: the 20 ms Binance delay and the
    # millisecond Polymarket times move a momentum signal across a tick boundary now and
    # then, never to another order on this recording.
    assert f_i.select(same).equals(f_r.select(same))
    moved = (f_i["t_ns"] - f_r["t_ns"]).abs()
    assert moved.max() <= NS_PER_S  # at most two 0.5 s ticks apart
    # Windows the recording ended before Gamma resolved: the raw original settles them from
    # the reference feed, which no archive holds; the imported root leaves them out.
    ep_r = raw["episodes"]
    by_ref = ep_r.filter(pl.col("outcome_source") == "reference")
    left_out = imp["episodes"].filter(pl.col("no_outcome"))["slug"].sort()
    assert by_ref["slug"].sort().equals(left_out) and len(left_out) > 0
    assert ti["settled_from_reference"] == 0 and tr["windows"] == ti["windows"] + len(by_ref)
    # ... and they are the whole PnL difference.
    assert abs((tr["pnl"] - ti["pnl"]) - by_ref["pnl"].sum()) < 1e-9
    assert abs((tr["fees"] - ti["fees"]) - by_ref["fees"].sum()) < 1e-9
    # Gamma-resolved windows settle at closedTime, never later than the recorder saw them.
    both = imp["episodes"].filter(~pl.col("no_outcome")).join(ep_r, on="slug", suffix="_raw")
    early = (both["settled_ns_raw"] - both["settled_ns"]) / NS_PER_S
    assert (early >= 0).all()
    print(
        f"\nimported vs raw original: {len(f_i)} fills both, {(moved > 0).sum()} moved "
        f"(max {moved.max() / 1e9:.1f} s); PnL {ti['pnl']:+.3f} vs {tr['pnl']:+.3f} "
        f"({len(by_ref)} windows settled from the reference feed only in the raw original: "
        f"{by_ref['pnl'].sum():+.3f}); settlements {early.min():.1f}-{early.max():.1f} s "
        "earlier"
    )
