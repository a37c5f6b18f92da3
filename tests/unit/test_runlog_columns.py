"""A run's table written before a column existed is taken back with that column null."""

from __future__ import annotations

import polars as pl
import pytest

from polyrl.runlog import EPISODES, RunLog


def test_episodes_from_before_the_reference_flags_resume_with_nulls() -> None:
    old = {c: [None, None] for c in EPISODES if not c.startswith("reference_")}
    old["asset"] = ["btc", "eth"]
    log = RunLog.in_memory(config={})
    log.add_columns("episodes", old)
    log.add("episodes", {**dict.fromkeys(EPISODES), "asset": "sol", "reference_stale": True})
    f = log.frame("episodes")
    assert f["asset"].to_list() == ["btc", "eth", "sol"]
    assert f["reference_stale"].to_list() == [None, None, True]
    assert f.schema["reference_mismatch"] == pl.Boolean


def test_unequal_columns_are_still_refused() -> None:
    log = RunLog.in_memory(config={})
    with pytest.raises(pl.exceptions.ShapeError):
        log.add_columns("episodes", {"asset": ["btc"], "slug": ["a", "b"]})
        log.frame("episodes")


def test_an_in_memory_log_says_it_writes_no_files() -> None:
    log = RunLog.in_memory(config={"kind": "parity"})
    assert log.dir is None and log.config == {"kind": "parity"}
    for write in (log.flush, lambda: log.finish({})):
        with pytest.raises(RuntimeError, match="in-memory run log writes no files"):
            write()
