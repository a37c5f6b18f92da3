"""The recorder records every RTDS Chainlink topic, so each market's own settlement feed is in
the recording: the loopback RTDS server serves the instantaneous price and the 60 s TWAP side
by side, and the real reference adapter records both."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import polars as pl
import pytest

from polyrl.clock import LiveClock
from polyrl.events import CH_RTDS_WS, NS_PER_MS, NS_PER_S, Frame, iso_to_ns
from polyrl.recording.reader import RecordingReader
from polyrl.recording.recorder import Recorder
from polyrl.recording.writer import RecordingConfig, RecordingWriter
from polyrl.sections import Config
from polyrl.sim.serve import RecordingContent, VenueServers
from polyrl.sources.config import SourcesConfig
from polyrl.sources.parse import Parser
from polyrl.sources.polymarket.ws import ReferenceAdapter

pytestmark = pytest.mark.integration

T0 = iso_to_ns("2026-09-01T00:00:00Z")
REC = RecordingConfig(fsync=False, checkpoint_s=0.5, wal_flush_s=0.05, wal_fsync_s=0.2)
TOPICS = {"crypto_prices_chainlink": None, "crypto_prices_twap_sixty": 60}


def _served(root: Path, seconds: int) -> None:
    """A recording holding one btc tick per second of each topic, to be served again."""
    parser = Parser()
    with RecordingWriter(root, config=REC, start_seq=0) as w:
        for s in range(seconds):
            for k, (topic, window) in enumerate(TOPICS.items()):
                t_ms = (T0 + s * NS_PER_S) // NS_PER_MS
                payload = {"symbol": "btc/usd", "timestamp": t_ms, "value": 65000.0 + s + k}
                if window is not None:
                    payload["window_s"] = window
                text = json.dumps(
                    {"topic": topic, "type": "update", "timestamp": t_ms + 1000, "payload": payload}
                )
                recv = T0 + (s + 1) * NS_PER_S + k * 1000
                for ev in parser.parse(Frame(channel=CH_RTDS_WS, recv_ns=recv, text=text)):
                    w.append(ev)


def test_recorder_records_the_instantaneous_and_the_twap_topic(tmp_path: Path) -> None:
    served = tmp_path / "served"
    _served(served, 120)
    out = tmp_path / "out"

    async def main() -> None:
        clock = LiveClock(speed=20, start_ns=T0)
        async with VenueServers(RecordingContent(served), clock=clock) as v:
            # The option names the simulator's feed; the recorder takes every topic anyway.
            src = v.sources_config(SourcesConfig(reference_feed="chainlink"))
            rec = Recorder(out, config=REC, clock=clock)
            stop = asyncio.Event()
            task = asyncio.create_task(
                rec.run([ReferenceAdapter(src)], stop=stop, install_signal_handlers=False)
            )
            await asyncio.sleep(3.0)  # 60 venue seconds
            stop.set()
            await task

    asyncio.run(asyncio.wait_for(main(), 60))
    df = RecordingReader(out, streams=["reference.price"]).read_stream("reference.price")
    live = df.filter(~pl.col("backfill"))
    by_topic = dict(live.group_by("topic").len().iter_rows())
    assert set(by_topic) == set(TOPICS), by_topic
    assert min(by_topic.values()) >= 20, by_topic
    twap = live.filter(pl.col("topic") == "crypto_prices_twap_sixty")
    assert (twap["window_s"] == 60).all()
    inst = live.filter(pl.col("topic") == "crypto_prices_chainlink")
    assert inst["window_s"].is_null().all()
    # The same second carries each topic's own value.
    both = inst.join(twap, on="exch_ns", suffix="_twap")
    assert both.height >= 20 and (both["value_twap"] - both["value"] == 1.0).all()


def test_polybolt_as_the_feed_needs_the_credentials() -> None:
    from polyrl.errors import ConfigError
    from polyrl.sources.adapters import default_adapters
    from polyrl.sources.polymarket.polybolt import ClobCredentials, PolyBoltAdapter

    cfg = dataclasses.replace(Config(), sources=SourcesConfig(reference_feed="polybolt"))
    # RTDS is recorded whatever the feed says; PolyBolt itself needs the credentials.
    assert ReferenceAdapter(cfg.sources).topics
    with pytest.raises(ConfigError, match="POLYRL_CLOB_API_KEY"):
        default_adapters(cfg)
    adapters = default_adapters(cfg, polybolt=ClobCredentials("k", "s", "p"))
    assert sum(isinstance(a, PolyBoltAdapter) for a in adapters) == 1
    assert sum(isinstance(a, ReferenceAdapter) for a in adapters) == 1
