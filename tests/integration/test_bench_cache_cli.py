"""``polyrl bench cache``: cold builds of simulated days one by one and with two workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_bench_cache_times_each_worker_count(tmp_path: Path) -> None:
    res = run_cli("bench", "cache", "--days", "2", "--hours", "0.05", "--repeat", "1",
                  "--workers", "1,2", "--work", str(tmp_path), "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["days"] == 2 and out["events"] > 0
    assert set(out["seconds"]) == {"workers=1", "workers=2"}
    assert all(len(v) == 1 and v[0] > 0 for v in out["seconds"].values())
    assert out["speedup"]["workers=1"] == 1.0
    assert set(out["cpu_seconds"]) == {"workers=1", "workers=2"}
    assert all(v[0] > 0 for v in out["cpu_seconds"].values())
    assert out["speedup"]["workers=2"] == pytest.approx(
        out["seconds"]["workers=1"][0] / out["seconds"]["workers=2"][0]
    )
    assert "cores" in out["machine"]
    # The simulated days are kept and reused; each build started from no cache.
    assert (tmp_path / "days-2x0.05h-seed1" / "COMPLETE").exists()


def test_bench_cache_refuses_bad_worker_lists(tmp_path: Path) -> None:
    for bad, msg in (("1,x", "is not a list of whole numbers"), ("0,2", "needs whole numbers")):
        res = run_cli("bench", "cache", "--workers", bad, "--work", str(tmp_path))
        assert res.returncode != 0 and f"--workers: '{bad}' {msg}" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
