"""`polyrl live` on the loopback venues: a live session, then parity with its replay."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import polars as pl
import pytest

from polyrl.clock import LiveClock
from polyrl.events import CH_POLYMARKET_WS, NS_PER_S, iso_to_ns
from polyrl.features.sets import feature_set
from polyrl.live import LiveSession
from polyrl.parity import replay_live_run
from polyrl.policies.baselines import make_baseline
from polyrl.recording.provenance import day_provenance
from polyrl.recording.reader import RecordingReader
from polyrl.recording.writer import RecordingConfig
from polyrl.sections import Config
from polyrl.sim.serve import ServersThread, SimContent, VenueServers
from polyrl.sources.adapters import default_adapters
from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration

T0 = iso_to_ns("2024-06-01T00:09:00Z")  # the 00:15 roll and the 00:00 window's resolution
SEED = 9


def _cfg(v: VenueServers) -> Config:
    base = Config(assets=("btc", "eth"), recording=RecordingConfig(fsync=False, checkpoint_s=1.0))
    sources = dataclasses.replace(base.sources, watchdog_s=8.0, reconnect_min_s=0.5,
                                  reconnect_max_s=3.0, resolution_delay_s=5.0,
                                  resolution_poll_s=10.0)  # fmt: skip
    return dataclasses.replace(base, sources=v.sources_config(sources))


async def _live(tmp: Path, *, speed: float, seconds: float, strategy: str = "random",
                faults: bool = False, start_ns: int = T0, resume: bool = False,
                dashboard: bool = True) -> LiveSession:  # fmt: skip
    """A live session against the loopback venues. With ``dashboard``, also serves and
    fetches the dashboard (and injects ``faults``: the venues share this loop then); without,
    the venues run on their own thread, so producing minutes of simulated content at once
    (a resumed session joining the world late) cannot stall the session's loop."""
    clock = LiveClock(speed=speed, start_ns=start_ns)
    sim_cfg = Config(assets=("btc", "eth"))
    # One simulated world from T0 (a resumed session joins it later).
    content = SimContent(sim_cfg, start_ns=T0, end_ns=T0 + 40 * 60 * NS_PER_S, seed=SEED)
    servers = VenueServers(content, clock=clock)
    if not dashboard:
        assert not faults
        with ServersThread(servers) as v:
            return await _session(tmp, v, clock, strategy, seconds, resume)
    async with servers as v:
        return await _session(tmp, v, clock, strategy, seconds, resume, dashboard=True,
                              faults=faults)  # fmt: skip


async def _session(tmp: Path, v: VenueServers, clock: LiveClock, strategy: str, seconds: float,
                   resume: bool, *, dashboard: bool = False,
                   faults: bool = False) -> LiveSession:  # fmt: skip
    cfg = _cfg(v)
    fset = feature_set(cfg.features.feature_set)
    policy = make_baseline(strategy, fset, cfg.baselines, seed=3)
    session = LiveSession(
        config=cfg, policy=policy, run_dir=tmp / "run", recording_root=tmp / "rec",
        clock=clock, adapters=default_adapters(cfg),
        run_config={"kind": "live", "strategy": strategy, "seed": 3},
    )  # fmt: skip
    if resume:
        session.resume_from(tmp / "run")
    stop = asyncio.Event()
    task = asyncio.create_task(session.run(stop=stop, install_signal_handlers=False))
    if not dashboard:
        await asyncio.sleep(seconds)
        stop.set()
        await task
        return session
    from polyrl.dashboard.server import DashboardServer

    dash = DashboardServer.live(session)
    await dash.start()
    if faults:
        # After the features' five-minute warm-up, with markets tradable.
        await asyncio.sleep(seconds - 14.0)
        v.clob.malformed(2)
        await asyncio.sleep(1.0)
        v.clob.drop()
        await asyncio.sleep(13.0)
    else:
        await asyncio.sleep(seconds)
    # The live dashboard's snapshot, over HTTP, while the session runs.
    import urllib.request

    body = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{dash.port}/snapshot.json").read()
    )
    session.dashboard_snapshot = json.loads(body)
    page = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{dash.port}/").read()
    )
    assert b"polyrl dashboard" in page
    await dash.stop()
    stop.set()
    await task
    return session


def test_live_session_through_a_disconnect_then_parity(tmp_path: Path) -> None:
    """A live session of ~10 simulated minutes: it trades, rolls at 00:15 and settles the
    00:00 windows at their recorded resolution; a CLOB drop (after malformed frames) stops
    trading until the books are resent, then trading resumes; and replaying the recording
    the session made reproduces every decision, fill and PnL."""
    session = asyncio.run(
        asyncio.wait_for(_live(tmp_path, speed=10.0, seconds=60.0, faults=True), 240)
    )
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    dec = pl.read_parquet(run / "decisions.parquet")
    trades = pl.read_parquet(run / "trades.parquet")
    eps = pl.read_parquet(run / "episodes.parquet")
    assert summary["ticks"] == dec["t_ns"].n_unique() > 1000
    assert trades.filter(pl.col("kind") == "open").height > 10
    settled = eps.filter(pl.col("end_ns") == iso_to_ns("2024-06-01T00:15:00Z"))
    assert settled.height == 2 and (settled["outcome_source"] == "gamma").all()
    assert summary["latency_ms_p99"] < 250  # generous: a shared test machine
    # What the session traded on: what it recorded itself, from the loopback venues, at 10x;
    # the recording's day says the same.
    assert summary["data"]["kinds"] == ["recorded"]
    assert summary["data"]["text"].startswith("recorded from non-default venues (127.0.0.1:")
    assert summary["data"]["text"].endswith(", clock at 10x real time")
    (entry,) = summary["data"]["sources"]
    assert entry["by"] == "polyrl live"
    assert day_provenance(tmp_path / "rec", "2024-06-01").sources == (entry,)
    m = pl.read_parquet(run / "metrics.parquet")
    assert {"latency/p50_ms", "latency/p99_ms", "pnl/realized"} <= set(m.columns)
    assert session.first_seq is not None
    snap = session.dashboard_snapshot
    assert [c["asset"] for c in snap["markets"]] == ["btc", "eth"]
    assert all(c["slug"] and 0 < c["time_left_s"] <= 900 for c in snap["markets"])
    assert all(c["up_prob"] is not None and 0 < c["up_prob"] < 1 for c in snap["markets"])
    assert snap["totals"]["fills"] > 0 and snap["trades"]
    assert (run / "live.json").exists()
    status = RecordingReader(tmp_path / "rec", streams=["recorder.status"]).read_stream(
        "recorder.status"
    )
    drop = status.filter((pl.col("key") == CH_POLYMARKET_WS) & (pl.col("kind") == "disconnect"))
    back = status.filter((pl.col("key") == CH_POLYMARKET_WS) & (pl.col("kind") == "connect"))
    assert drop.height == 1 and back.height == 2
    errs = status.filter(pl.col("kind") == "parse_error")
    assert errs.height == 2
    t_drop, t_back = int(drop["recv_ns"][0]), int(back["recv_ns"][1])
    dec = pl.read_parquet(run / "decisions.parquet")
    during = dec.filter(pl.col("t_ns").is_between(t_drop + 1, t_back))
    assert during.height > 0 and not during["tradable"].any()
    assert during.filter(pl.col("action") != 0).height == 0
    after = dec.filter(pl.col("t_ns") > t_back + 10 * NS_PER_S)
    assert after["tradable"].any()
    _, report = replay_live_run(run)
    assert report.divergence is None, str(report.divergence)
    assert report.rows["decisions"] == dec.height and report.rows["trades"] == trades.height
    ok = run_cli("parity", str(run))
    assert ok.returncode == 0 and "parity: identical" in ok.stdout, ok.stderr
    # A run whose log disagrees with its recording: parity names the tick and exits 1.
    row = dec.filter(pl.col("tradable")).row(0, named=True)
    tampered = dec.with_columns(
        pl.when((pl.col("t_ns") == row["t_ns"]) & (pl.col("asset") == row["asset"]))
        .then(((pl.col("action") + 1) % 3).cast(pl.Int8))
        .otherwise(pl.col("action"))
        .alias("action")
    )
    tampered.write_parquet(run / "decisions.parquet")
    bad = run_cli("parity", str(run))
    assert bad.returncode == 1 and "DIVERGED" in bad.stderr, bad.stdout + bad.stderr
    assert str(row["t_ns"]) in bad.stderr or "tick" in bad.stderr


@pytest.mark.slow
def test_live_train_online_updates_and_checkpoints(tmp_path: Path) -> None:
    """--train: the agent acts, buffers, updates and checkpoints while trading live; parity
    refuses such a run (its policy changed as it ran)."""
    from polyrl.errors import ConfigError
    from polyrl.rl.checkpoint import load_checkpoint
    from polyrl.rl.online import OnlineTrainer
    from polyrl.rl.ppo import PPO, PPOConfig

    clock = LiveClock(speed=20.0, start_ns=T0)
    content = SimContent(Config(assets=("btc", "eth")), start_ns=T0,
                         end_ns=T0 + 30 * 60 * NS_PER_S, seed=SEED)  # fmt: skip

    async def main() -> LiveSession:
        async with VenueServers(content, clock=clock) as v:
            cfg = _cfg(v)
            fset = feature_set(cfg.features.feature_set)
            ppo = PPO(fset.dim, 3, PPOConfig(buffer_steps=32, minibatch_size=32, n_epochs=2),
                      seed=4)  # fmt: skip
            session = LiveSession(
                config=cfg, policy=OnlineTrainer(ppo, fset, 2), run_dir=tmp_path / "run",
                recording_root=tmp_path / "rec", clock=clock, adapters=default_adapters(cfg),
                run_config={"kind": "live", "train_online": True, "seed": 4},
            )  # fmt: skip
            stop = asyncio.Event()
            task = asyncio.create_task(session.run(stop=stop, install_signal_handlers=False))
            await asyncio.sleep(24.0)
            stop.set()
            await task
            return session

    session = asyncio.run(asyncio.wait_for(main(), 120))
    run = tmp_path / "run"
    assert session.trainer is not None and session.trainer.updates >= 2
    m = pl.read_parquet(run / "metrics.parquet").filter(pl.col("update").is_not_null())
    assert m.height == session.trainer.updates and "losses/policy" in m.columns
    ppo, meta = load_checkpoint(run / "checkpoints" / "last")
    assert meta["update"] == session.trainer.updates and meta["live"]
    with pytest.raises(ConfigError, match="trained online"):
        replay_live_run(run)


@pytest.mark.slow
def test_live_resume_continues_positions_tables_and_totals(tmp_path: Path) -> None:
    """Stop a live session with positions open in the 00:15 windows, start another with
    --resume minutes later: the first session's rows are kept as they were, the features
    are ready at once (warmed up from the recording, not five minutes later), the positions
    carried over settle at the 00:30 resolution once, and totals add up."""
    first = asyncio.run(
        asyncio.wait_for(_live(tmp_path, speed=20.0, seconds=38.0, dashboard=False), 180)
    )
    run = tmp_path / "run"
    trades1 = pl.read_parquet(run / "trades.parquet")
    dec1 = pl.read_parquet(run / "decisions.parquet")
    assert trades1.filter(pl.col("kind") == "open").height > 0
    assert first.last_tick_ns is not None
    roll, late = iso_to_ns("2024-06-01T00:15:00Z"), iso_to_ns("2024-06-01T00:24:00Z")
    assert roll < first.last_tick_ns < late
    held = json.loads((run / "state.json").read_text())
    assert any(held["engine"]["current"])

    restart = iso_to_ns("2024-06-01T00:25:00Z")
    second = asyncio.run(asyncio.wait_for(
        _live(tmp_path, speed=20.0, seconds=22.0, start_ns=restart, resume=True,
              dashboard=False), 180))  # fmt: skip
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed"] is True and second.resumed
    trades = pl.read_parquet(run / "trades.parquet")
    dec = pl.read_parquet(run / "decisions.parquet")
    assert trades.head(trades1.height).equals(trades1)
    assert dec.head(dec1.height).equals(dec1)
    new = dec.filter(pl.col("t_ns") >= restart)
    assert new.height > 0
    # Ready at once: tradable as soon as the books are synced after the restart (the CLOB
    # connects once discovery has fetched the markets), not after five minutes of warm-up.
    status = RecordingReader(tmp_path / "rec", streams=["recorder.status"]).read_stream(
        "recorder.status"
    )
    clob = status.filter(
        (pl.col("key") == CH_POLYMARKET_WS) & (pl.col("kind") == "connect")
        & (pl.col("recv_ns") >= restart)
    )  # fmt: skip
    t_books = int(clob["recv_ns"].min())
    first_tradable = int(new.filter(pl.col("tradable"))["t_ns"].min())
    assert first_tradable - t_books < 30 * NS_PER_S
    eps = pl.read_parquet(run / "episodes.parquet")
    w0 = eps.filter(pl.col("end_ns") == iso_to_ns("2024-06-01T00:30:00Z"))
    assert sorted(w0["asset"].to_list()) == ["btc", "eth"]
    # Settled from the venue's own resolution: Gamma's, or the CLOB market's when Gamma had
    # not answered closed within the recorder's polls (a loaded machine at 20x can get there).
    assert w0["outcome_source"].is_in(["gamma", "clob"]).all()
    # Each 00:15 episode counts the fills of both sessions in its window.
    for ep in w0.iter_rows(named=True):
        legs = trades.filter(
            (pl.col("condition_id") == ep["condition_id"])
            & (pl.col("kind") != "settle")
            & (pl.col("rejected") == 0)
        )
        assert ep["fills"] == legs.height
    assert summary["realized_pnl"] == pytest.approx(float(trades["realized_pnl"].sum()), abs=1e-6)


def test_live_cli_refuses_bad_input_before_connecting(tmp_path: Path) -> None:
    """User errors are one line on stderr, exit 1, and nothing is started or written."""
    from polyrl.rl.checkpoint import save_checkpoint
    from polyrl.rl.ppo import PPO, PPOConfig

    full = feature_set("full")
    ckpt = tmp_path / "ckpt"
    save_checkpoint(ckpt, PPO(full.dim, 3, PPOConfig(), seed=0),
                    {"feature_set": full.name, "feature_set_version": full.version})  # fmt: skip
    runs = str(tmp_path / "runs")
    cases = [
        (["--load", str(ckpt), "--strategy", "random"], "not both"),
        ([], "--load CKPT or --strategy NAME"),
        (["--train", "--strategy", "random"], "--train"),
        (["--strategy", "nope"], "nope"),
        (["--load", str(ckpt)], "feature set"),
        (["--strategy", "random", "--size", "1e9"], "--size"),
        (["--strategy", "random", "--resume", "--name", "none"], "state.json"),
    ]
    for args, needle in cases:
        res = run_cli("live", *args, "--runs", runs, "--out", str(tmp_path / "rec"), timeout=60)
        assert res.returncode == 1, (args, res.stderr)
        assert needle in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr, args
    assert not (tmp_path / "rec").exists()
