"""Poison frames through the loopback venue and `polyrl record`: recording goes on, nothing
else is lost, and a restart after kill -9 recovers.

The two frames are the ones that used to stop the recorder for good: a Binance aggTrade whose
event time ``E`` is beyond int64, and one whose symbol is the JSON escape ``\\ud800`` (a lone
surrogate: valid JSON, plain ASCII on the wire). The spot venue server pushes them to the
recorder's connection between the simulated frames.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest

from polyrl.clock import LiveClock
from polyrl.events import CH_BINANCE_SPOT_WS
from polyrl.recording.reader import RecordingReader
from polyrl.recording.wal import MARK, quarantine_dir, segment_paths
from polyrl.sections import Config
from polyrl.sim.serve import VenueServers

from .test_record_loopback import (
    _config,
    _delivered_data,
    _recorder,
    _rows,
    _serve_thread,
)
from .test_record_loopback import _write_config as _loopback_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_TRADE = {
    "e": "aggTrade",
    "E": 1717200780123,
    "s": "BTCUSDT",
    "a": 3712845601,
    "p": "67912.45000000",
    "q": "0.01250000",
    "f": 5401238811,
    "l": 5401238813,
    "T": 1717200780121,
    "m": False,
    "M": True,
}
BIG_E = json.dumps({"stream": "btcusdt@aggTrade", "data": {**_TRADE, "E": 1180591620717411303424}})
# json.dumps escapes the lone surrogate: the wire text is ASCII holding "\ud800".
SURROGATE = json.dumps({"stream": "btcusdt@aggTrade", "data": {**_TRADE, "s": "BTC\ud800USDT"}})
POISON = {BIG_E: "'exch_ns'", SURROGATE: "'key'"}
SPOT_STREAMS = ["binance.spot.trade", "binance.spot.depth", "binance.spot.book_ticker"]


def _write_config(path: Path, v: VenueServers, cfg: Config, clock: LiveClock) -> None:
    """Checkpoints rare enough that a kill -9 a second after the poison frames finds them in
    the write-ahead log only."""
    _loopback_config(path, v, cfg, clock, checkpoint_s=120.0, wal_flush_s=0.05)


def _publish_poison(th, v: VenueServers) -> None:  # type: ignore[no-untyped-def]
    for text in POISON:
        th.call(v.spot.publish, text)
        time.sleep(0.3)


def _quiesce_and_stop(th, v: VenueServers, proc: subprocess.Popen[str]) -> str:  # type: ignore[no-untyped-def]
    """Stall every venue (no frame in flight), SIGTERM the recorder; its stderr."""
    for name in ("binance_spot", "binance_futures", "rtds", "clob"):
        th.call(v.ws_servers[name].stall, 600.0)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    return err


def _check_poison_rows(root: Path, spot: list[str]) -> None:
    """Every spot frame but the poison ones is a row; each poison frame is one parse_error row
    naming the stream and field, with its text exactly as it arrived."""
    assert set(POISON) <= set(spot)
    recorded = _rows(root).filter(pl.col("stream").is_in(SPOT_STREAMS))["raw"].to_list()
    assert recorded == [t for t in spot if t not in POISON]
    status = RecordingReader(root, streams=["recorder.status"], raw=True).read_stream(
        "recorder.status"
    )
    errors = status.filter(pl.col("kind") == "parse_error")
    assert sorted(errors["raw"].to_list()) == sorted(POISON)
    for row in errors.iter_rows(named=True):
        assert row["stream_id"] == "binance.spot.trade"
        assert f"binance.spot.trade: field {POISON[row['raw']]}" in row["message"]


def test_poison_frames_become_parse_errors_and_the_stream_is_kept(tmp_path: Path) -> None:
    cfg = _config(("btc",))
    th, clock = _serve_thread(cfg, speed=10.0)
    root = tmp_path / "rec"
    with th as v:
        cfg_path = tmp_path / "loop.toml"
        th.call(_write_config, cfg_path, v, cfg, clock)
        proc = _recorder(cfg_path, root)
        time.sleep(5.0)
        _publish_poison(th, v)
        time.sleep(2.0)
        _quiesce_and_stop(th, v, proc)
        spot = th.call(_delivered_data, v, "binance_spot")
    assert len(spot) > 300
    _check_poison_rows(root, spot)
    assert segment_paths(root) == []


def test_kill_9_after_poison_frames_then_restart_recovers(tmp_path: Path) -> None:
    cfg = _config(("btc",))
    th, clock = _serve_thread(cfg, speed=10.0)
    root = tmp_path / "rec"
    with th as v:
        cfg_path = tmp_path / "loop.toml"
        th.call(_write_config, cfg_path, v, cfg, clock)
        proc = _recorder(cfg_path, root)
        time.sleep(5.0)
        _publish_poison(th, v)
        time.sleep(0.5)  # the write-ahead log reaches the OS every 0.05 s; no checkpoint yet
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert segment_paths(root), "kill -9 before a checkpoint leaves the frames in the WAL"
        assert not list(root.glob("binance.spot.trade/date=*/hour=*/*.parquet"))
        lost, q_bytes = _corrupt_a_spot_record(segment_paths(root)[-1])
        # Restart on the same folder: recovery completes and recording goes on.
        again = _recorder(cfg_path, root)
        time.sleep(4.0)
        err = _quiesce_and_stop(th, v, again)
        conns = th.call(_spot_connections, v)
    assert "recovered" in err
    assert segment_paths(root) == []
    # The corrupted record is kept verbatim, named on stderr and in a status row.
    (qfile,) = [q for q in quarantine_dir(root).iterdir() if q.read_bytes() == q_bytes]
    assert f"kept verbatim in {qfile}" in err
    status = RecordingReader(root, streams=["recorder.status"]).read_stream("recorder.status")
    assert any(str(qfile) in m for m in status.filter(pl.col("kind") == "quarantine")["message"])
    recover_msg = status.filter(pl.col("kind") == "recover")["message"].to_list()
    assert len(recover_msg) == 1 and int(recover_msg[0].split()[1]) > 100  # rows recovered
    # What the killed run logged is back: every frame up to the poison ones (a frame in flight
    # at the kill may be missing, but the poison frames went out 0.5 s before it).
    recorded = set(_rows(root).filter(pl.col("stream").is_in(SPOT_STREAMS))["raw"])
    first, last = conns[0], conns[-1]
    cut = first.index(SURROGATE)
    assert len(first[:cut]) > 300
    assert lost in first[:cut] and lost not in recorded
    assert [t for t in first[:cut] if t not in (*POISON, lost) and t not in recorded] == []
    # The restarted recorder recorded every frame of its own connection.
    assert len(conns) >= 2 and len(last) > 100 and set(last) <= recorded
    # The poison frames are parse_error rows, their raw text exactly as it arrived.
    raw = RecordingReader(root, streams=["recorder.status"], raw=True).read_stream(
        "recorder.status"
    )
    errors = raw.filter(pl.col("kind") == "parse_error")
    assert sorted(errors["raw"].to_list()) == sorted(POISON)
    for row in errors.iter_rows(named=True):
        assert f"binance.spot.trade: field {POISON[row['raw']]}" in row["message"]


def _corrupt_a_spot_record(segment: Path) -> tuple[str, bytes]:
    """Flip a bit in the text of the 50th spot frame logged in ``segment`` (its checksum then
    fails); returns that frame's text and the record's bytes as they now are."""
    data = bytearray(segment.read_bytes())
    starts = []
    p = data.find(MARK)
    while p >= 0:
        starts.append(p)
        p = data.find(MARK, p + 1)
    spans = zip(starts, [*starts[1:], len(data)], strict=True)
    seen = 0
    for a, b in spans:
        body = bytes(data[a + 12 : b])
        _, _, clen, rlen = struct.unpack_from("<qqHI", body)
        if body[22 : 22 + clen].decode() != CH_BINANCE_SPOT_WS:
            continue
        seen += 1
        if seen == 50:
            text = body[22 + clen + rlen :].decode()
            data[b - 5] ^= 0x01
            segment.write_bytes(bytes(data))
            return text, bytes(data[a:b])
    raise AssertionError(f"fewer than 50 spot frames in {segment}")


def _spot_connections(v: VenueServers) -> list[list[str]]:
    """The data frames the spot venue delivered, per connection in order."""
    return [log.delivered(("data",)) for log in v.ws_servers["binance_spot"].logs]
