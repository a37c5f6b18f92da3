"""The vectorised replay env: parity with the Engine, episodes, exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from polyrl.features.sets import feature_set
from polyrl.policies.baselines import make_baseline
from polyrl.replay import load_days, replay_engine
from polyrl.rl.env import ReplayEnv, evaluate
from polyrl.rl.episodes import EpisodeStore
from polyrl.runlog import RunLog
from polyrl.sections import Config

CFG = Config()
FSET = feature_set(CFG.features.feature_set)
CMP = ["slot", "asset", "condition_id", "kind", "action", "token", "side", "shares",
       "avg_price", "notional", "fee", "levels", "partial", "rejected", "realized_pnl"]  # fmt: skip


@pytest.fixture(scope="module")
def caches(small_recording: Path):  # type: ignore[no-untyped-def]
    return load_days(small_recording, "*", CFG)


@pytest.fixture(params=["buffered", "direct"])
def read_path(request, monkeypatch):  # type: ignore[no-untyped-def]
    """Run a test with per-env episode buffers (small batches) and with direct reads from
    the day caches (large batches)."""
    if request.param == "direct":
        monkeypatch.setattr(ReplayEnv, "EPISODE_BUFFER_BYTES", 0)
    return request.param


@pytest.mark.parametrize("name", ["momentum", "mean_revert", "gating"])
def test_env_and_engine_agree(caches, tmp_path: Path, name: str, read_path) -> None:  # type: ignore[no-untyped-def]
    """The same deterministic policy makes the same decisions, fills and PnL in the
    vectorised environment and in the Engine replaying the same recording."""
    log = RunLog(tmp_path / "engine", config={}, overwrite=True)
    policy = make_baseline(name, FSET, CFG.baselines)
    replay_engine(caches, policy, CFG, log)
    log.flush()
    store = EpisodeStore.build(caches, exclude_gap=False, exclude_missing=False)
    tr_env, ep_env = evaluate(
        store, make_baseline(name, FSET, CFG.baselines), fset=FSET, broker=CFG.broker,
        latency_ns=CFG.engine.latency_ns, tick_ns=CFG.engine.tick_ns,
    )  # fmt: skip
    tr_eng = log.frame("trades")
    ep_eng = log.frame("episodes").filter(
        pl.col("condition_id").is_in(ep_env["condition_id"].implode())
    )
    # Fills: identical rows (settlements are stamped when they happen, so compare without t).
    assert tr_env.filter(pl.col("kind") != "settle").equals(
        tr_eng.filter(pl.col("kind") != "settle")
    )
    key = ["condition_id"]
    a = tr_env.filter(pl.col("kind") == "settle").select(CMP).sort(key)
    b = tr_eng.filter(pl.col("kind") == "settle").select(CMP).sort(key)
    assert a.equals(b)
    cols = ["condition_id", "outcome", "orders", "fills", "pnl", "fees", "first_entry_ns",
            "first_entry_price", "first_entry_token"]  # fmt: skip
    assert ep_env.select(cols).sort(key).equals(ep_eng.select(cols).sort(key))
    assert tr_env.height > 0 or name == "gating"


@pytest.mark.parametrize("latency_ms", [700, 1200])
def test_env_and_engine_agree_with_latency_beyond_a_tick(
    small_recording: Path, tmp_path: Path, latency_ms: int
) -> None:
    """An order in flight for one or two ticks: the Engine forces HOLD on its market until
    it fills at the book of its arrival, the env skips those steps; both make the same
    fills, stamped at the arrival, and the same PnL."""
    import dataclasses

    cfg = dataclasses.replace(
        CFG, engine=dataclasses.replace(CFG.engine, fill_latency_ms=latency_ms)
    )
    days = load_days(small_recording, "*", cfg)
    log = RunLog(tmp_path / "engine", config={}, overwrite=True)
    res = replay_engine(days, make_baseline("momentum", FSET, cfg.baselines), cfg, log)
    log.flush()
    store = EpisodeStore.build(days, exclude_gap=False, exclude_missing=False)
    tr_env, ep_env = evaluate(
        store, make_baseline("momentum", FSET, cfg.baselines), fset=FSET, broker=cfg.broker,
        latency_ns=cfg.engine.latency_ns, tick_ns=cfg.engine.tick_ns,
    )  # fmt: skip
    tr_eng = log.frame("trades")
    fills = tr_eng.filter(pl.col("kind") != "settle")
    assert fills.height > 0
    assert tr_env.filter(pl.col("kind") != "settle").equals(fills)
    # Every fill is stamped at its decision tick + latency (off the tick grid).
    assert (fills["t_ns"] % cfg.engine.tick_ns == (latency_ms % 500) * 1_000_000).all()
    cols = ["condition_id", "outcome", "orders", "fills", "pnl", "fees"]
    ep_eng = log.frame("episodes").filter(
        pl.col("condition_id").is_in(ep_env["condition_id"].implode())
    )
    assert ep_env.select(cols).sort("condition_id").equals(ep_eng.select(cols).sort("condition_id"))
    # While an order is in flight its market is not tradable: no decision double-counts it.
    dec = log.frame("decisions").sort(["slot", "t_ns"])
    k = latency_ms // 500
    for slot in range(len(cfg.assets)):
        acts = dec.filter(pl.col("slot") == slot)["action"].to_numpy()
        sent = np.flatnonzero(acts != 0)
        assert (np.diff(sent) > k).all(), slot
    assert res.engine.totals.fills == fills.height


def test_observations_equal_the_engine_s(caches) -> None:  # type: ignore[no-untyped-def]
    """What the env shows the agent is what the Engine shows it at the same tick."""
    store = EpisodeStore.build(caches, exclude_gap=False, exclude_missing=False)
    env = ReplayEnv(store, n_envs=store.n, fset=FSET, broker=CFG.broker, seed=0, order="sequential")
    obs = env.reset()
    c = caches[0]
    day, k, slot = env._where()
    want = np.asarray(c.arrays["features"])[k, slot]
    assert np.array_equal(obs[:, list(FSET.market_index)], want)
    # Flat at the start: position features are zero.
    assert not obs[:, list(FSET.position_index)].any()


def test_episode_store_excludes_flagged_windows(caches) -> None:  # type: ignore[no-untyped-def]
    all_eps = EpisodeStore.build(caches, exclude_gap=False, exclude_missing=False)
    decided = EpisodeStore.build(caches)
    assert all_eps.n >= decided.n > 0
    assert decided.info["outcome"].is_in(["Up", "Down"]).all()
    assert (decided.length > 0).all()
    assert int(decided.length.sum()) == decided.ticks.shape[0]


def test_env_resumes_exactly(caches, read_path) -> None:  # type: ignore[no-untyped-def]
    store = EpisodeStore.build(caches, exclude_gap=False, exclude_missing=False)
    rng = np.random.default_rng(0)
    acts = rng.integers(0, 3, size=(4000, 8))

    def run(n0: int, n1: int, resume: dict | None = None):  # type: ignore[no-untyped-def]
        env = ReplayEnv(store, n_envs=8, fset=FSET, broker=CFG.broker, seed=5)
        obs = env.reset()
        if resume is not None:
            env.load_state_dict(resume)
            obs = env.observe()
        out, eps = [], []
        for t in range(n0, n1):
            obs, r, d, info = env.step(acts[t])
            out.append((obs.copy(), r.copy(), d.copy()))
            eps += info["episodes"]
        return out, eps, json.loads(json.dumps(env.state_dict()))  # as a checkpoint keeps it

    straight, eps, _ = run(0, 4000)
    first, eps1, state = run(0, 1700)
    second, eps2, _ = run(1700, 4000, resume=state)
    for (o1, r1, d1), (o2, r2, d2) in zip(straight, first + second, strict=True):
        assert np.array_equal(o1, o2) and np.array_equal(r1, r2) and np.array_equal(d1, d2)
    # The episodes in play at the resume are accounted in full (PnL, fees, fills, entry).
    assert pl.DataFrame(eps1 + eps2).equals(pl.DataFrame(eps))
    # The env cycles through episodes: more finish than there are (a second pass began).
    assert sum(int(d.sum()) for _, _, d in straight) > store.n


def test_gathers_across_days_equal_direct_indexing(caches, read_path) -> None:  # type: ignore[no-untyped-def]
    """Envs on different days read each from its own day's cache (buffered per episode, or
    gathered per day), exactly what indexing the caches one env at a time gives."""
    two_days = [caches[0], caches[0]]  # the same day twice: episodes on days 0 and 1
    store = EpisodeStore.build(two_days, exclude_gap=False, exclude_missing=False)
    env = ReplayEnv(store, n_envs=6, fset=FSET, broker=CFG.broker, seed=1)
    assert env._buffered == (read_path == "buffered")
    obs = env.reset()
    rng = np.random.default_rng(3)
    mixed = 0
    for _ in range(400):
        day, k, slot = env._where()
        mixed += len(set(day.tolist())) > 1
        feats = [np.asarray(c.arrays["features"]) for c in two_days]
        want = np.stack([feats[d][i, s] for d, i, s in zip(day, k, slot, strict=True)])
        assert np.array_equal(obs[:, list(FSET.market_index)], want)
        ticks = [
            int(np.asarray(two_days[d].arrays["ticks"])[i]) for d, i in zip(day, k, strict=True)
        ]
        assert env.tick_times().tolist() == ticks
        obs, _, _, _ = env.step(rng.integers(0, 3, size=6))
    assert mixed > 0


def test_fill_rows_follow_the_broker_s_trade_rows(caches) -> None:  # type: ignore[no-untyped-def]
    """The env's fill rows are the broker's trade rows, in their order (market by market,
    sell leg first), with ``flip`` so that one step can fill both legs of a market."""
    import dataclasses

    broker = dataclasses.replace(CFG.broker, on_opposite="flip", on_same="add")
    store = EpisodeStore.build(caches, exclude_gap=False, exclude_missing=False)
    env = ReplayEnv(store, n_envs=16, fset=FSET, broker=broker, seed=2)
    env.reset()
    rng = np.random.default_rng(4)
    both = 0
    for _ in range(1500):
        ep, slot = env.ep.copy(), env._ep_slot.copy()
        _, _, _, info = env.step(rng.integers(0, 3, size=16))
        rows = [r for r in info["trades"] if r["kind"] != "settle"]
        ref = info["result"].trade_rows()
        assert [(r["env"], r["side"]) for r in rows] == [(r["market"], r["side"]) for r in ref]
        for r, s in zip(rows, ref, strict=True):
            assert r["slot"] == slot[s["market"]]
            assert r["condition_id"] == env._info[ep[s["market"]]]["condition_id"]
            for k in ("t_ns", "shares", "avg_price", "notional", "fee", "levels", "partial"):
                assert r[k] == s[k] and type(r[k]) is type(s[k])
            assert r["realized_pnl"] == (s["realized_pnl"] if s["side"] < 0 else 0.0)
        both += len({r["env"] for r in rows}) < len(rows)
    assert both > 0  # some step filled a sell and a buy in one market
