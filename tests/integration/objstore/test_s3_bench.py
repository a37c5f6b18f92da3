"""``polyrl bench s3`` runs end to end against the moto server it starts on loopback (its
figures are for the README, not asserted: only that both reads saw the same events)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration


def test_bench_s3_reads_the_same_day_from_both(tmp_path: Path) -> None:
    res = run_cli(
        "bench", "s3", "--hours", "0.1", "--work", str(tmp_path), "--repeat", "1", "--json"
    )
    assert res.returncode == 0, res.stderr
    fig = json.loads(res.stdout)
    assert fig["day"] == "2024-06-01" and fig["events"] > 10_000
    assert fig["server"].startswith("moto (started here) http://127.0.0.1:")
    assert fig["local_s"] > 0 and fig["s3_s"] > 0
    assert fig["ratio"] == pytest.approx(fig["s3_s"] / fig["local_s"])
    assert "uploading" in res.stderr


def test_bench_s3_against_a_named_endpoint_needs_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    res = run_cli(
        "bench", "s3", "--hours", "0.1", "--work", str(tmp_path), "--endpoint",
        "http://127.0.0.1:9",
    )  # fmt: skip
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "AWS_ACCESS_KEY_ID" in res.stderr
