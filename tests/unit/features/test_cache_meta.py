"""A feature-cache entry whose meta.json no longer says how many events it replayed is rebuilt,
not trusted (before, replay counted a missing value as 0 and failed on a null)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from polyrl.features.cache import load_or_build
from polyrl.replay import replay_spec
from polyrl.sections import Config

DAY = "2024-06-01"


def test_an_entry_with_a_bad_events_count_is_rebuilt(small_recording: Path, tmp_path: Path) -> None:
    root = tmp_path / "rec"
    shutil.copytree(small_recording, root, ignore=shutil.ignore_patterns(".cache"))
    spec = replay_spec(Config())
    good = load_or_build(root, DAY, spec)
    n = good.events
    assert isinstance(n, int) and n > 0
    meta_path = good.path / "meta.json"
    for bad in ({"events": None}, {}, {"events": "123"}, {"events": True}, {"events": 1.5}):
        meta = {k: v for k, v in good.meta.items() if k != "events"} | bad
        with pytest.raises(ValueError, match=r"meta\.json: events is .*, not an integer"):
            _ = dataclasses.replace(good, meta=meta).events
    meta_path.write_text(json.dumps({**good.meta, "events": None}))
    again = load_or_build(root, DAY, spec)
    assert again.path == good.path and again.events == n
    assert json.loads(meta_path.read_text())["events"] == n  # rewritten by the rebuild
