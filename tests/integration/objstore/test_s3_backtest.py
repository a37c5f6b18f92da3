"""``polyrl backtest --root s3://...``: the same run as from the local copy of the bucket's
files. The caches are keyed by content, so with ``POLYRL_CACHE_DIR`` pointing at the local
copy's cache folder the S3 run finds the entry the local run built and builds nothing
(building from S3 itself: test_s3_cache.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import run_cli

from .s3_server import S3Server

pytestmark = pytest.mark.integration


def test_backtest_from_s3_matches_local_and_shares_its_cache(
    s3_env: S3Server, small_recording: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = s3_env.upload(small_recording, s3_env.new_bucket(), "team/rec")
    runs = tmp_path / "runs"
    out = {}
    entries: dict[str, set[Path]] = {}
    cache = small_recording / ".cache"
    monkeypatch.setenv("POLYRL_CACHE_DIR", str(cache))
    for name, root in (("local", str(small_recording)), ("s3", uri)):
        res = run_cli(
            "backtest", "--strategy", "momentum", "--replay", "2024-06-01",
            "--root", root, "--runs", str(runs), "--name", name,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        summary = json.loads((runs / name / "summary.json").read_text())
        out[name] = (res.stdout.replace(name, "NAME"), summary)
        entries[name] = {p.stat().st_mtime_ns for p in cache.glob("features/*/*/meta.json")}
    assert out["s3"][0] == out["local"][0]
    a, b = out["local"][1], out["s3"][1]
    for k in ("events_digest", "outputs_digest", "stats", "recording_digests", "data"):
        assert a[k] == b[k], k
    assert b["stats"]["total"]["fills"] > 0
    assert entries["s3"] == entries["local"] and entries["s3"]  # a hit: nothing rebuilt


_SMALL = ("--envs", "2", "--set", "ppo.buffer_steps=64", "--set", "ppo.minibatch_size=64",
          "--set", "ppo.n_epochs=1")  # fmt: skip


def test_train_from_s3_reads_the_bucket(
    s3_env: S3Server, small_recording: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import polyrl.sections  # noqa: F401 - Config below
    from polyrl.features.cache import cache_key
    from polyrl.replay import replay_spec
    from polyrl.sections import Config

    monkeypatch.setenv("POLYRL_CACHE_DIR", str(tmp_path / "cache"))
    uri = s3_env.upload(small_recording, s3_env.new_bucket(), "rec")
    runs = tmp_path / "runs"
    res = run_cli(
        "train", "--replay", "2024-06-01", "--root", uri, "--updates", "1", *_SMALL,
        "--runs", str(runs), "--name", "t",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    summary = json.loads((runs / "t" / "summary.json").read_text())
    digest = cache_key(small_recording, "2024-06-01", replay_spec(Config()))[1]
    assert summary["recording_digests"] == {"2024-06-01": digest}
    assert list((tmp_path / "cache").glob("features/2024-06-01/*/meta.json"))


def test_parallel_cache_builds_from_s3_are_refused_in_one_line(
    s3_env: S3Server, small_recording: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYRL_CACHE_DIR", str(tmp_path / "cache"))
    uri = s3_env.upload(small_recording, s3_env.new_bucket(), "rec")
    res = run_cli(
        "backtest", "--strategy", "momentum", "--replay", "2024-06-01", "--root", uri,
        "--runs", str(tmp_path / "runs"), "--workers", "2",
    )  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stderr
    errors = [x for x in res.stderr.splitlines() if "error" in x]  # beside the progress bar
    assert len(errors) == 1 and "--workers" in errors[0] and uri in errors[0]
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("meta.json"))
