"""The dashboard in a real headless Chromium, driven over the DevTools protocol.

The page loads, shows one card per market, and a trade written to the run while the page is
open appears in its feed; a screenshot is saved to tests/artifacts/dashboard.png.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from websockets.asyncio.client import connect

from polyrl.config import Config
from polyrl.dashboard.server import DashboardServer
from polyrl.features.sets import feature_set
from polyrl.policies.baselines import make_baseline
from polyrl.replay import load_days, replay_engine
from polyrl.runlog import TRADES, RunLog, atomic_write_parquet

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture
def browser_ws(tmp_path: Path):  # type: ignore[no-untyped-def]
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Chromium (.ci/run apt-gets it)")
        pytest.skip("no Chromium on this machine (CI installs Debian's chromium)")
    profile = tempfile.mkdtemp(prefix="polyrl-chromium-")
    proc = subprocess.Popen(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "--window-size=1400,1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = None
    assert proc.stderr is not None
    for _ in range(200):
        line = proc.stderr.readline()
        m = re.search(r"DevTools listening on (ws://\S+)", line)
        if m:
            url = m.group(1)
            break
    try:
        assert url, "Chromium did not report its DevTools endpoint"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(profile, ignore_errors=True)


class Cdp:
    """A minimal DevTools-protocol client over one page session."""

    def __init__(self, ws: Any, session: str) -> None:
        self.ws, self.session, self.n = ws, session, 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.n += 1
        mid = self.n
        await self.ws.send(json.dumps({"id": mid, "method": method, "params": params,
                                       "sessionId": self.session}))  # fmt: skip
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def js(self, expr: str) -> Any:
        r = await self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r.get("result", {}).get("value")

    async def until(self, expr: str, timeout_s: float = 20.0) -> Any:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while True:
            v = await self.js(expr)
            if v:
                return v
            if loop.time() > end:
                raise AssertionError(f"timed out waiting for {expr}")
            await asyncio.sleep(0.2)


def test_dashboard_in_a_real_browser(
    small_recording: Path, tmp_path: Path, browser_ws: str
) -> None:
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
        server = DashboardServer.for_run(run)
        await server.start()
        try:
            async with connect(browser_ws, max_size=None) as ws:
                target = await _call(ws, 1, "Target.createTarget", url="about:blank")
                att = await _call(ws, 2, "Target.attachToTarget", targetId=target["targetId"],
                                  flatten=True)  # fmt: skip
                page = Cdp(ws, att["sessionId"])
                await page.call("Page.enable")
                await page.call("Page.navigate", url=f"http://127.0.0.1:{server.port}/")
                n = await page.until("document.querySelectorAll('.card').length === 4 && 4")
                assert n == 4
                assets = await page.js(
                    "[...document.querySelectorAll('.card')].map(c => c.dataset.asset).join(',')"
                )
                assert assets == "btc,eth,sol,xrp"
                assert await page.until("document.querySelector('#status').textContent === 'live'")
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
                assert await page.js("document.querySelector('#pnl').width") > 0
                shot = await page.call("Page.captureScreenshot", format="png")
                ARTIFACTS.mkdir(exist_ok=True)
                (ARTIFACTS / "dashboard.png").write_bytes(base64.b64decode(shot["data"]))
        finally:
            await server.stop()

    asyncio.run(asyncio.wait_for(main(), 90))
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


async def _call(ws: Any, mid: int, method: str, **params: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"id": mid, "method": method, "params": params}))
    while True:
        msg = json.loads(await ws.recv())
        if msg.get("id") == mid:
            if "error" in msg:
                raise RuntimeError(f"{method}: {msg['error']}")
            return msg["result"]
