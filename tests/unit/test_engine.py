"""The Engine over recorded days: determinism, live-path parity, settlement, flags, caches."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from polyrl.clock import ReplayClock
from polyrl.engine import Engine, TickObs
from polyrl.features.cache import load_or_build
from polyrl.features.engine import FeatureEngine
from polyrl.features.sets import feature_set
from polyrl.policies.base import BUY, HOLD
from polyrl.policies.baselines import BASELINES, make_baseline
from polyrl.recording.reader import RecordingReader
from polyrl.replay import cached_outcome, load_days, replay_engine, replay_spec
from polyrl.runlog import RunLog
from polyrl.sections import Config

CFG = Config()


def _backtest(root: Path, out: Path, name: str = "momentum", cfg: Config = CFG) -> RunLog:
    caches = load_days(root, "*", cfg)
    policy = make_baseline(name, feature_set(cfg.features.feature_set), cfg.baselines, seed=1)
    log = RunLog(out, config={"strategy": name}, overwrite=True)
    replay_engine(caches, policy, cfg, log)
    log.finish({"strategy": name})
    return log


def _digest(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_same_backtest_twice_is_byte_identical(small_recording: Path, tmp_path: Path) -> None:
    a = _backtest(small_recording, tmp_path / "a", "random")
    b = _backtest(small_recording, tmp_path / "b", "random")
    assert _digest(a.dir) == _digest(b.dir)
    assert a.frame("trades").height > 0
    assert set(_digest(a.dir)) >= {
        "config.json",
        "decisions.parquet",
        "trades.parquet",
        "episodes.parquet",
        "summary.json",
    }


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_runs(small_recording: Path, tmp_path: Path, name: str) -> None:
    log = _backtest(small_recording, tmp_path / name, name)
    dec = log.frame("decisions")
    assert dec.height == 3841 * 4
    # Actions only where tradable.
    assert dec.filter(~pl.col("tradable") & (pl.col("action") != HOLD)).height == 0
    eps = log.frame("episodes")
    assert eps.height == 12  # three windows of four assets
    trades = log.frame("trades")
    closed = trades.filter(pl.col("kind").is_in(["close", "settle"]))
    assert abs(closed["realized_pnl"].sum() - eps["pnl"].sum()) < 1e-9
    if name == "random":
        assert trades.height > 20


def test_settlement_pays_the_recorded_outcome(small_recording: Path, tmp_path: Path) -> None:
    log = _backtest(small_recording, tmp_path / "r", "random")
    trades, eps = log.frame("trades"), log.frame("episodes")
    settles = trades.filter(pl.col("kind") == "settle")
    assert settles.height > 0
    outcome = dict(zip(eps["condition_id"], eps["outcome"], strict=True))
    for row in settles.iter_rows(named=True):
        won = row["token"] == outcome[row["condition_id"]]
        assert row["avg_price"] == (1.0 if won else 0.0)
        assert row["notional"] == pytest.approx(row["shares"] * row["avg_price"])


class _LastTickBuyer:
    """Buys Up once per window, at the last tradable tick before its end, then holds."""

    name = "last_tick_buyer"

    def __init__(self, fset) -> None:  # type: ignore[no-untyped-def]
        self.ix = fset.index("time_remaining")

    def act(self, obs: np.ndarray, tradable: np.ndarray) -> np.ndarray:
        late = obs[:, self.ix] < 3 / 1800  # the last three ticks of a window
        return np.where(tradable & late, BUY, HOLD)


def test_a_position_open_at_the_roll_is_parked_until_the_resolution(
    small_recording: Path, tmp_path: Path
) -> None:
    caches = load_days(small_recording, "*", CFG)
    fset = feature_set(CFG.features.feature_set)
    log = RunLog(tmp_path / "p", config={}, overwrite=True)
    replay_engine(caches, _LastTickBuyer(fset), CFG, log)
    log.flush()
    eps = log.frame("episodes").filter(pl.col("fills") > 0)
    assert eps.height >= 4
    first = eps.filter(pl.col("end_ns") == eps["end_ns"].min())
    windows = caches[0].windows
    for row in first.iter_rows(named=True):
        w = windows.filter(pl.col("condition_id") == row["condition_id"]).row(0, named=True)
        assert row["outcome_source"] == "gamma"
        # Settled at the first tick at or after the resolution arrived, after the window end.
        assert w["end_ns"] < w["outcome_ns"] <= row["settled_ns"] < w["outcome_ns"] + 500_000_000
        assert row["pnl"] != 0.0


def _live_like(root: Path, log: RunLog, *, swap_at: int | None = None) -> dict[str, object]:
    """Step an Engine on FeatureEngine.observe() one tick at a time, as live mode does. With
    ``swap_at``, at the first tick at or after it with a position held or parked, the Engine
    is replaced by a new one restored from the old one's JSON state (a live restart)."""
    import json

    from polyrl.broker import PaperBroker

    fset = feature_set(CFG.features.feature_set)
    lat = CFG.engine.latency_ns
    fe = FeatureEngine(tuple(CFG.assets), CFG.features, fill_latency_ns=lat)
    timeout = int(CFG.engine.resolution_timeout_s * 1e9)

    def make() -> Engine:
        return Engine(
            assets=tuple(CFG.assets), fset=fset,
            policy=make_baseline("momentum", fset, CFG.baselines, seed=1),
            broker=PaperBroker(len(CFG.assets), CFG.broker),
            windows=lambda i: fe.windows[i],
            outcome=lambda w, t: fe.settle_outcome(w, t, timeout),
            runlog=log, config=CFG.engine,
        )  # fmt: skip

    engine = make()
    swapped: dict[str, object] = {}
    last = 0
    reader = RecordingReader(root)
    clock = ReplayClock(CFG.engine.tick_ns, lookahead_ns=lat)
    for batch, ticks in clock.drive(reader.batches(batch_size=4096)):
        fe.ingest(batch)
        for t in ticks.tolist():
            if swap_at is not None and not swapped and t >= swap_at:
                state = engine.state_dict()
                if state["parked"] or any(h >= 0 for h in state["broker"]["held"]):
                    engine = make()
                    engine.load_state_dict(json.loads(json.dumps(state)),
                                           {w.condition_id: w for w in fe.windows})  # fmt: skip
                    swapped.update(t=t, state=state)
            o = fe.observe(t)
            engine.step(TickObs(
                t_ns=t, features=o.features[0], tradable=o.tradable[0], window=o.window[0],
                top_px=o.book_px[0, ..., 0], top_size=o.book_size[0, ..., 0],
                fill_px=o.fill_px[0], fill_size=o.fill_size[0],
            ))  # fmt: skip
            last = t
    fe.finalize_outcomes(last + 3600 * 10**9, timeout)
    engine.finish(
        last, final_outcome=lambda w, t: (w.outcome or "missing", w.outcome_source or "missing")
    )
    swapped["totals"] = engine.totals
    return swapped


def test_engine_fed_like_live_equals_engine_fed_from_the_cache(
    small_recording: Path, tmp_path: Path
) -> None:
    """Live mode steps the Engine on FeatureEngine.observe() one tick at a time; replay
    reads the per-day cache. Same recording, same policy: the same decisions, trades and
    episodes."""
    cached = _backtest(small_recording, tmp_path / "cache", "momentum")
    log = RunLog(tmp_path / "live", config={"strategy": "momentum"}, overwrite=True)
    _live_like(small_recording, log)
    for table in ("decisions", "trades", "episodes"):
        a, b = cached.frame(table), log.frame(table)
        assert a.height == b.height, table
        assert a.equals(b), table
    assert cached.frame("trades").height > 0


@pytest.mark.parametrize("swap_s", [15 * 60, 15 * 60 + 1])
def test_an_engine_restored_from_its_state_carries_on_identically(
    small_recording: Path, tmp_path: Path, swap_s: int
) -> None:
    """state_dict -> JSON -> load_state_dict into a new Engine: every decision, trade,
    episode (fills, PnL, first entry) and total is what the uninterrupted Engine produced.
    Swapped at 00:15:00 the 00:00 windows' positions are open in their episodes (the roll
    parks them after the swap); at 00:15:01 they are parked awaiting the resolution."""
    whole = RunLog(tmp_path / "whole", config={}, overwrite=True)
    ref = _live_like(small_recording, whole)
    log = RunLog(tmp_path / "restored", config={}, overwrite=True)
    swapped = _live_like(small_recording, log, swap_at=small_recording_t0() + swap_s * 10**9)
    state = swapped["state"]
    assert isinstance(state, dict)
    if swap_s % 60 == 0:
        assert any(h >= 0 for h in state["broker"]["held"]) and not state["parked"]
        assert any(c and c["fills"] > 0 for c in state["current"])
    else:
        assert any(p["broker"] is not None for p in state["parked"])
    for table in ("decisions", "trades", "episodes"):
        assert whole.frame(table).equals(log.frame(table)), table
    assert swapped["totals"] == ref["totals"]
    assert whole.frame("episodes").filter(pl.col("fills") > 0).height > 0


def small_recording_t0() -> int:
    from polyrl.events import iso_to_ns

    return iso_to_ns("2024-06-01T00:00:00Z")


def test_missing_resolutions_settle_from_the_reference_and_are_flagged(
    small_recording: Path, tmp_path: Path
) -> None:
    root = tmp_path / "rec"
    shutil.copytree(small_recording, root, ignore=shutil.ignore_patterns(".cache"))
    shutil.rmtree(root / "polymarket.resolution")
    log = _backtest(root, tmp_path / "run", "random")
    eps = log.frame("episodes")
    done = eps.filter(pl.col("end_ns") <= eps["end_ns"].max() - 900 * 10**9)
    assert done.height == 8 and (done["outcome_source"] == "reference").all()
    # Same outcomes as the recorded resolutions would have given.
    full = _backtest(small_recording, tmp_path / "full", "random").frame("episodes")
    joined = done.join(full, on="condition_id", suffix="_rec")
    assert (joined["outcome"] == joined["outcome_rec"]).all()
    # With no reference either, the windows have no outcome: flagged, PnL null (not 0).
    shutil.rmtree(root / "reference.price")
    shutil.rmtree(root / ".cache")
    eps = _backtest(root, tmp_path / "run2", "random").frame("episodes")
    assert (eps["outcome_source"] == "missing").all()
    assert eps["no_outcome"].all() and eps["pnl"].is_null().all()
    assert eps.filter(pl.col("fills") > 0).height > 0
    settles = _backtest(root, tmp_path / "run3", "random").frame("trades")
    assert settles.filter(pl.col("kind") == "settle").height == 0


def test_cache_is_reused_and_keyed_by_content(small_recording: Path, tmp_path: Path) -> None:
    root = tmp_path / "rec"
    shutil.copytree(small_recording, root, ignore=shutil.ignore_patterns(".cache"))
    spec = replay_spec(CFG)
    a = load_or_build(root, "2024-06-01", spec)
    b = load_or_build(root, "2024-06-01", spec)
    assert a.path == b.path and a.key == b.key
    assert np.array_equal(a.arrays["features"], b.arrays["features"])
    # Another feature set is another entry.
    other = Config(features=type(CFG.features)(feature_set="full"))
    c = load_or_build(root, "2024-06-01", replay_spec(other))
    assert c.key != a.key and c.arrays["features"].shape[-1] == feature_set("full").dim - 3
    # Changing the recording's bytes changes the key.
    victim = sorted(root.glob("binance.spot.trade/date=*/hour=*/*.parquet"))[0]
    victim.write_bytes(victim.read_bytes())  # same bytes: same key
    assert load_or_build(root, "2024-06-01", spec).key == a.key
    df = pl.read_parquet(victim)
    df.head(df.height - 1).write_parquet(victim)
    assert load_or_build(root, "2024-06-01", spec).key != a.key


def test_cached_outcome_waits_for_its_time() -> None:
    from polyrl.features.markets import Window

    w = Window(
        index=0, asset="btc", slot=0, condition_id="c", slug="s", up_token="u", down_token="d",
        start_ns=0, end_ns=10, known_ns=0, tick_size=0.01, min_size=5.0, fees_enabled=True,
        fee_rate=0.07, fee_exponent=1.0, outcome="Up", outcome_source="gamma", outcome_ns=30,
    )  # fmt: skip
    assert cached_outcome(w, 29) is None
    assert cached_outcome(w, 30) == ("Up", "gamma")
