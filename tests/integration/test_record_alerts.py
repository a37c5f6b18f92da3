"""`polyrl record` says when it is failing, and every option says which clock it means.

Real subprocesses of the CLI against closed loopback ports and against the loopback venue
servers (polyrl.sim.serve) with faults; `polyrl simulate --serve` past the end of its span.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from polyrl.clock import LiveClock
from polyrl.events import (
    CH_BINANCE_FUTURES_OI,
    CH_BINANCE_FUTURES_WS,
    CH_BINANCE_SPOT_KLINES,
    CH_BINANCE_SPOT_WS,
    CH_POLYMARKET_GAMMA,
    CH_POLYMARKET_WS,
    CH_RTDS_WS,
    NS_PER_S,
    iso_to_ns,
)
from polyrl.recording.reader import RecordingReader
from polyrl.sections import Config
from polyrl.sim.serve import ServeConfig, ServersThread, SimContent, VenueServers

from .conftest import REPO, run_cli
from .test_record_loopback import _recorder

pytestmark = pytest.mark.integration

T0 = iso_to_ns("2024-06-01T00:13:00Z")
WS = (CH_BINANCE_SPOT_WS, CH_BINANCE_FUTURES_WS, CH_POLYMARKET_WS, CH_RTDS_WS)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _channels(root: Path) -> dict[str, dict[str, int]]:
    res = run_cli("inspect", str(root), "--json")
    assert res.returncode == 0, res.stderr
    return {c["channel"]: c for c in json.loads(res.stdout)["channels"]}


def test_record_with_every_venue_unreachable_exits_non_zero_naming_them(tmp_path: Path) -> None:
    port = _closed_port()
    base = f"127.0.0.1:{port}"
    cfg = tmp_path / "dead.toml"
    cfg.write_text(
        f"""assets = ["btc"]
[sources]
binance_spot_ws = "ws://{base}"
binance_spot_rest = "http://{base}/binance-spot"
binance_futures_ws = "ws://{base}"
binance_futures_rest = "http://{base}/binance-futures"
polymarket_clob_ws = "ws://{base}/ws/market"
polymarket_clob_rest = "http://{base}/clob"
polymarket_gamma_rest = "http://{base}/gamma"
polymarket_rtds_ws = "ws://{base}"
reconnect_min_s = 0.2
reconnect_max_s = 1.0
[recording]
alert_after_s = 1.0
fsync = false
"""
    )
    root = tmp_path / "rec"
    proc = _recorder(cfg, root, "--duration", "3s")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    final = err.strip().splitlines()[-1]
    assert final.startswith("polyrl: error: no venue ever connected: ")
    for ch in (*WS, CH_BINANCE_SPOT_KLINES, CH_POLYMARKET_GAMMA):
        assert ch in final, ch
        # Said while it happened, too: one alert line per channel, with its failures.
        assert re.search(rf"^ALERT: {re.escape(ch)}: never connected for ", err, re.M), ch
    assert re.search(rf"{re.escape(CH_BINANCE_SPOT_WS)} \(\d+ connection failures?\)", final)
    assert re.search(rf"{re.escape(CH_POLYMARKET_GAMMA)} \(\d+ HTTP errors?\)", final)
    # The recording says it as well, and inspect counts it per channel.
    chans = _channels(root)
    assert chans[CH_BINANCE_SPOT_WS]["connect_failures"] >= 2
    assert chans[CH_BINANCE_SPOT_KLINES]["http_errors"] >= 1
    assert all(chans[ch]["never_connected"] == 1 and chans[ch]["alerts"] == 1 for ch in WS)


def _loopback_config(path: Path, v: VenueServers, cfg: Config, clock: LiveClock) -> None:
    import dataclasses

    from polyrl.cli.serve import serve_toml

    sources = dataclasses.replace(
        v.sources_config(cfg.sources),
        watchdog_s=6.0,
        reconnect_min_s=0.5,
        reconnect_max_s=2.0,
        open_interest_poll_s=3.0,
    )
    text = serve_toml(cfg, sources, speed=clock.speed, start_ns=T0, anchor_ns=clock.anchor_real_ns)
    text += "\n[recording]\nfsync = false\ncheckpoint_s = 0.5\nalert_after_s = 5.0\n"
    path.write_text(text)


def _wait(cond, what: str, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_venues_lost_longer_than_the_alert_time_are_said_and_recover(tmp_path: Path) -> None:
    cfg = Config(assets=("btc",))
    speed = 5.0
    clock = LiveClock(speed=speed, start_ns=T0)
    content = SimContent(cfg, start_ns=T0, end_ns=T0 + 20 * 60 * NS_PER_S, seed=7)
    th = ServersThread(VenueServers(content, clock=clock, config=ServeConfig()))
    root = tmp_path / "rec"
    with th as v:
        cfg_path = tmp_path / "loop.toml"
        th.call(_loopback_config, cfg_path, v, cfg, clock)
        proc = _recorder(cfg_path, root)
        try:
            _wait(lambda: th.call(lambda: bool(v.spot.conns and v.futures.conns)), "connects")
            time.sleep(1.0)
            # 20 venue seconds (4 s real) down, well past the 5 s alert time: spot refuses
            # new connections, futures accepts them and sends nothing, REST answers 503.
            th.call(lambda: (v.spot.refuse(20.0), v.spot.drop()))
            th.call(v.futures.stall, 20.0)
            th.call(lambda: v.http.fail(503, seconds=20.0, path_prefix="/binance-futures"))
            # Until both sockets deliver again, plus a few polls.
            _wait(lambda: th.call(lambda: not v.spot.faults.refusing(clock.now_ns())), "end")
            time.sleep(3.0)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    for ch in (CH_BINANCE_SPOT_WS, CH_BINANCE_FUTURES_WS, CH_BINANCE_FUTURES_OI):
        alert = re.search(rf"^ALERT: {re.escape(ch)}: no data for (\d+) s of venue time", err, re.M)
        assert alert and int(alert.group(1)) >= 5, (ch, err)
        back = re.search(
            rf"^RECOVERED: {re.escape(ch)}: recovered after (\d+) s of venue", err, re.M
        )
        assert back and int(back.group(1)) >= 5, (ch, err)
    spot_alert = next(x for x in err.splitlines() if x.startswith(f"ALERT: {CH_BINANCE_SPOT_WS}"))
    assert "HTTP 503" in spot_alert  # the venue's refusal, named
    # Status rows carry the counts.
    st = RecordingReader(root, streams=["recorder.status"]).read_stream("recorder.status")
    said = {(r["key"], r["kind"]): r["message"] for r in st.iter_rows(named=True)}
    m = re.search(
        r": (\d+) connection failures?, 0 HTTP errors", said[(CH_BINANCE_SPOT_WS, "alert")]
    )
    assert m and int(m.group(1)) >= 1
    m = re.search(
        r"0 connection failures, (\d+) HTTP errors?", said[(CH_BINANCE_FUTURES_OI, "recovered")]
    )
    assert m and int(m.group(1)) >= 1
    chans = _channels(root)
    assert chans[CH_BINANCE_SPOT_WS]["connect_failures"] >= 1
    assert chans[CH_BINANCE_FUTURES_OI]["http_errors"] >= 1
    assert chans[CH_BINANCE_FUTURES_WS]["alerts"] == 1
    assert all(c["never_connected"] == 0 for c in chans.values())


@pytest.mark.slow
@pytest.mark.parametrize("command", ["record", "live"])
def test_duration_counts_venue_time_and_says_so(tmp_path: Path, command: str) -> None:
    cfg = Config(assets=("btc",))
    speed = 10.0
    clock = LiveClock(speed=speed, start_ns=T0)
    content = SimContent(cfg, start_ns=T0, end_ns=T0 + 20 * 60 * NS_PER_S, seed=7)
    with ServersThread(VenueServers(content, clock=clock, config=ServeConfig())) as v:
        cfg_path = tmp_path / "loop.toml"
        _loopback_config(cfg_path, v, cfg, clock)
        t = time.monotonic()
        if command == "record":
            proc = _recorder(cfg_path, tmp_path / "rec", "--duration", "40s")
        else:
            proc = subprocess.Popen(
                [sys.executable, "-m", "polyrl", "live", "--strategy", "random", "--config",
                 str(cfg_path), "--out", str(tmp_path / "rec"), "--runs", str(tmp_path / "runs"),
                 "--duration", "40s"],
                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
        _, err = proc.communicate(timeout=120)
        wall = time.monotonic() - t
    assert proc.returncode == 0, err
    # 40 s of venue time at 10x: 4 s of recording, plus the interpreter's start and the
    # final flush; 40 s of wall time would be far longer.
    assert 4.0 <= wall < 25.0, wall
    assert "--duration 40s is venue time (about 4.0 s of wall time)" in err
    m = re.search(r"stopped after (\d+\.\d) s of venue time \((\d+\.\d) s wall at 10x\)", err)
    assert m, err
    assert 40.0 <= float(m.group(1)) < 42.0 and 4.0 <= float(m.group(2)) < 4.2


@pytest.mark.slow
def test_serve_says_when_its_span_ended_and_clients_learn_it(tmp_path: Path) -> None:
    cfg_path = tmp_path / "serve.toml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "polyrl", "simulate", "--serve", "--speed", "60", "--hours",
         "0.05", "--assets", "btc", "--config-out", str(cfg_path)],
        cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    ended = "simulated span ended at 2024-06-01T00:03:00Z"
    try:
        _wait(lambda: any(x.startswith(ended) for x in lines) or proc.poll() is not None,
              "the end of the span", 60)  # fmt: skip
        assert any(x.startswith(f"{ended}; serving stopped") for x in lines), lines
        src = tomllib.loads(cfg_path.read_text())["sources"]

        async def ws_client() -> InvalidStatus:
            try:
                async with connect(src["binance_spot_ws"] + "/stream?streams=btcusdt@aggTrade"):
                    pass
            except InvalidStatus as e:
                return e
            raise AssertionError("the handshake was accepted after the span ended")

        refused = asyncio.run(ws_client())
        assert refused.response.status_code == 410
        assert refused.response.body.decode().strip() == ended
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{src['polymarket_gamma_rest']}/markets?slug=x", timeout=10)
        assert e.value.code == 410 and json.loads(e.value.read()) == {"error": ended}
        # A recorder started now sees the venues gone and says why, instead of exit 0.
        with cfg_path.open("a") as f:
            f.write("\n[recording]\nfsync = false\nalert_after_s = 10.0\n")
        rec = _recorder(cfg_path, tmp_path / "rec", "--duration", "60s")
        _, err = rec.communicate(timeout=120)
        assert rec.returncode == 1, err
        assert f"ALERT: {CH_BINANCE_SPOT_WS}: never connected" in err and ended in err
        final = err.strip().splitlines()[-1]
        assert final.startswith("polyrl: error: no venue ever connected: ")
        assert all(ch in final for ch in WS), final
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
        reader.join(5)
