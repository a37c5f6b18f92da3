"""`polyrl live` on the loopback venues when the CLOB stalls without a disconnect: the books
stop updating, the watchdog (30 s) never fires, and the markets stop being tradable once
their books are older than ``book_stale_s``; replaying the recording decides the same."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from polyrl.clock import LiveClock
from polyrl.events import CH_POLYMARKET_WS, NS_PER_S, iso_to_ns
from polyrl.features.markets import TOUCH_STREAMS
from polyrl.features.sets import feature_set
from polyrl.live import LiveSession
from polyrl.parity import replay_live_run
from polyrl.policies.baselines import make_baseline
from polyrl.recording.reader import RecordingReader
from polyrl.recording.writer import RecordingConfig
from polyrl.sections import Config
from polyrl.sim.serve import ServersThread, SimContent, VenueServers
from polyrl.sources.adapters import default_adapters

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = iso_to_ns("2024-06-01T00:01:00Z")  # warm-up done (~00:06) well before the 00:15 roll
STALL_S = 20.0
"""Shorter than the 30 s watchdog: the connection stays up, silent (the issue's case)."""
CLOB_STREAMS = ("polymarket.book", "polymarket.price_change", *TOUCH_STREAMS)


async def _live(tmp: Path) -> int:
    """A live session at 20x; the CLOB stalls at 00:07:30 for STALL_S. Returns the stall's
    venue time."""
    clock = LiveClock(speed=20.0, start_ns=T0)
    content = SimContent(Config(assets=("btc", "eth")), start_ns=T0,
                         end_ns=T0 + 20 * 60 * NS_PER_S, seed=9)  # fmt: skip
    venues = ServersThread(VenueServers(content, clock=clock))
    # The venues on their own thread: a backlog on the session's loop cannot shorten the
    # silence the client sees (it would read frames sent before the stall late).
    with venues as v:
        base = Config(assets=("btc", "eth"),
                      recording=RecordingConfig(fsync=False, checkpoint_s=1.0))  # fmt: skip
        cfg = dataclasses.replace(base, sources=v.sources_config(base.sources))
        assert cfg.sources.watchdog_s > STALL_S + 5
        fset = feature_set(cfg.features.feature_set)
        session = LiveSession(
            config=cfg, policy=make_baseline("random", fset, cfg.baselines, seed=3),
            run_dir=tmp / "run", recording_root=tmp / "rec", clock=clock,
            adapters=default_adapters(cfg),
            run_config={"kind": "live", "strategy": "random", "seed": 3},
        )  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(session.run(stop=stop, install_signal_handlers=False))
        await clock.sleep_until(T0 + 390 * NS_PER_S)
        t_stall = clock.now_ns()
        await asyncio.to_thread(venues.call, v.clob.stall, STALL_S)
        await clock.sleep_until(t_stall + int((STALL_S + 20) * NS_PER_S))
        stop.set()
        await task
    return t_stall


def test_live_stalled_clob_books_go_stale_then_parity(tmp_path: Path) -> None:
    t_stall = asyncio.run(asyncio.wait_for(_live(tmp_path), 180))
    run = tmp_path / "run"
    rec = RecordingReader(tmp_path / "rec")
    status = rec.read_stream("recorder.status")
    heard = (
        pl.concat([rec.read_stream(s).select("recv_ns") for s in CLOB_STREAMS if s in rec.streams])
        .sort("recv_ns")["recv_ns"]
        .to_numpy()
    )
    # The silence the session saw: the longest run without a CLOB row from the stall on (on a
    # loaded machine, frames sent just before it can be read late, and the venue thread can
    # resume late: the silence is measured, not assumed).
    near = heard[heard > t_stall - 5 * NS_PER_S]
    k = int(np.argmax(np.diff(near)))
    last, back = int(near[k]), int(near[k + 1])
    limit = 5 * NS_PER_S
    assert back - last >= limit + 5 * NS_PER_S, (t_stall, last, back)
    assert t_stall - NS_PER_S < last < t_stall + 10 * NS_PER_S
    # Judge only ticks before any disconnect row: the connection was up, the books synced.
    clob = status.filter(
        (pl.col("key") == CH_POLYMARKET_WS) & (pl.col("recv_ns") > last)
        & pl.col("kind").is_in(["disconnect", "connect_failed"])
    )  # fmt: skip
    up_until = min([back, *clob["recv_ns"].to_list()])
    dec = pl.read_parquet(run / "decisions.parquet")
    # Tradable before the stall (a loaded machine at 20x can pause the whole session for
    # longer than the limit now and then: those ticks are rightly stale too, hence any()).
    before = dec.filter(pl.col("t_ns").is_between(last - 30 * NS_PER_S, last))
    assert before["tradable"].any()
    stale = dec.filter(pl.col("t_ns").is_between(last + limit + 1, up_until - 1))
    assert stale.height >= 4 and not stale["tradable"].any()
    assert stale.filter(pl.col("action") != 0).height == 0
    after = dec.filter(pl.col("t_ns").is_between(back + 2 * NS_PER_S, back + 30 * NS_PER_S))
    if after["t_ns"].max() is not None and after["t_ns"].max() > back + 10 * NS_PER_S:
        assert after["tradable"].any()  # heard from again: tradable again
    # The replay of the session's recording, through the same FeatureEngine, decides alike.
    _, report = replay_live_run(run)
    assert report.divergence is None, str(report.divergence)
    assert report.rows["decisions"] == dec.height
