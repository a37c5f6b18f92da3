"""Every ``polyrl bench`` command runs end to end at a small size and reports figures that
hang together. Nothing here asserts a speed: the figures in the README come from full-size
runs of the same commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _json(*args: str) -> dict | list:
    res = run_cli("bench", *args, "--json", timeout=600)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_bench_store(tmp_path: Path) -> None:
    out = _json("store", "--hours", "0.1", "--work", str(tmp_path))
    assert out["hours"] == 0.1 and out["events"] > 10_000
    for key in ("write_events_per_s", "read_merge_events_per_s", "read_merge_raw_events_per_s",
                "event_view_events_per_s"):  # fmt: skip
        assert out[key] > 0, key
    per_stream = out["bytes_per_hour_by_stream"]
    assert {"binance.spot.trade", "polymarket.book", "reference.price"} <= set(per_stream)
    # Per-hour bytes of the streams add up to the bytes written, scaled to an hour.
    assert sum(per_stream.values()) == pytest.approx(out["bytes_total"] / 0.1, rel=0.05)


def test_bench_replay(tmp_path: Path) -> None:
    out = _json("replay", "--hours", "0.2", "--work", str(tmp_path))
    assert abs(out["ticks"] - 0.2 * 3600 * 2) <= 2  # 500 ms ticks over 12 simulated minutes
    assert out["events"] > 10_000
    assert out["cold_events_per_s"] == pytest.approx(out["events"] / out["cold_seconds"])
    assert 0 < out["warm_seconds"] < out["cold_seconds"]
    assert out["engine_ticks_per_s"] > 0


def test_bench_record(tmp_path: Path) -> None:
    out = _json("record", "--speed", "20", "--seconds", "5", "--work", str(tmp_path))
    assert out["simulated_s"] == pytest.approx(100.0)
    assert out["frames"] > 1_000 and out["rows"] >= out["frames"]
    assert out["frames_per_s"] == pytest.approx(out["frames"] / out["seconds"], rel=0.2)
    assert 0 < out["cpu_fraction"] < 2
    # Samples are rounded to 0.1 MB; the peak is the kernel's high-water mark, at least them.
    assert out["peak_rss_mb"] >= max(out["rss_mb_samples"]) - 0.05


def test_bench_train_without_sb3() -> None:
    out = _json("train", "--updates", "2", "--big-envs", "8", "--big-minibatch", "128")
    assert [s["setting"] for s in out] == ["a", "b"]
    a, b = out
    assert (a["replay"]["n_envs"], a["replay"]["minibatch_size"]) == (4, 64)
    assert (b["replay"]["n_envs"], b["replay"]["minibatch_size"]) == (8, 128)
    for s in out:
        assert "sb3" not in s  # only with --against sb3
        for impl in ("replay", "toy"):
            r = s[impl]
            assert r["buffer_steps"] == 512 and r["n_epochs"] == 10
            # rollout_s and update_s are means per update, each of n_envs x buffer_steps steps.
            per_update = r["n_envs"] * r["buffer_steps"]
            assert r["steps_per_s"] == pytest.approx(per_update / (r["rollout_s"] + r["update_s"]))
        assert 0 < s["toy"]["ceiling_fraction"] < 1 and s["toy"]["blas"]


def test_bench_live(tmp_path: Path) -> None:
    res = run_cli("bench", "live", "--seconds", "10", "--work", str(tmp_path), timeout=300)
    assert res.returncode == 0, res.stderr
    m = re.search(r"(\d+) ticks of 4 markets over the session at 1x", res.stdout)
    # 2 ticks a second over the 10 measured seconds and part of the 5 s start-up before them.
    assert m and 20 <= int(m.group(1)) <= 32, res.stdout
    p50, p99 = map(float, re.search(r"p50 ([\d.]+) ms, p99 ([\d.]+) ms", res.stdout).groups())
    assert 0 < p50 <= p99
    assert re.search(r"CPU: [\d.]+% of one core", res.stdout)


def test_bench_import(tmp_path: Path) -> None:
    out = _json("import", "--hours", "1", "--pmxt-rows-per-hour", "3000", "--other-markets",
                "300", "--other-rows", "4000", "--spot-trades", "2000", "--futures-trades",
                "1000", "--row-group-rows", "12000", "--workdir", str(tmp_path),
                "--remote")  # fmt: skip
    assert out["hours"] == 1 and "assumed volume" in out["assumption"]
    # The hour file holds the wanted rows, one tick-size change per market and the others'.
    assert out["pmxt_rows_in_files"] > 3000 + 300 * 4000
    # Every imported PMXT row went through read, convert and write (write adds status rows).
    pm = out["pmxt"]
    assert 0 < out["pmxt_rows_out"] <= pm["read"]["rows"]
    assert pm["convert"]["rows"] == out["pmxt_rows_out"] < pm["write"]["rows"]
    bn = out["binance"]
    assert bn["read"]["rows"] >= 4 * (2000 + 1000 + 86_400)  # trades and 1 s klines
    assert bn["write"]["rows"] == out["binance_rows_out"]
    for stage in (*pm.values(), *bn.values()):
        assert stage["cpu_s"] > 0 and stage["rows_per_cpu_s"] > 0
    day = out["day_cpu_s"]
    assert len(out["pmxt_hour_cpu_s"]) == 1  # the hour's own CPU, within the import's
    assert 0 < out["pmxt_hour_cpu_s"][0] <= out["pmxt_cpu_s"]
    assert day["polymarket"] == pytest.approx(out["pmxt_cpu_s"] * 24)
    assert day["total"] == pytest.approx(day["polymarket"] + day["binance"])
    # Range reads fetch the row groups of the wanted markets only: less than the whole file.
    r = out["remote"]
    assert r["pct"] == pytest.approx(100 * r["bytes_fetched"] / r["bytes_total"])
    assert 0 < r["bytes_fetched"] < r["bytes_total"]
    assert [h["hour"] for h in r["per_hour"]] == ["2026-05-01T00"]
    assert r["per_hour"][0]["size"] == r["bytes_total"]
