"""Live paper trading: the recorder's events -> the shared Engine, on the wall-clock grid.

A :class:`LiveSession` runs, in one asyncio loop, the Recorder (every venue adapter, the
write-ahead log, Parquet: everything the session sees is recorded) and a decision loop on
the live clock's 500 ms grid. Each received event is handed to the session as the recorder
parses it; at tick ``t`` (once the clock has passed ``t`` plus the fill latency) the events
received at or before that time are turned into one columnar batch, the FeatureEngine ingests
it and observes tick ``t``, and the Engine decides and fills exactly as in replay. Nothing
the decisions use is absent from the recording: ``polyrl parity RUN`` replays it and must
find the same decisions, fills and PnL.

Per tick the session measures tick-to-decision latency (from the tick instant to final
actions, real seconds) and, every minute of clock time, writes a metrics row (latency
p50/p99, fills, realized PnL) and flushes the run's files. SIGINT/SIGTERM stops both loops;
the run files, the broker's positions and the parked positions are saved (``state.json``) and
the recording flushed; ``--resume`` reloads that state and warms the features up from the
last hour of the recording.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polyrl.broker import PaperBroker
from polyrl.clock import LiveClock, next_grid_ns
from polyrl.config import Config, to_dict
from polyrl.engine import Engine, TickObs
from polyrl.errors import ConfigError
from polyrl.events import NS_PER_S, Event
from polyrl.features.engine import FeatureEngine, ObsBatch
from polyrl.features.sets import feature_set
from polyrl.features.streams import refusal
from polyrl.recording.provenance import describe_entry, recorded_entry
from polyrl.recording.reader import MergedBatch
from polyrl.recording.recorder import Recorder
from polyrl.runlog import RunLog, atomic_write_bytes
from polyrl.sources.binance.ws import futures_market_streams, spot_streams
from polyrl.sources.sink import SourceAdapter

METRIC_EVERY_NS = 60 * NS_PER_S

_WIRE_KINDS = {"aggTrade": "trade", "bookTicker": "book_ticker", "depth": "depth",
               "markPrice": "mark", "forceOrder": "liquidation"}  # fmt: skip
"""Binance combined-stream kinds -> the stream id's last part (``depth5`` is ``depth``)."""
_POLLED_AND_OTHER = (
    "binance.spot.kline",  # the spot adapter's REST 1 m warm-up at start
    "binance.futures.open_interest",  # the futures adapter's poller
    "polymarket.market", "polymarket.book", "polymarket.price_change", "polymarket.trade",
    "polymarket.tick_size", "polymarket.best_bid_ask", "polymarket.resolution",
    "reference.price",  # the RTDS reference adapter
)  # fmt: skip


def live_streams(config: Config) -> frozenset[str]:
    """The streams a live session records with the default adapters
    (:func:`polyrl.sources.adapters.default_adapters`): the Binance spot and USD-M combined
    streams as the adapters subscribe them (read from their own subscription lists), the
    REST kline warm-up, the open-interest poller, Polymarket's market channel, discovery and
    resolutions, and the RTDS reference feed. Today every adapter is always started and
    subscribes every kind for every asset, so every stream a built-in feature set needs is
    here and :func:`check_live_streams` refuses none of them; it refuses a set that needs a
    stream no adapter subscribes (a futures book, say) before a session starts."""
    out = set(_POLLED_AND_OTHER)
    for venue, names in (("spot", spot_streams(config.assets, config.sources)),
                         ("futures", futures_market_streams(config.assets))):  # fmt: skip
        for name in names:
            kind = name.split("@")[1].rstrip("0123456789")
            if kind in _WIRE_KINDS:
                out.add(f"binance.{venue}.{_WIRE_KINDS[kind]}")
    return frozenset(out)


def check_live_streams(config: Config, streams: frozenset[str] | None = None) -> None:
    """Refuse, before a live session starts, a feature set that needs a stream the live
    sources (``streams``, default :func:`live_streams`) do not record: a one-line
    :class:`ConfigError` naming the streams, the features and the sets that would work."""
    fset = feature_set(config.features.feature_set)
    got = live_streams(config) if streams is None else streams
    msg = refusal(fset, {"the live subscriptions": set(got)}, "the live sources")
    if msg is not None:
        raise ConfigError(msg)


PREPARE_LEAD_S = 0.003
"""How long before each tick the decision loop wakes to ingest what has arrived (real s)."""


@dataclass(slots=True)
class LatencyStats:
    """Tick-to-decision latencies (real seconds) of the current metrics window and all."""

    window: list[float] = field(default_factory=list)
    recent: list[float] = field(default_factory=list)

    def add(self, s: float) -> None:
        self.window.append(s)
        self.recent.append(s)
        if len(self.recent) > 2000:
            del self.recent[:1000]

    @staticmethod
    def pct(xs: list[float], q: float) -> float:
        return float(np.quantile(np.asarray(xs), q)) if xs else float("nan")


class LiveSession:
    """One live paper-trading session (see the module doc)."""

    def __init__(
        self,
        *,
        config: Config,
        policy: Any,
        run_dir: Path,
        recording_root: Path,
        clock: LiveClock,
        adapters: list[SourceAdapter],
        run_config: dict[str, Any],
        on_tick: Callable[[LiveSession], None] | None = None,
    ) -> None:
        self.config = config
        self.policy = policy
        self.clock = clock
        self.adapters = adapters
        self.run_dir = Path(run_dir)
        self.tick_ns = config.engine.tick_ns
        self.latency_ns = config.engine.latency_ns
        self.fset = feature_set(config.features.feature_set)
        self.assets = tuple(config.assets)
        self.fe = FeatureEngine(self.assets, config.features, fill_latency_ns=self.latency_ns)
        self.runlog = RunLog(self.run_dir, config=run_config, overwrite=True)
        timeout = int(config.engine.resolution_timeout_s * NS_PER_S)
        self.engine = Engine(
            assets=self.assets,
            fset=self.fset,
            policy=policy,
            broker=PaperBroker(len(self.assets), config.broker),
            windows=lambda i: self.fe.windows[i],
            outcome=lambda w, t: self.fe.settle_outcome(w, t, timeout),
            runlog=self.runlog,
            config=config.engine,
        )
        self.trainer = policy if hasattr(policy, "take_rollout") else None
        if self.trainer is not None:
            self.engine.on_roll = self.trainer.episode_end
            self.engine.on_settle = self.trainer.settled
        self.rl_metrics: dict[str, Any] = {}
        self._queue: list[Event] = []
        self.provenance = recorded_entry(config.sources, by="polyrl live", clock_speed=clock.speed)
        self.recorder = Recorder(
            recording_root,
            config=config.recording,
            clock=clock,
            listeners=[self._queue.append],
            provenance=self.provenance,
        )
        self.latency = LatencyStats()
        self.on_tick = on_tick
        self.ticks = 0
        self.first_seq: int | None = None
        self.last_seq: int | None = None
        self.first_tick_ns: int | None = None
        self.last_tick_ns: int | None = None
        self.last_obs: ObsBatch | None = None
        self._next_metric_ns: int | None = None
        self._fills_window = 0
        self.resumed = False
        self.mid_history: dict[str, list[tuple[int, float]]] = {}
        """Per asset, recent (tick, Up mid): the dashboard's velocity."""
        self._next_snapshot_ns = 0

    # -- the decision loop --------------------------------------------------------------------

    def _take(self, upto_ns: int) -> list[Event]:
        """Queued events received at or before ``upto_ns`` (they arrive in that order)."""
        q = self._queue
        k = 0
        n = len(q)
        while k < n and q[k].recv_ns <= upto_ns:
            k += 1
        out = q[:k]
        del q[:k]
        return out

    def ingest_upto(self, upto_ns: int) -> None:
        """Feed the FeatureEngine the queued events received at or before ``upto_ns``."""
        events = self._take(upto_ns)
        if events:
            if self.first_seq is None:
                self.first_seq = events[0].seq
            self.last_seq = events[-1].seq
            self.fe.ingest(MergedBatch.from_events(events))

    def tick(self, t: int) -> np.ndarray:
        """Decide at tick ``t`` (call once the clock has passed t + fill latency)."""
        self.ingest_upto(t + self.latency_ns)
        o = self.fe.observe(t)
        obs = TickObs(
            t_ns=t, features=o.features[0], tradable=o.tradable[0], window=o.window[0],
            top_px=o.book_px[0, ..., 0], top_size=o.book_size[0, ..., 0],
            fill_px=o.fill_px[0], fill_size=o.fill_size[0],
        )  # fmt: skip
        fills_before = self.engine.totals.fills
        actions = self.engine.step(obs)
        decided = self.clock.now_ns()
        if self.trainer is not None:
            self.trainer.rewards(self.engine.last_rewards, obs.window)
            self.rl_metrics["buffer"] = self.trainer.progress
        self.latency.add((decided - t) / NS_PER_S / self.clock.speed)
        self._fills_window += self.engine.totals.fills - fills_before
        self.ticks += 1
        if self.first_tick_ns is None:
            self.first_tick_ns = t
        self.last_tick_ns = t
        self.last_obs = o
        if self._next_metric_ns is None:
            self._next_metric_ns = t + METRIC_EVERY_NS
        elif t >= self._next_metric_ns:
            self._metrics(t)
            self._next_metric_ns = t + METRIC_EVERY_NS
        if t >= self._next_snapshot_ns:
            self.write_snapshot()
            self._next_snapshot_ns = t + NS_PER_S
        if self.on_tick is not None:
            self.on_tick(self)
        return actions

    def write_snapshot(self, *, finished: bool = False) -> None:
        """``live.json``: what the dashboard of another process shows (rewritten each second,
        and once more by :meth:`finish`, marked finished)."""
        from polyrl.dashboard.state import session_snapshot

        self.snapshot = session_snapshot(self, finished=finished)
        atomic_write_bytes(self.run_dir / "live.json", json.dumps(self.snapshot).encode())

    def _metrics(self, t: int) -> None:
        tot = self.engine.totals
        self.runlog.metric({
            "t_ns": t,
            "ticks": self.ticks,
            "latency/p50_ms": 1e3 * LatencyStats.pct(self.latency.window, 0.5),
            "latency/p99_ms": 1e3 * LatencyStats.pct(self.latency.window, 0.99),
            "charts/fills": self._fills_window,
            "pnl/realized": tot.realized,
            "pnl/fees": tot.fees,
            "charts/settled": tot.settled,
        })  # fmt: skip
        self.latency.window.clear()
        self._fills_window = 0
        self.runlog.flush()
        self.save_state()

    async def _decide(self, stop: asyncio.Event) -> None:
        t = next_grid_ns(self.clock.now_ns(), self.tick_ns)
        lead = int(PREPARE_LEAD_S * NS_PER_S * self.clock.speed)
        while not stop.is_set():
            due = t + self.latency_ns
            # Wake a little early, ingest what has arrived, then wait out the last moments
            # on the clock itself (an event-loop timer can fire a millisecond late): the
            # tick's own work is then only the last few events, the features and the policy.
            await self.clock.sleep_until(due - lead)
            if stop.is_set():
                break
            self.ingest_upto(self.clock.now_ns())
            self.clock.spin_until(due)
            self.tick(t)
            if self.trainer is not None and self.trainer.ready():
                await self._train_once()
            now = self.clock.now_ns()
            # Live ticks never bunch up: if the loop fell behind, skip to the next grid point.
            t = max(
                t + self.tick_ns, next_grid_ns(now - self.latency_ns - self.tick_ns, self.tick_ns)
            )

    async def _train_once(self) -> None:
        """One PPO update on a worker thread (the recorder keeps receiving), then a
        checkpoint and a metrics row."""
        from polyrl.rl.checkpoint import save_checkpoint

        trainer = self.trainer
        assert trainer is not None
        rollout = trainer.take_rollout()
        metrics = await asyncio.to_thread(trainer.update, rollout)
        meta = {
            "feature_set": self.fset.name,
            "feature_set_version": self.fset.version,
            "update": trainer.updates,
            "config": to_dict(self.config),
            "live": True,
        }
        await asyncio.to_thread(save_checkpoint, self.run_dir / "checkpoints" / "last",
                                trainer.ppo, meta)  # fmt: skip
        self.rl_metrics = {**metrics, "buffer": trainer.progress, "update": trainer.updates}
        self.runlog.metric({"t_ns": self.last_tick_ns, "update": trainer.updates, **metrics})

    async def run(self, *, duration_s: float | None = None, stop: asyncio.Event | None = None,
                  install_signal_handlers: bool = True) -> None:  # fmt: skip
        """Record and trade until ``stop``, ``duration_s`` (clock seconds) or a signal."""
        stop = stop or asyncio.Event()
        rec = asyncio.create_task(
            self.recorder.run(
                self.adapters,
                duration_s=duration_s,
                stop=stop,
                install_signal_handlers=install_signal_handlers,
            )  # fmt: skip
        )
        dec = asyncio.create_task(self._decide(stop))
        try:
            await rec  # returns on stop, signal or duration; raises on recorder failure
        finally:
            stop.set()
            dec.cancel()
            await asyncio.gather(dec, return_exceptions=True)
            self.finish()

    # -- end, state, resume ---------------------------------------------------------------------

    def finish(self) -> dict[str, Any]:
        """Write every run file (positions saved for a resume) and the summary."""
        if self.last_tick_ns is not None:
            self._metrics(self.last_tick_ns)
        self.save_state()
        tot = self.engine.totals
        summary = self.runlog.finish({
            "kind": "live",
            "resumed": self.resumed,
            "policy": getattr(self.policy, "name", type(self.policy).__name__),
            "recording_root": str(self.recorder.root),
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "first_tick_ns": self.first_tick_ns,
            "last_tick_ns": self.last_tick_ns,
            "ticks": self.ticks,
            "fills": tot.fills,
            "realized_pnl": tot.realized,
            "fees": tot.fees,
            "latency_ms_p50": 1e3 * LatencyStats.pct(self.latency.recent, 0.5),
            "latency_ms_p99": 1e3 * LatencyStats.pct(self.latency.recent, 0.99),
            "config": to_dict(self.config),
            # What data the session traded on: what it recorded itself, live.
            "data": {"text": describe_entry(self.provenance), "kinds": ["recorded"],
                     "sources": [self.provenance]},
        })  # fmt: skip
        self.write_snapshot(finished=True)
        return summary

    def save_state(self) -> None:
        """Positions and the episodes in play, for ``polyrl live --resume``."""
        state = {
            "engine": self.engine.state_dict(),
            "last_tick_ns": self.last_tick_ns,
        }  # fmt: skip
        atomic_write_bytes(self.run_dir / "state.json", json.dumps(state).encode())

    def warm_up(self, recording_root: Path, since_ns: int) -> int:
        """Feed the FeatureEngine the recording from ``since_ns`` on (no ticks): features are
        ready at once after a restart. Returns the events ingested."""
        from polyrl.errors import RecordingError
        from polyrl.events import partition_of
        from polyrl.recording.reader import RecordingReader

        n = 0
        try:
            dates = sorted({partition_of(since_ns)[0], partition_of(self.clock.now_ns())[0]})
            reader = RecordingReader(recording_root, dates=dates)
        except RecordingError:
            return 0
        last = None
        for b in reader.batches():
            keep = b.recv_ns >= since_ns
            if keep.any():
                part = b.slice(int(np.argmax(keep)))
                self.fe.ingest(part)
                n += len(part)
                last = int(part.recv_ns[-1])
        if last is not None:
            self.fe.catch_up(last)
        return n

    def resume_from(self, run_dir: Path) -> None:
        """Continue a stopped run: its tables, totals, open and parked positions.

        The FeatureEngine is warmed up from the recording (back to the oldest window that
        may still be waiting for its resolution), so features are ready at the first tick
        and every window the saved state names is known again.
        """
        import polars as pl

        from polyrl.errors import CheckpointError

        state_path = Path(run_dir) / "state.json"
        try:
            state = json.loads(state_path.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"cannot resume: {state_path}: {e}") from None
        if "engine" not in state:
            raise CheckpointError(f"cannot resume: {state_path} holds no engine state")
        for table in ("decisions", "trades", "episodes"):
            p = Path(run_dir) / f"{table}.parquet"
            if p.exists():
                self.runlog.add_columns(table, pl.read_parquet(p).to_dict(as_series=False))
        p = Path(run_dir) / "metrics.parquet"
        if p.exists():
            self.runlog.metrics = pl.read_parquet(p).to_dicts()
        last = state.get("last_tick_ns")
        if last is not None:
            back = int((self.config.engine.resolution_timeout_s + 1800) * NS_PER_S)
            self.warm_up(self.recorder.root, last - back)
        windows = {w.condition_id: w for w in self.fe.windows}
        try:
            self.engine.load_state_dict(state["engine"], windows)
        except CheckpointError as e:
            raise CheckpointError(
                f"cannot resume from {state_path}: {e} (recording under {self.recorder.root})"
            ) from None
        self.resumed = True
