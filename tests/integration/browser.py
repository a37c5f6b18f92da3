"""The headless-browser harness of the dashboard tests: Debian's Chromium started headless
(the ``browser_ws`` fixture yields its DevTools WebSocket URL) and a minimal client of the
DevTools protocol over one page (:func:`new_page`, :class:`Cdp`); screenshots go to
tests/artifacts/. Shared by the dashboard tests of a run, a live session and training."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_devtools() -> Iterator[str]:
    """Headless Chromium for one test: yields its DevTools WebSocket URL (a test module's
    ``browser_ws`` fixture is ``yield from chromium_devtools()``); skips without Chromium
    (fails in CI, which installs it)."""
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


async def new_page(ws: Any) -> Cdp:
    target = await _call(ws, 1, "Target.createTarget", url="about:blank")
    att = await _call(ws, 2, "Target.attachToTarget", targetId=target["targetId"], flatten=True)
    page = Cdp(ws, att["sessionId"])
    await page.call("Page.enable")
    return page


async def screenshot(page: Cdp, name: str) -> Path:
    shot = await page.call("Page.captureScreenshot", format="png")
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


async def _call(ws: Any, mid: int, method: str, **params: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"id": mid, "method": method, "params": params}))
    while True:
        msg = json.loads(await ws.recv())
        if msg.get("id") == mid:
            if "error" in msg:
                raise RuntimeError(f"{method}: {msg['error']}")
            return msg["result"]
