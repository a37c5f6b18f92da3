"""``polyrl record --upload s3://...`` against the loopback venue servers on an accelerated
clock: the hour that closes during the run reaches the bucket whole, the open one stays
local, and a bucket that does not exist stops the command before it records anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from polyrl.clock import LiveClock
from polyrl.events import NS_PER_S, iso_to_ns
from polyrl.recording.reader import RecordingReader
from polyrl.sections import Config
from polyrl.sim.serve import ServeConfig, ServersThread, SimContent, VenueServers
from tests.integration.test_record_loopback import REC_CFG, REPO, _sources

from .s3_server import S3Server

pytestmark = pytest.mark.integration

T0 = iso_to_ns("2024-06-01T00:58:30Z")  # hour 00 ends 90 simulated seconds in
SPEED = 30.0


def _write_config(path: Path, v: VenueServers, cfg: Config, clock: LiveClock) -> None:
    """The loopback config ``polyrl simulate --serve`` would write, clock at :data:`T0`."""
    from polyrl.cli.serve import serve_toml

    text = serve_toml(
        cfg, _sources(v, cfg), speed=clock.speed, start_ns=T0, anchor_ns=clock.anchor_real_ns
    )
    text += "\n[recording]\nfsync = false\ncheckpoint_s = 0.5\nwal_flush_s = 0.1\n"
    path.write_text(text)


def test_record_upload_ships_the_closed_hour(s3_env: S3Server, tmp_path: Path) -> None:
    cfg = Config(assets=("btc",), recording=REC_CFG)
    clock = LiveClock(speed=SPEED, start_ns=T0)
    content = SimContent(cfg, start_ns=T0, end_ns=T0 + 20 * 60 * NS_PER_S, seed=7)
    bucket = s3_env.new_bucket()
    root = tmp_path / "rec"
    th = ServersThread(VenueServers(content, clock=clock, config=ServeConfig()))
    cfg_path = tmp_path / "loop.toml"
    with th as v:
        th.call(_write_config, cfg_path, v, cfg, clock)
        with cfg_path.open("a") as fh:
            fh.write("compact_grace_s = 30.0\n")
        res = subprocess.run(
            [sys.executable, "-m", "polyrl", "record", "--config", str(cfg_path), "--out",
             str(root), "--quiet", "--duration", "6m", "--upload", f"s3://{bucket}/live"],
            cwd=REPO, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"to s3://{bucket}/live" in res.stderr, res.stderr
    fs = s3_env.fs()
    keys = {
        i.path.split("/", 2)[2]
        for i in fs.get_file_info(pafs.FileSelector(bucket, recursive=True))
        if i.type == pafs.FileType.File
    }
    assert "provenance/2024-06-01.json" in keys
    assert any("hour=00" in k for k in keys) and not any("hour=01" in k for k in keys)
    for k in keys:  # each object is the local file, whole
        with fs.open_input_stream(f"{bucket}/live/{k}") as fh:
            assert fh.read() == (root / k).read_bytes(), k
    local = RecordingReader(root, dates="2024-06-01")
    remote = RecordingReader(f"s3://{bucket}/live")
    assert remote.hours() == [("2024-06-01", 0)] and ("2024-06-01", 1) in local.hours()
    a, b = local.read_hour("2024-06-01", 0), remote.read_hour("2024-06-01", 0)
    assert {s: df.height for s, df in a.items()} == {s: df.height for s, df in b.items()}

    # A bucket that does not exist stops the command before it records anything (the
    # config still points at the loopback ports, now closed).
    res = subprocess.run(
        [sys.executable, "-m", "polyrl", "record", "--config", str(cfg_path), "--out",
         str(tmp_path / "rec2"), "--quiet", "--duration", "1s", "--upload",
         "s3://polyrl-no-such-bucket/x"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "bucket 'polyrl-no-such-bucket' does not exist" in res.stderr
    assert not (tmp_path / "rec2").exists()
