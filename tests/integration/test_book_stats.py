"""`polyrl inspect --book-stats`, and the default simulator held to the real books' figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyrl.analysis.bookstats import book_stats, format_book_stats

from .conftest import run_cli

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_inspect_book_stats_on_a_small_recording(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    args = ("--start", "2024-06-01T00:14", "--hours", "0.28", "--assets", "btc", "--seed", "3")
    res = run_cli("simulate", "--out", str(root), *args)
    assert res.returncode == 0, res.stderr
    res = run_cli("inspect", str(root), "--book-stats", "--json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [r["group"] for r in rows] == ["btc", "all"]
    btc, pooled = rows
    assert btc == {**pooled, "group": "btc"}  # one asset: the pool is that asset
    # 00:14-00:30:48 covers the 00:15 window whole (its book subscribed a minute ahead).
    assert btc["complete_windows"] == 1 and btc["windows"] >= 2
    assert 0 < btc["depth_bid_early"] and 0 < btc["depth_ask_early"]
    assert 0.0 <= btc["mid_still_share"] <= 1.0
    assert btc["trades_per_s_token"] > 0
    assert btc["decided_share"] in (0.0, 1.0)
    text = run_cli("inspect", str(root), "--book-stats")
    assert text.returncode == 0, text.stderr
    assert "top-5 bid depth, 10-15 min left" in text.stdout
    assert "trades per s per token" in text.stdout
    assert format_book_stats(book_stats(root)) in text.stdout  # the CLI prints the library's
    missing = run_cli("inspect", str(tmp_path / "nope"), "--book-stats")
    assert missing.returncode != 0
    assert "nope" in missing.stderr and "Traceback" not in missing.stderr
