"""A backtest's episodes and the day cache's windows table date an outage from the
recorder's ``gap_start_ns``: a window that ended inside the silence, before the disconnect
row, is flagged ``gap`` (so training leaves it out and reports count it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

from polyrl.events import CH_POLYMARKET_WS, NS_PER_S, WINDOW_NS, iso_to_ns, status_event
from polyrl.features.sets import feature_set
from polyrl.policies.baselines import make_baseline
from polyrl.recording.writer import RecordingConfig, RecordingWriter
from polyrl.replay import load_days, replay_engine
from polyrl.runlog import RunLog
from polyrl.sections import Config

ROLL = iso_to_ns("2024-06-01T00:15:00Z")


def _backtest(root: Path, out: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    cfg = Config()
    caches = load_days(root, "*", cfg)
    policy = make_baseline("random", feature_set(cfg.features.feature_set), cfg.baselines, seed=1)
    log = RunLog(out, config={"strategy": "random"}, overwrite=True)
    replay_engine(caches, policy, cfg, log)
    log.finish({"strategy": "random"})
    return log.frame("episodes"), pl.concat([c.windows for c in caches])


def test_backtest_flags_the_windows_an_outage_overlapped_from_gap_start(
    small_recording: Path, tmp_path: Path
) -> None:
    root = tmp_path / "rec"
    shutil.copytree(small_recording, root)
    s = NS_PER_S
    gap_start, t_drop, t_back = ROLL - 8 * s, ROLL + 10 * s, ROLL + 20 * s
    with RecordingWriter(root, config=RecordingConfig(fsync=False)) as w:
        w.append(status_event("disconnect", t_drop, channel=CH_POLYMARKET_WS))
        w.append(status_event("connect", t_back, channel=CH_POLYMARKET_WS))
        w.append(status_event("gap", t_back + 1, channel=CH_POLYMARKET_WS,
                              gap_start_ns=gap_start, gap_end_ns=t_back))  # fmt: skip
    episodes, windows = _backtest(root, tmp_path / "run")
    ended = windows.filter(pl.col("end_ns") == ROLL)
    assert ended.height == 4 and ended["gap"].all()
    assert windows.filter(pl.col("start_ns") == ROLL)["gap"].all()
    assert windows.filter(pl.col("start_ns") == ROLL + WINDOW_NS)["gap"].sum() == 0
    settled = episodes.filter(pl.col("end_ns") == ROLL)
    assert settled.height > 0 and settled["gap"].all()
