"""The dashboard in a real headless Chromium, driven over the DevTools protocol.

The numbers the page shows (fills, realized PnL, fees, settled windows, per market, the
positions) are read off the page and compared with the run's files read with polars. A page
loaded before its server is up retries and says it reconnected; a live run's page says live,
then finished (and when). Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from polyrl.dashboard.server import DashboardServer, page_html
from polyrl.features.sets import feature_set
from polyrl.policies.baselines import make_baseline
from polyrl.replay import load_days, replay_engine
from polyrl.runlog import TRADES, RunLog, atomic_write_parquet
from polyrl.sections import Config

from .browser import ARTIFACTS, chromium_devtools, new_page, screenshot

pytestmark = pytest.mark.integration


@pytest.fixture
def browser_ws() -> Iterator[str]:
    yield from chromium_devtools()


SHOWN = """(() => {
  const txt = (id) => document.getElementById(id).textContent;
  const cards = [...document.querySelectorAll('.card')].map((c) => ({asset: c.dataset.asset,
    fills: Number(c.dataset.fills), realized: Number(c.dataset.realized),
    text: c.textContent}));
  const positions = [...document.querySelectorAll('#positions tbody tr')]
    .filter((r) => r.cells.length > 1)
    .map((r) => [...r.cells].map((c) => c.textContent));
  return {fills: txt('fills'), realized: txt('realized'), fees: txt('fees'),
          settled: txt('settled'), state: txt('state'), status: txt('status'), cards,
          positions, chart: window.chartInfo || null, log: window.connLog};
})()"""


def _files(run: Path) -> dict[str, Any]:
    """The numbers the page must show, straight from the run's files."""
    trades = pl.read_parquet(run / "trades.parquet")
    eps = pl.read_parquet(run / "episodes.parquet")
    closing = pl.col("kind").is_in(["close", "settle"])
    per = trades.group_by("asset").agg(
        (pl.col("kind") != "settle").sum().alias("fills"),
        pl.col("realized_pnl").filter(closing).sum().alias("realized"),
    )
    held = (
        trades.filter((pl.col("kind") != "settle")
                      & ~pl.col("condition_id").is_in(eps["condition_id"].to_list()))
        .group_by("condition_id", "asset", "token")
        .agg((pl.col("side").cast(pl.Float64) * pl.col("shares")).sum().alias("shares"))
        .filter(pl.col("shares") > 1e-9)
    )  # fmt: skip
    return {
        "fills": trades.filter(pl.col("kind") != "settle").height,
        "realized": float(trades.filter(closing)["realized_pnl"].sum()),
        "fees": float(trades["fee"].sum()),
        "settled": eps.height,
        "per_asset": {r["asset"]: r for r in per.iter_rows(named=True)},
        "positions": sorted(
            (r["asset"], r["token"], f"{r['shares']:.2f}") for r in held.iter_rows(named=True)
        ),  # fmt: skip
    }


def _agree(shown: dict[str, Any], files: dict[str, Any]) -> None:
    """Header, cards and positions on the page equal the run's files."""
    assert shown["fills"] == str(files["fills"])
    assert shown["realized"] == f"{files['realized']:+.2f}"
    assert shown["fees"] == f"{files['fees']:.2f}"
    assert shown["settled"] == str(files["settled"])
    for card in shown["cards"]:
        mine = files["per_asset"].get(card["asset"], {"fills": 0, "realized": 0.0})
        assert card["fills"] == mine["fills"], card
        assert card["realized"] == pytest.approx(mine["realized"], abs=1e-9), card
    assert sum(c["fills"] for c in shown["cards"]) == files["fills"]
    assert sorted((p[0], p[1], p[2]) for p in shown["positions"]) == files["positions"]


def _utc(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def _page_only_server() -> tuple[Any, asyncio.Event]:
    """Serves the page, but no dashboard: the first WebSocket handshake is never answered
    (a server too busy to reply), later ones are refused (503)."""
    hung: list[int] = []
    release = asyncio.Event()

    async def http(connection: Any, request: Any) -> Response:
        ok = request.path.split("?", 1)[0] == "/"
        if not ok and not hung:
            hung.append(1)
            await release.wait()  # until the test lets go of it (answering 503)
        body = page_html() if ok else b"not yet\n"
        ctype = "text/html; charset=utf-8" if ok else "text/plain"
        headers = Headers([("Content-Type", ctype), ("Content-Length", str(len(body))),
                           ("Connection", "close")])  # fmt: skip
        return Response(200 if ok else 503, "OK" if ok else "Service Unavailable", headers, body)

    async def never(ws: Any) -> None:  # pragma: no cover - every request is answered above
        await ws.close()

    server = await serve(never, "127.0.0.1", 0, process_request=http, open_timeout=None)
    return server, release


def test_dashboard_reconnects_and_shows_the_runs_numbers(
    small_recording: Path, tmp_path: Path, browser_ws: str
) -> None:
    """A backtest run: the page is loaded while its WebSocket hangs, then is refused, then
    nothing listens; once the dashboard server is up on that port the page says it
    reconnected and shows the run: finished (at its last event), and header, cards and
    positions equal to the files. A trade written while the page is open is pushed."""
    cfg = Config()
    run = tmp_path / "run"
    log = RunLog(run, config={"strategy": "random"}, overwrite=True)
    fset = feature_set(cfg.features.feature_set)
    replay_engine(load_days(small_recording, "*", cfg), make_baseline("random", fset,
                  cfg.baselines, seed=2), cfg, log)  # fmt: skip
    log.finish({"kind": "backtest"})
    trades = pl.read_parquet(run / "trades.parquet")
    assert trades.height > 0

    async def main() -> None:
        early, release = await _page_only_server()
        port = early.sockets[0].getsockname()[1]
        server = DashboardServer.for_run(run, port=port)
        try:
            async with connect(browser_ws, max_size=None) as ws:
                page = await new_page(ws)
                await page.call("Page.navigate", url=f"http://127.0.0.1:{port}/")
                # The first handshake hangs (the page gives up on it), the next is refused,
                # then nothing listens at all.
                await page.until("window.connLog.some((s) => s.includes('retrying'))")
                await page.until("window.connLog.filter((s) => s.includes('retrying'))"
                                 ".length >= 2")  # fmt: skip
                release.set()
                early.close()  # stops listening at once (a speculative idle socket may linger)
                await page.until("window.connLog.filter((s) => s.includes('retrying'))"
                                 ".length >= 3")  # fmt: skip
                assert await page.js("document.querySelectorAll('.card').length") == 0
                await server.start()
                assert server.port == port
                n = await page.until("document.querySelectorAll('.card').length === 4 && 4")
                assert n == 4
                shown = await page.until(
                    f"document.querySelector('#status').textContent.startsWith("
                    f"'connected (reconnected after') && {SHOWN}"
                )  # fmt: skip
                assert any(s.startswith("reconnecting (attempt ") for s in shown["log"])
                assert [c["asset"] for c in shown["cards"]] == ["btc", "eth", "sol", "xrp"]
                last = max(
                    int(trades["t_ns"].max()),
                    int(pl.read_parquet(run / "episodes.parquet")["settled_ns"].max()),
                )
                assert shown["state"] == f"finished {_utc(last)}"
                _agree(shown, _files(run))
                assert shown["chart"]["y1"] >= max(0.0, _files(run)["realized"])
                assert shown["chart"]["t0"] == int(trades["t_ns"].min())
                await screenshot(page, "dashboard.png")
                # A trade written to the run while the page is open is pushed into the feed.
                row = {c: trades[c][-1] for c in TRADES}
                row.update(t_ns=int(trades["t_ns"].max()) + 10**9, asset="xrp", kind="close",
                           shares=123.45, realized_pnl=7.77)  # fmt: skip
                grown = pl.concat([trades, pl.DataFrame([row], schema=TRADES)])
                atomic_write_parquet(grown, run / "trades.parquet")
                await page.until(
                    "[...document.querySelectorAll('#trades tbody tr')].some(r =>"
                    " r.textContent.includes('123.45') && r.textContent.includes('+7.77'))"
                )
                shown = await page.until(
                    f"document.querySelector('#fills').textContent === "
                    f"'{trades.height - trades.filter(pl.col('kind') == 'settle').height + 1}'"
                    f" && {SHOWN}"
                )  # fmt: skip
                _agree(shown, _files(run))
        finally:
            await server.stop()
            release.set()
            early.close()

    asyncio.run(asyncio.wait_for(main(), 90))
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


@pytest.mark.slow
def test_dashboard_of_a_live_session_says_live_then_finished(
    tmp_path: Path, browser_ws: str
) -> None:
    """A live session on the loopback venues (speed 30): its page says live with the
    window's time left while it trades; when it stops, the server pushes its last snapshot
    before closing, and the page says finished at the last tick and shows exactly the
    fills, PnL, fees, per-market numbers and open positions the run's files hold."""
    from polyrl.clock import LiveClock
    from polyrl.events import NS_PER_S, iso_to_ns
    from polyrl.live import LiveSession
    from polyrl.recording.writer import RecordingConfig
    from polyrl.sim.serve import ServersThread, SimContent, VenueServers
    from polyrl.sources.adapters import default_adapters

    t0 = iso_to_ns("2024-06-01T00:09:00Z")
    clock = LiveClock(speed=30.0, start_ns=t0)
    content = SimContent(Config(assets=("btc", "eth")), start_ns=t0,
                         end_ns=t0 + 30 * 60 * NS_PER_S, seed=9)  # fmt: skip
    run = tmp_path / "run"

    async def main(v: VenueServers) -> None:
        base = Config(assets=("btc", "eth"),
                      recording=RecordingConfig(fsync=False, checkpoint_s=1.0))  # fmt: skip
        cfg = dataclasses.replace(base, sources=v.sources_config(base.sources))
        fset = feature_set(cfg.features.feature_set)
        session = LiveSession(
            config=cfg, policy=make_baseline("random", fset, cfg.baselines, seed=3),
            run_dir=run, recording_root=tmp_path / "rec", clock=clock,
            adapters=default_adapters(cfg), run_config={"kind": "live"},
        )  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(session.run(stop=stop, install_signal_handlers=False))
        server = DashboardServer.live(session)
        await server.start()
        try:
            async with connect(browser_ws, max_size=None) as ws:
                page = await new_page(ws)
                await page.call("Page.navigate", url=f"http://127.0.0.1:{server.port}/")
                await page.until("document.querySelector('#state').className === 'live'")
                # Trading starts after the features' five-minute warm-up (10 s real).
                await page.until("Number(document.querySelector('#fills').textContent) >= 4",
                                 timeout_s=60)  # fmt: skip
                left = await page.js("document.querySelector('.card .meta').textContent")
                assert re.search(r"\d+:\d\d left", left), left
                assert (await page.js("document.querySelector('#state').textContent")
                        ).startswith("live · ")  # fmt: skip
                await screenshot(page, "dashboard-live.png")
                stop.set()
                await task
                await server.stop()  # what `polyrl live --dashboard` does as it ends
                shown = await page.until(
                    f"document.querySelector('#state').className === 'finished' && {SHOWN}"
                )
                summary = json.loads((run / "summary.json").read_text())
                assert shown["state"] == f"finished {_utc(summary['last_tick_ns'])}"
                assert "left" not in " ".join(c["text"] for c in shown["cards"])
                files = _files(run)
                assert files["fills"] == summary["fills"] > 0
                assert files["realized"] == pytest.approx(summary["realized_pnl"])
                _agree(shown, files)
                await page.until("window.connLog.some((s) => s.startsWith('disconnected'))")
                await screenshot(page, "dashboard-finished.png")
        finally:
            stop.set()
            await server.stop()
            await asyncio.gather(task, return_exceptions=True)

    with ServersThread(VenueServers(content, clock=clock)) as v:
        asyncio.run(asyncio.wait_for(main(v), 150))
