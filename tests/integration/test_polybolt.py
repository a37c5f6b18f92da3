"""`polyrl record` and `polyrl live` record PolyBolt's 60 s TWAP beside RTDS when the CLOB API
credentials are in the environment, never store them, say when PolyBolt is not recorded, and
stop knocking when the credentials are refused.

Real CLI subprocesses against the loopback venue servers (polyrl.sim.serve), whose PolyBolt
socket re-publishes the simulator's 60 s TWAP and checks the credentials.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from polyrl.clock import LiveClock
from polyrl.events import CH_POLYBOLT_WS, NS_PER_S, iso_to_ns
from polyrl.recording.reader import RecordingReader
from polyrl.sections import Config
from polyrl.sim.serve import ServeConfig, ServersThread, SimContent, VenueServers
from polyrl.sources.config import SourcesConfig
from polyrl.sources.polymarket.polybolt import ENV_VARS, MAX_AUTH_FAILURES

from .conftest import REPO

pytestmark = pytest.mark.integration

T0 = iso_to_ns("2026-09-01T00:13:00Z")
SPEED = 10.0
KEY, SECRET, PASSPHRASE = "key-7c1d9e", "secret-b84f2a61e0d3", "pass-5e2c70"
GOOD = dict(zip(ENV_VARS, (KEY, SECRET, PASSPHRASE), strict=True))


@dataclass
class Venues:
    thread: ServersThread
    servers: VenueServers
    config: Path


@pytest.fixture(scope="module")
def venues(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venues]:
    """Loopback venues serving a simulated btc market in 60 s TWAP mode, and a config file
    pointing polyrl at them (no credentials in it: they only ever come from the environment)."""
    import dataclasses

    from polyrl.cli.serve import serve_toml

    cfg = Config(assets=("btc",), sources=SourcesConfig(reference_feed="twap60"))
    clock = LiveClock(speed=SPEED, start_ns=T0)
    content = SimContent(cfg, start_ns=T0, end_ns=T0 + 40 * 60 * NS_PER_S, seed=3)
    serve = ServeConfig(
        log_frames=False,
        polybolt_api_key=KEY,
        polybolt_secret=SECRET,
        polybolt_passphrase=PASSPHRASE,
    )
    th = ServersThread(VenueServers(content, clock=clock, config=serve))
    path = tmp_path_factory.mktemp("polybolt") / "loop.toml"
    with th as v:

        def write() -> None:
            sources = dataclasses.replace(
                v.sources_config(cfg.sources), reconnect_min_s=0.5, reconnect_max_s=2.0
            )
            text = serve_toml(
                cfg, sources, speed=SPEED, start_ns=T0, anchor_ns=clock.anchor_real_ns
            )
            # Uncompressed Parquet, so that a secret in any column would show in the bytes.
            rec = '\n[recording]\nfsync = false\ncheckpoint_s = 0.5\ncompression = "none"\n'
            path.write_text(text + rec)

        th.call(write)
        yield Venues(th, v, path)


def _env(creds: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.setdefault("PYTHONHASHSEED", "0")
    return {**env, **creds}


def _run(venues: Venues, cmd: list[str], creds: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "polyrl", *cmd, "--config", str(venues.config)],
        cwd=REPO, env=_env(creds), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _polybolt_conns(venues: Venues) -> int:
    return venues.thread.call(lambda: len(venues.servers.polybolt.logs))


def _rows(root: Path, stream: str) -> pl.DataFrame:
    return RecordingReader(root, streams=[stream]).read_stream(stream)


def _no_secret_under(path: Path) -> None:
    """Every byte of every file under ``path``, and every decoded Parquet value."""
    import pyarrow.parquet as pq

    files = [p for p in path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files), path
    for p in files:
        texts = [p.read_bytes()]
        if p.suffix == ".parquet":
            texts.append(str(pq.read_table(p).to_pylist()).encode())
        for value in (SECRET, KEY, PASSPHRASE):
            assert not any(value.encode() in t for t in texts), (p, value)


def test_record_with_credentials_keeps_rtds_and_adds_polybolt_storing_no_secret(
    venues: Venues, tmp_path: Path
) -> None:
    root = tmp_path / "rec"
    before = _polybolt_conns(venues)
    res = _run(venues, ["record", "--quiet", "--out", str(root), "--duration", "40s"], GOOD)
    assert res.returncode == 0, res.stderr
    assert "PolyBolt not recorded" not in res.stderr
    ref = _rows(root, "reference.price")
    topics = dict(ref.filter(~pl.col("backfill")).group_by("topic").len().iter_rows())
    # Both sockets, told apart by topic: RTDS and PolyBolt each deliver the TWAP every second.
    assert topics.get("crypto_prices_twap_sixty", 0) >= 15, topics
    assert topics.get("price.crypto.twap", 0) >= 15, topics
    pb = ref.filter(pl.col("topic") == "price.crypto.twap")
    assert (pb["key"] == "btcusd").all() and (pb["window_s"] == 60).all()
    assert pb["full_accuracy"].str.contains(r"^\d+\.\d{18}$").all()
    # The same Chainlink ticks on both sockets carry the same values.
    rtds = ref.filter(pl.col("topic") == "crypto_prices_twap_sixty")
    both = pb.filter(~pl.col("backfill")).join(
        rtds.filter(~pl.col("backfill")), on="exch_ns", suffix="_rtds"
    )
    assert both.height >= 10 and (both["value"] == both["value_rtds"]).all()
    st = _rows(root, "recorder.status")
    pb_status = st.filter(pl.col("key") == CH_POLYBOLT_WS)
    assert "subscribe" in pb_status["kind"].to_list()
    assert "auth_failed" not in pb_status["kind"].to_list(), pb_status.select(
        "kind", "message"
    ).rows()
    # The server pinged (every 25 s, at 10x) and the client answered: no pong-timeout cut.
    logs = venues.thread.call(lambda: list(venues.servers.polybolt.logs[before:]))
    assert logs and logs[0].pings >= 1
    assert all(lg.close_reason != "ping_timeout" for lg in logs)
    _no_secret_under(root)
    for value in (SECRET, KEY, PASSPHRASE):
        assert value not in res.stderr and value not in res.stdout


def test_live_with_credentials_writes_no_secret_into_its_run_or_recording(
    venues: Venues, tmp_path: Path
) -> None:
    root, runs = tmp_path / "rec", tmp_path / "runs"
    cmd = ["live", "--strategy", "random", "--out", str(root), "--runs", str(runs)]
    res = _run(venues, [*cmd, "--name", "pb", "--duration", "30s"], GOOD)
    assert res.returncode == 0, res.stderr
    topics = set(_rows(root, "reference.price")["topic"].unique().to_list())
    assert {"price.crypto.twap", "crypto_prices_twap_sixty"} <= topics
    _no_secret_under(root)
    _no_secret_under(runs / "pb")
    for value in (SECRET, KEY, PASSPHRASE):
        assert value not in res.stderr and value not in res.stdout


def test_without_credentials_rtds_only_and_one_line_says_why(
    venues: Venues, tmp_path: Path
) -> None:
    root = tmp_path / "rec"
    before = _polybolt_conns(venues)
    res = _run(venues, ["record", "--quiet", "--out", str(root), "--duration", "20s"], {})
    assert res.returncode == 0, res.stderr
    notes = [x for x in res.stderr.splitlines() if "PolyBolt not recorded" in x]
    assert len(notes) == 1 and "no CLOB API credentials" in notes[0], res.stderr
    assert all(name in notes[0] for name in ENV_VARS)
    assert "error" not in notes[0].lower()
    topics = set(_rows(root, "reference.price")["topic"].unique().to_list())
    assert "crypto_prices_twap_sixty" in topics and "price.crypto.twap" not in topics
    assert _polybolt_conns(venues) == before  # never even connected


def test_wrong_credentials_are_named_retried_a_few_times_then_left(
    venues: Venues, tmp_path: Path
) -> None:
    root = tmp_path / "rec"
    before = _polybolt_conns(venues)
    wrong = {**GOOD, "POLYRL_CLOB_API_SECRET": "not-the-secret"}
    t = time.monotonic()
    res = _run(venues, ["record", "--quiet", "--out", str(root), "--duration", "60s"], wrong)
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - t < 30
    st = _rows(root, "recorder.status").filter(pl.col("key") == CH_POLYBOLT_WS)
    failed = st.filter(pl.col("kind") == "auth_failed")["message"].to_list()
    assert len(failed) == MAX_AUTH_FAILURES, st
    assert all("close 4001 (authentication failed on a presented credential)" in m for m in failed)
    assert st.filter(pl.col("kind") == "gave_up").height == 1
    # Said on stderr too, and no hot loop: exactly that many connections, then none.
    assert re.search(r"^ALERT: PolyBolt close 4001 \(authentication failed", res.stderr, re.M)
    assert re.search(r"^ALERT: PolyBolt: gave up after 3 refusals", res.stderr, re.M)
    assert _polybolt_conns(venues) - before == MAX_AUTH_FAILURES
    # The rest kept recording after PolyBolt was given up.
    gave_up_ns = st.filter(pl.col("kind") == "gave_up")["recv_ns"][0]
    ref = _rows(root, "reference.price")
    later = ref.filter((pl.col("recv_ns") > gave_up_ns) & ~pl.col("backfill"))
    assert later.height >= 20 and (later["topic"] == "crypto_prices_twap_sixty").all()
    assert "not-the-secret" not in res.stderr


@pytest.mark.parametrize("missing", ENV_VARS)
def test_a_half_set_triple_is_a_one_line_error_naming_the_variable(
    venues: Venues, missing: str
) -> None:
    creds = {k: v for k, v in GOOD.items() if k != missing}
    res = _run(venues, ["record", "--quiet", "--duration", "5s"], creds)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("polyrl: error: ") and f"{missing} not set" in lines[0]
    assert not any(v in res.stderr for v in GOOD.values())


def test_polybolt_survives_drop_drain_and_stall_re_authenticating_each_time(
    tmp_path: Path,
) -> None:
    """In process: the real adapter and Recorder against the loopback with faults. Each new
    connection authenticates and subscribes again; a drop is a gap; a 4003 is named and
    retried without counting as a refusal; a stalled socket is reopened by the watchdog."""
    import asyncio
    import dataclasses

    from polyrl.recording.recorder import Recorder
    from polyrl.recording.writer import RecordingConfig
    from polyrl.sources.polymarket.polybolt import ClobCredentials, PolyBoltAdapter

    cfg = Config(assets=("btc", "eth"), sources=SourcesConfig(reference_feed="twap60"))
    clock = LiveClock(speed=20.0, start_ns=T0)
    content = SimContent(cfg, start_ns=T0, end_ns=T0 + 20 * 60 * NS_PER_S, seed=4)
    serve = ServeConfig(log_frames=False)
    creds = ClobCredentials(
        serve.polybolt_api_key, serve.polybolt_secret, serve.polybolt_passphrase
    )
    rec_cfg = RecordingConfig(fsync=False, checkpoint_s=0.5, wal_flush_s=0.05, wal_fsync_s=0.2)
    root = tmp_path / "rec"

    async def until(cond, what: str) -> None:  # type: ignore[no-untyped-def]
        for _ in range(400):
            if cond():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: {dbg()}")

    state: list[VenueServers] = []

    def dbg() -> object:
        v = state[0]
        return [(lg.conn_id, lg.close_reason, lg.received[:3]) for lg in v.polybolt.logs]

    async def main() -> PolyBoltAdapter:
        async with VenueServers(content, clock=clock, config=serve) as v:
            state.append(v)
            src = dataclasses.replace(
                v.sources_config(cfg.sources), watchdog_s=10.0, reconnect_max_s=2.0
            )
            adapter = PolyBoltAdapter(cfg.assets, src, creds)
            rec = Recorder(root, config=rec_cfg, clock=clock)
            stop = asyncio.Event()
            task = asyncio.create_task(rec.run([adapter], stop=stop, install_signal_handlers=False))
            # (Counted from the connections so far: a loaded machine may add a reconnect.)
            n = lambda: len(v.polybolt.logs)  # noqa: E731
            await until(lambda: n() >= 1 and v.polybolt.conns, "first connection")
            for fault, what in ((v.polybolt.drop, "the drop"), (v.polybolt.drain, "4003")):
                await asyncio.sleep(0.5)
                before = n()
                assert fault() == 1
                await until(lambda b=before: n() > b and v.polybolt.conns, f"reconnect: {what}")
            await asyncio.sleep(0.5)
            before = n()
            v.polybolt.stall(40.0)  # > watchdog_s: the client gives up on the silent socket
            await until(lambda: n() > before, "watchdog reconnect")
            await asyncio.sleep(2.5)  # 50 venue seconds: the stall is over, data flows
            stop.set()
            await task
            return adapter

    adapter = asyncio.run(asyncio.wait_for(main(), 60))
    assert adapter.failures == 0 and not adapter.gave_up
    st = _rows(root, "recorder.status").filter(pl.col("key") == CH_POLYBOLT_WS)
    kinds = st["kind"].to_list()
    assert kinds.count("subscribe") >= 4  # once per connection
    assert kinds.count("gap") >= 3
    assert "auth_failed" not in kinds
    drained = st.filter(pl.col("kind") == "close_code")["message"].to_list()
    assert "PolyBolt close 4003 (server draining)" in drained
    assert st.filter(pl.col("kind") == "disconnect")["message"].str.contains("watchdog").any()
    ref = _rows(root, "reference.price").filter(~pl.col("backfill"))
    assert set(ref["key"].unique().to_list()) == {"btcusd", "ethusd"}
    # Data on the last connection too (after the stall).
    last_connect = st.filter(pl.col("kind") == "connect")["recv_ns"].max()
    assert ref.filter(pl.col("recv_ns") > last_connect).height >= 5
