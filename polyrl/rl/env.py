"""The vectorised replay environment: many recorded episodes stepped in lockstep.

An episode is one asset's 15-minute window on one recorded day. Its steps are the window's
*tradable* decision ticks (the Engine forces HOLD everywhere else, so nothing the agent does
can matter there); its observation at each step is the cached market features of that
tick (the same FeatureEngine wrote them) plus the position features the PaperBroker
computes from its own state and the book at the tick; its actions fill through the same
PaperBroker code live mode runs, at the cached book as it stood when the order arrived;
its reward is the broker's (realized PnL by default); and it ends at settlement, with the
outcome the Engine would settle it with.

``N`` environments each play one episode at a time, drawing the next from a seeded order of
all episodes of the selected days (reshuffled every pass): the data cursor (pass, position)
and the broker state are part of :meth:`ReplayEnv.state_dict`, so a checkpoint resumes
exactly. Which episodes there are is :class:`~polyrl.rl.episodes.EpisodeStore`'s (those
that overlap a recording gap, or whose window could not be settled, are left out by
default); the trades and episodes rows each step yields are
:class:`~polyrl.rl.accounts.EpisodeAccounts`'.

With a fill latency of a tick or more (k = latency // tick whole ticks), an order stays in
flight for k ticks, during which the Engine forces HOLD on its market: the env fills the
order at once (at the book of its arrival, stamped with the arrival time) and skips the
episode's steps up to the tick that executes it, so the agent's next decision is the
Engine's next free one. An order that would arrive at or after the window's end is dropped.
With the shaped reward and k >= 1 the per-step rewards are attributed to the deciding step
(the Engine's online rewards arrive k ticks later); fills and PnL are the same.

A parity test holds this environment and the Engine together: for the same policy they make
the same decisions, fills and PnL.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from polyrl.broker import Books, BrokerConfig, MarketRules, PaperBroker
from polyrl.features.sets import FeatureSet
from polyrl.rl.accounts import EpisodeAccounts
from polyrl.rl.episodes import EpisodeStore

_STEP_ARRAYS = ("features", "top_px", "top_size", "fill_px", "fill_size")
"""Day-cache arrays [ticks, slots, ...] read on every step."""


class ReplayEnv:
    """``n_envs`` episodes in lockstep over an :class:`EpisodeStore` (see the module doc)."""

    EPISODE_BUFFER_BYTES = 64 * 2**20
    """Largest per-env episode buffer (all envs together) used; beyond it steps read the
    day caches directly."""

    def __init__(
        self,
        store: EpisodeStore,
        *,
        n_envs: int,
        fset: FeatureSet,
        broker: BrokerConfig,
        seed: int,
        latency_ns: int = 0,
        tick_ns: int = 500_000_000,
        min_notional: float = 1.0,
        order: str = "shuffle",
    ) -> None:
        if n_envs < 1:
            raise ValueError("n_envs must be >= 1")
        self.store = store
        self.N = n_envs
        self.fset = fset
        self.latency_ns = latency_ns
        self.tick_ns = tick_ns
        self.in_flight_ns = (latency_ns // tick_ns) * tick_ns
        """How long after its decision an order is executed (0 below one tick)."""
        self.min_notional = min_notional
        self.order = order
        self.seed = seed
        self.broker = PaperBroker(n_envs, broker)
        self._mix = np.array(fset.market_index)
        self._pix = np.array(fset.position_index)
        self.ep = np.full(n_envs, -1, dtype=np.int64)
        self.pos = np.zeros(n_envs, dtype=np.int64)
        self.pass_no = 0
        self.cursor = 0
        self._perm = self._permutation(0)
        self.episodes_done = 0
        self.record_trades = True
        # Per day, each cache array as a plain ndarray over (tick, slot) rows: one fancy index
        # per step instead of two, and no np.memmap wrapper work on every access.
        self._rows_of: dict[str, list[np.ndarray]] = {}
        for name in _STEP_ARRAYS:
            views = []
            for c in store.caches:
                a = np.asarray(c.arrays[name])
                views.append(a.reshape(a.shape[0] * a.shape[1], *a.shape[2:]))
            self._rows_of[name] = views
        self._tick_ns = [np.asarray(c.arrays["ticks"]) for c in store.caches]
        self._slots_per_day = np.array([c.arrays["features"].shape[1] for c in store.caches])
        self._info = store.info.rows(named=True)  # per-episode dicts, for the accounting rows
        self._acc = EpisodeAccounts(n_envs, store, self._info)
        self._end_ns = store.info["end_ns"].to_numpy()  # [E], for orders arriving too late
        # Small batches copy each episode's rows into a per-env buffer when it starts (a few
        # hundred microseconds per episode of ~1800 steps), so a step reads every array with
        # one index instead of one per day (about 10 us a step at 4 envs). Large batches
        # (evaluation plays every episode at once) read the day caches directly.
        max_len = int(store.length.max())
        row_bytes = 16 + sum(v[0].strides[0] for v in self._rows_of.values())
        self._buffered = n_envs * max_len * row_bytes <= self.EPISODE_BUFFER_BYTES
        self._buf: dict[str, np.ndarray] = {}
        if self._buffered:
            for name, views in self._rows_of.items():
                shape = (n_envs, max_len, *views[0].shape[1:])
                self._buf[name] = np.zeros(shape, dtype=views[0].dtype)
            self._buf["tick"] = np.zeros((n_envs, max_len), dtype=np.int64)
            self._buf["t_ns"] = np.zeros((n_envs, max_len), dtype=np.int64)
        self._envs = np.arange(n_envs)
        self._all_tradable = np.ones(n_envs, dtype=bool)  # every step is a tradable tick
        self._refresh_episodes()

    # -- episode order ---------------------------------------------------------------------

    def _permutation(self, pass_no: int) -> np.ndarray:
        if self.order == "sequential":
            return np.arange(self.store.n)
        return np.random.default_rng([self.seed, pass_no]).permutation(self.store.n)

    def _next_episode(self) -> int:
        if self.cursor >= self._perm.shape[0]:
            self.pass_no += 1
            self.cursor = 0
            self._perm = self._permutation(self.pass_no)
        e = int(self._perm[self.cursor])
        self.cursor += 1
        return e

    def _start(self, envs: np.ndarray) -> None:
        s = self.store
        for i in envs.tolist():
            self.ep[i] = self._next_episode()
            self.pos[i] = 0
        e = self.ep[envs]
        mask = np.zeros(self.N, dtype=bool)
        mask[envs] = True
        rules = MarketRules(
            fee_rate=np.zeros(self.N), fee_exponent=np.ones(self.N),
            fees_enabled=np.zeros(self.N, dtype=bool), min_size=np.zeros(self.N),
            min_notional=np.full(self.N, self.min_notional),
        )  # fmt: skip
        rules.fee_rate[envs] = s.fee_rate[e]
        rules.fee_exponent[envs] = s.fee_exponent[e]
        rules.fees_enabled[envs] = s.fees_enabled[e]
        rules.min_size[envs] = s.min_size[e]
        self.broker.set_rules(rules, mask)
        self.broker.reset(mask)
        self._acc.reset(envs)
        self._refresh_episodes(envs)

    # -- gathering ---------------------------------------------------------------------------

    def _refresh_episodes(self, envs: np.ndarray | None = None) -> None:
        """Recompute what depends only on each env's episode after the episodes of ``envs``
        (None: all) changed: its day, slot, first step, row stride, the envs grouped by day,
        and the buffered rows of the new episodes."""
        s = self.store
        ep = np.maximum(self.ep, 0)  # -1 before the first reset: any valid episode will do
        self._ep_day = s.day[ep]
        self._ep_slot = s.slot[ep]
        self._ep_first = s.first[ep]
        self._ep_len = s.length[ep]
        self._ep_stride = self._slots_per_day[self._ep_day]
        days = np.unique(self._ep_day)
        self._groups: list[tuple[int, np.ndarray | None]] = (
            [(int(days[0]), None)]
            if days.shape[0] == 1
            else [(int(d), np.flatnonzero(self._ep_day == d)) for d in days]
        )
        self._cursor: tuple[np.ndarray, np.ndarray] | None = None
        if self._buffered:
            for i in (self._envs if envs is None else envs).tolist():
                e = int(self.ep[i])
                if e < 0:
                    continue
                d, n, first = int(s.day[e]), int(s.length[e]), int(s.first[e])
                k = s.ticks[first : first + n]
                rows = k * int(self._slots_per_day[d]) + int(s.slot[e])
                for name, views in self._rows_of.items():
                    self._buf[name][i, :n] = views[d][rows]
                self._buf["tick"][i, :n] = k
                self._buf["t_ns"][i, :n] = self._tick_ns[d][k]

    def _current(self) -> tuple[np.ndarray, np.ndarray]:
        """(tick index within the day, row = tick * slots + slot) of every env's current step,
        cached until the envs move."""
        if self._cursor is None:
            if self._buffered:
                k = self._buf["tick"][self._envs, self.pos]
            else:
                k = self.store.ticks[self._ep_first + self.pos]
            self._cursor = (k, k * self._ep_stride + self._ep_slot)
        return self._cursor

    def _where(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(day, tick index within the day, slot) of every env's current step."""
        return self._ep_day, self._current()[0], self._ep_slot

    def _take(self, name: str) -> np.ndarray:
        """Cache array ``name`` at every env's current step (each from its own day): [N, ...]."""
        if self._buffered:
            return self._buf[name][self._envs, self.pos]
        rows = self._current()[1]
        per_day = self._rows_of[name]
        if self._groups[0][1] is None:
            return per_day[self._groups[0][0]][rows]
        first = per_day[0]
        out = np.empty((self.N, *first.shape[1:]), dtype=first.dtype)
        for d, idx in self._groups:
            out[idx] = per_day[d][rows[idx]]
        return out

    def observe(self) -> np.ndarray:
        """Observations of the current steps, float32 [N, F]."""
        obs = np.empty((self.N, self.fset.dim), dtype=np.float32)
        obs[:, self._mix] = self._take("features")
        top = Books(self._take("top_px")[..., None], self._take("top_size")[..., None])
        obs[:, self._pix] = self.broker.position_features(top)
        return obs

    def tick_times(self) -> np.ndarray:
        """ns time of every env's current step [N]."""
        if self._buffered:
            return self._buf["t_ns"][self._envs, self.pos]
        k = self._current()[0]
        if self._groups[0][1] is None:
            return self._tick_ns[self._groups[0][0]][k]
        t = np.empty(self.N, dtype=np.int64)
        for d, idx in self._groups:
            t[idx] = self._tick_ns[d][k[idx]]
        return t

    # -- the step ----------------------------------------------------------------------------

    def reset(self) -> np.ndarray:
        """Start every env on its first episode; returns the first observations."""
        self._start(np.arange(self.N))
        return self.observe()

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Apply ``actions`` [N]; returns (next obs [N, F], rewards [N], dones [N], info).

        ``info``: ``result`` (the broker's StepResult), ``t_ns`` [N] step times, ``episode``
        [N] episode ids of this step, ``trades`` (rows of the RunLog's trades table: the
        step's fills and settlements) and ``episodes`` (rows of the episodes table, one per
        episode that ended with this step).
        """
        t = self.tick_times()
        books = Books(self._take("fill_px"), self._take("fill_size"))
        episode = self.ep.copy()
        acts = np.asarray(actions, dtype=np.int64)
        held_before = self.broker.held.copy()
        sent = acts
        if self.in_flight_ns:
            # Executed at or after the window's end: the market no longer takes orders.
            late = t + self.in_flight_ns >= self._end_ns[self.ep]
            sent = np.where(late, 0, acts)
        result = self.broker.step(sent, books, self._all_tradable, t + self.latency_ns)
        rewards = result.rewards.copy()
        trades = (
            self._acc.fills(self.ep, self._ep_slot, result, held_before, acts)
            if self.record_trades
            else []
        )
        self.pos += 1
        if self.in_flight_ns:
            self._skip_in_flight(np.flatnonzero(acts != 0), t)
        self._cursor = None
        done = self.pos >= self._ep_len
        episodes: list[dict[str, Any]] = []
        if done.any():
            s = self.store
            win = s.settle[self.ep] & done
            if win.any():
                settled = self.broker.settle_detail(win, s.up_won[self.ep], s.split[self.ep])
                rewards += settled.pnl
                if self.record_trades:
                    trades += self._acc.settlements(self.ep, settled, t)
                else:
                    self._acc.pnl += settled.pnl
            # No outcome: the position is dropped without a payout and the episode row says
            # no_outcome with PnL null (as the Engine does), never PnL 0.
            void = done & ~s.settle[self.ep]
            if void.any():
                self.broker.reset(void)
            finished = np.flatnonzero(done)
            episodes = [self._acc.episode_row(int(self.ep[i]), int(i)) for i in finished]
            self.episodes_done += int(finished.shape[0])
            self._start(finished)
        info = {
            "result": result, "t_ns": t, "episode": episode, "trades": trades,
            "episodes": episodes,
        }  # fmt: skip
        return self.observe(), rewards, done, info

    def _skip_in_flight(self, envs: np.ndarray, t: np.ndarray) -> None:
        """Move ``envs`` past the steps at which their order is still in flight."""
        for i in envs.tolist():
            n = int(self._ep_len[i])
            until = int(t[i]) + self.in_flight_ns
            while self.pos[i] < n and self._tick_at(i, int(self.pos[i])) <= until:
                self.pos[i] += 1

    def _tick_at(self, i: int, pos: int) -> int:
        if self._buffered:
            return int(self._buf["t_ns"][i, pos])
        k = int(self.store.ticks[int(self._ep_first[i]) + pos])
        return int(self._tick_ns[int(self._ep_day[i])][k])

    # -- checkpointing -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Cursor, per-env episode pointers and broker state (exact resume)."""
        return {
            "pass_no": self.pass_no,
            "cursor": self.cursor,
            "ep": self.ep.tolist(),
            "pos": self.pos.tolist(),
            "episodes_done": self.episodes_done,
            "broker": {k: v.tolist() for k, v in self.broker.state_dict().items()},
            "accounts": self._acc.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pass_no = int(state["pass_no"])
        self.cursor = int(state["cursor"])
        self._perm = self._permutation(self.pass_no)
        self.ep = np.array(state["ep"], dtype=np.int64)
        self.pos = np.array(state["pos"], dtype=np.int64)
        self.episodes_done = int(state["episodes_done"])
        self._refresh_episodes()
        ref = self.broker.state_dict()
        self.broker.load_state_dict(
            {k: np.array(v, dtype=ref[k].dtype) for k, v in state["broker"].items()}
        )
        if "accounts" in state:  # older checkpoints lack it: episodes in play restart at zero
            self._acc.load_state_dict(state["accounts"])


def evaluate(
    store: EpisodeStore,
    policy: Any,
    *,
    fset: FeatureSet,
    broker: BrokerConfig,
    latency_ns: int = 0,
    tick_ns: int = 500_000_000,
    min_notional: float = 1.0,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Play every episode of ``store`` exactly once with ``policy`` (all in parallel).

    Returns (trades, episodes) in the RunLog's schemas, so the statistics and reports of a
    backtest apply unchanged.
    """
    from polyrl.runlog import EPISODES, TRADES

    E = store.n
    env = ReplayEnv(
        store,
        n_envs=E,
        fset=fset,
        broker=broker,
        seed=0,
        latency_ns=latency_ns,
        tick_ns=tick_ns,
        min_notional=min_notional,
        order="sequential",
    )
    obs = env.reset()
    live = np.ones(E, dtype=bool)  # env i still plays its first (and only counted) episode
    trades: list[dict[str, Any]] = []
    episodes: list[dict[str, Any]] = []
    while live.any():
        actions = np.where(live, np.asarray(policy.act(obs, live), dtype=np.int64), 0)
        first_pass = live.copy()
        obs, _, done, info = env.step(actions)
        trades += [r for r in info["trades"] if first_pass[r["env"]]]
        episodes += [r for r in info["episodes"] if first_pass[r["env"]]]
        live &= ~done
    ep = (
        pl.DataFrame(episodes)
        .sort("episode")
        .select([pl.col(c).cast(t) for c, t in EPISODES.items()])
    )
    tr = pl.DataFrame({c: [r[c] for r in trades] for c in TRADES}, schema=TRADES).sort(
        ["t_ns", "slot"], maintain_order=True
    )
    return tr, ep
