"""A session that starts after a window opened: what the Engine trades, as the README says.

The recording starts two minutes into the 00:00 window (as a live session started then
records it) and runs to 00:17. With the seed's feature set a market is tradable once its
features are warm (five minutes of data), inside the window already open: nothing in that
set reads the window's opening price. With the full set, ``ref_move`` (and the fair value
built on it) needs the reference tick stamped at or before the window's opening, which the
session never received, so the first window it can trade is the first whose opening it saw.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from polyrl.events import NS_PER_S, WINDOW_NS, iso_to_ns
from polyrl.features.engine import FeatureConfig
from polyrl.features.sets import feature_set
from polyrl.policies.baselines import make_baseline
from polyrl.recording.writer import RecordingConfig
from polyrl.replay import load_days, replay_engine
from polyrl.runlog import RunLog
from polyrl.sections import Config

pytestmark = pytest.mark.slow

OPEN = iso_to_ns("2024-06-01T00:00:00Z")
START = OPEN + 2 * 60 * NS_PER_S


@pytest.fixture(scope="module")
def late_start(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from polyrl.sim.record import simulate_to_recording

    root = tmp_path_factory.mktemp("late-start") / "rec"
    simulate_to_recording(root, start_ns=START, end_ns=OPEN + 17 * 60 * NS_PER_S, seed=3,
                          config=Config(recording=RecordingConfig(fsync=False)))  # fmt: skip
    return root


def _replay(root: Path, fset: str):  # type: ignore[no-untyped-def]
    cfg = dataclasses.replace(Config(), features=FeatureConfig(feature_set=fset))
    caches = load_days(root, "*", cfg)
    log = RunLog.in_memory(config={})
    policy = make_baseline("random", feature_set(fset), cfg.baselines, seed=1)
    replay_engine(caches, policy, cfg, log)
    windows = caches[0].windows
    return log.frame("decisions"), log.frame("episodes"), windows


@pytest.mark.parametrize("fset", ["seed18", "full"])
def test_a_window_open_before_the_session(late_start: Path, fset: str) -> None:
    decisions, episodes, windows = _replay(late_start, fset)
    starts = windows["start_ns"].to_numpy()
    t = decisions["t_ns"].to_numpy()
    w = decisions["window"].to_numpy()
    tradable = decisions["tradable"].to_numpy()
    ws = np.where(w >= 0, starts[np.maximum(w, 0)], -1)
    in_first = tradable & (ws == OPEN)
    in_next = tradable & (ws == OPEN + WINDOW_NS)
    assert in_next.any()  # the 00:15 window, whose opening the session saw, is traded
    traded = set(episodes.filter(episodes["fills"] > 0)["start_ns"].to_list())
    if fset == "seed18":
        # Warm five minutes after the start, in the window that opened before it.
        first = int(t[in_first].min())
        assert START + 5 * 60 * NS_PER_S <= first < START + 6 * 60 * NS_PER_S
        assert OPEN in traded
    else:
        assert not in_first.any() and OPEN not in traded
        assert int(t[in_next].min()) - (OPEN + WINDOW_NS) < 10 * NS_PER_S
        assert OPEN + WINDOW_NS in traded
