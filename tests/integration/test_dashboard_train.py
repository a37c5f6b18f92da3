"""The training dashboard in a real headless Chromium: `polyrl dashboard RUN` served on a real
`polyrl train` while it runs (its learning curves gain points as updates land, validation
values appear as they are scored, then it says finished), and on a sweep folder made of real
training runs (one line per trial, a trial appearing while the page is open).
Screenshots go to tests/artifacts/."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from websockets.asyncio.client import connect

from polyrl.dashboard.server import DashboardServer
from polyrl.runlog import atomic_write_bytes, atomic_write_parquet

from .browser import ARTIFACTS, Cdp, chromium_devtools, new_page, screenshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UPDATES = 30


@pytest.fixture
def browser_ws() -> Iterator[str]:
    yield from chromium_devtools()


def _polyrl(cwd: Path, *args: str, **kw: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, "-m", "polyrl", *args], cwd=cwd, env=env,
                            text=True, **kw)  # fmt: skip


CHARTS = "window.trainCharts || null"
CAPTION = "document.querySelector('[data-key=\"val/pnl\"] h3 b').textContent"


def test_a_training_run_is_followed_live_then_a_sweep_draws_one_line_per_trial(
    three_day_recording: Path, tmp_path: Path, browser_ws: str
) -> None:
    runs = tmp_path / "runs"
    run = runs / "t"
    run.mkdir(parents=True)  # empty: the dashboard serves it before training starts
    dash = _polyrl(tmp_path, "dashboard", str(run), "--port", "0", stderr=subprocess.PIPE)
    procs = [dash]
    log = open(tmp_path / "train.log", "w")  # noqa: SIM115 - closed in the finally below

    def start_training() -> None:
        procs.append(_polyrl(
            tmp_path, "train", "--replay", "2024-06-01", "--val", "2024-06-03",
            "--root", str(three_day_recording), "--updates", str(UPDATES), "--envs", "2",
            "--set", "ppo.buffer_steps=128", "--set", "ppo.minibatch_size=256",
            "--set", "ppo.n_epochs=2", "--set", "train.eval_every=1",
            "--runs", str(runs), "--name", "t", stdout=log, stderr=subprocess.STDOUT,
        ))  # fmt: skip

    try:
        assert dash.stderr is not None
        line = dash.stderr.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, line
        follow = _follow_training(browser_ws, int(m.group(1)), run, start_training)
        asyncio.run(asyncio.wait_for(follow, 240))
        assert procs[1].wait(timeout=60) == 0, (tmp_path / "train.log").read_text()[-2000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=20)
        log.close()
    asyncio.run(asyncio.wait_for(_sweep(browser_ws, run, tmp_path / "sweep"), 60))


async def _follow_training(
    browser_ws: str, port: int, run: Path, start_training: Callable[[], None]
) -> None:
    async with connect(browser_ws, max_size=None) as ws:
        page = await new_page(ws)
        await page.call("Page.navigate", url=f"http://127.0.0.1:{port}/")
        # The empty folder is no training run yet; the page is connected before it becomes one.
        await page.until("document.querySelector('#status').textContent === 'connected'"
                         " && document.body.dataset.view === 'run'")  # fmt: skip
        start_training()
        # The folder becomes a training run: caught running, some updates drawn, not all.
        first = await page.until(
            "document.querySelector('#state').textContent === 'running' && window.trainCharts"
            " && trainCharts['losses/policy'].points[0] > 0 && trainCharts",
            timeout_s=120,
        )  # fmt: skip
        n0 = first["losses/policy"]["points"][0]
        assert n0 < UPDATES
        assert await page.js("document.body.dataset.view") == "train"
        assert await page.js("document.querySelector('#cards').offsetParent") is None
        # The status line: update k of N and the steps per second (timing.parquet, written
        # just after metrics.parquet).
        await page.until(f"/^\\d+ of {UPDATES} · [\\d,]+ steps\\/s/"
                         ".test(document.querySelector('#update').textContent)")  # fmt: skip
        # New updates arrive as points on every curve, and validation as its own points.
        grown = await page.until(
            f"({CHARTS}) && trainCharts['losses/policy'].points[0] > {n0}"
            " && trainCharts['val/pnl'].points[0] > 0 && trainCharts"
        )  # fmt: skip
        for key in ("losses/value", "losses/entropy", "losses/approx_kl", "losses/clip_frac",
                    "losses/explained_variance", "pnl/realized"):  # fmt: skip
            assert grown[key]["points"][0] > n0, key
        await screenshot(page, "dashboard-train-running.png")
        done = await page.until(
            f"document.querySelector('#state').textContent === 'finished' && {CHARTS}",
            timeout_s=120,
        )
        caption = await page.js(CAPTION)
        status = await page.js("document.querySelector('#update').textContent")
        await screenshot(page, "dashboard-train.png")
    m = pl.read_parquet(run / "metrics.parquet")
    assert m["update"].to_list() == list(range(1, UPDATES + 1))
    assert done["losses/policy"]["points"] == [UPDATES]
    assert done["losses/policy"]["last"] == [[UPDATES, pytest.approx(m["losses/policy"][-1])]]
    # Every update was validated (train.eval_every=1): one point each, the last one captioned.
    val = m.filter(pl.col("val/pnl").is_not_null())
    assert val.height == UPDATES and done["val/pnl"]["points"] == [UPDATES]
    assert done["val/pnl"]["last"] == [[UPDATES, pytest.approx(val["val/pnl"][-1])]]
    best = json.loads((run / "summary.json").read_text())["best_update"]
    assert caption == f"{val['val/pnl'][-1]:+.2f} at update {UPDATES} · best: update {best}"
    assert status.startswith(f"{UPDATES} of {UPDATES}")


def _trial(src: Path, dst: Path, *, shift: float, ent: float) -> None:
    """A copy of a real training run, its PnL shifted and its ent_coef changed."""
    shutil.copytree(src, dst)
    m = pl.read_parquet(dst / "metrics.parquet")
    m = m.with_columns(pl.col("val/pnl") + shift, pl.col("pnl/realized") + shift)
    atomic_write_parquet(m, dst / "metrics.parquet")
    cfg = json.loads((dst / "config.json").read_text())
    cfg["ppo"]["ent_coef"] = ent
    atomic_write_bytes(dst / "config.json", json.dumps(cfg).encode())


SWEEP = """(() => ({charts: window.sweepCharts || null,
  rows: [...document.querySelectorAll('#trials tbody tr')].map((r) =>
    [...r.cells].map((c) => c.textContent)),
  legend: document.querySelector('#legend').textContent}))()"""


async def _sweep(browser_ws: str, run: Path, sweep: Path) -> None:
    sweep.mkdir()
    (sweep / "sweep.toml").write_text('[space]\n"ppo.ent_coef" = [0.0, 0.05, 0.2]\n')
    _trial(run, sweep / "trials" / "a", shift=0.0, ent=0.0)
    _trial(run, sweep / "trials" / "b", shift=50.0, ent=0.05)
    server = DashboardServer.for_run(sweep)
    await server.start()
    try:
        async with connect(browser_ws, max_size=None) as ws:
            page: Cdp = await new_page(ws)
            await page.call("Page.navigate", url=f"http://127.0.0.1:{server.port}/")
            shown = await page.until(f"window.sweepCharts && {SWEEP}")
            assert shown["charts"]["val"]["names"] == ["a", "b"]
            assert shown["charts"]["val"]["points"] == [UPDATES, UPDATES]
            assert shown["charts"]["pnl"]["points"] == [UPDATES, UPDATES]
            m = pl.read_parquet(sweep / "trials" / "b" / "metrics.parquet")
            assert shown["charts"]["val"]["y1"] == pytest.approx(m["val/pnl"].max())
            assert [r[:2] for r in shown["rows"]] == [["a", "finished"], ["b", "finished"]]
            assert shown["rows"][1][3] == f"{m['val/pnl'][-1]:+.2f}"
            assert [r[5] for r in shown["rows"]] == ["ppo.ent_coef=0", "ppo.ent_coef=0.05"]
            # A third trial starts while the page is open: a third line.
            # (made aside and moved in whole, so no half-copied trial is caught finished).
            _trial(run, sweep / "c", shift=-50.0, ent=0.2)
            (sweep / "c" / "summary.json").unlink()
            (sweep / "c").rename(sweep / "trials" / "c")
            shown = await page.until(
                f"window.sweepCharts.val.points.length === 3 && {SWEEP}"
            )  # fmt: skip
            assert shown["charts"]["val"]["names"] == ["a", "b", "c"]
            assert shown["charts"]["pnl"]["points"] == [UPDATES] * 3
            assert shown["rows"][2][:2] == ["c", "running"]
            assert shown["legend"] == "abc"
            await screenshot(page, "dashboard-sweep.png")
    finally:
        await server.stop()
    assert (ARTIFACTS / "dashboard-sweep.png").stat().st_size > 10_000
