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
exactly. Episodes that overlap a recording gap, or whose window could not be settled, are
left out by default.

A parity test holds this environment and the Engine together: for the same policy they make
the same decisions, fills and PnL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from polyrl.broker import Books, BrokerConfig, MarketRules, PaperBroker
from polyrl.errors import RecordingError
from polyrl.features.cache import DayCache
from polyrl.features.sets import FeatureSet


@dataclass(slots=True)
class EpisodeStore:
    """Every playable episode of a set of day caches.

    Per episode (arrays [E]): ``day``, ``slot``, ``window`` (row of that day's windows
    table), ``first`` (offset into ``ticks``) and ``length`` (tradable ticks), ``up_won``,
    ``settle`` (False: void, no payout) and the venue rules; ``ticks`` [sum of lengths] holds
    each step's tick index within its day.
    """

    caches: list[DayCache]
    day: np.ndarray
    slot: np.ndarray
    window: np.ndarray
    first: np.ndarray
    length: np.ndarray
    up_won: np.ndarray
    settle: np.ndarray
    fee_rate: np.ndarray
    fee_exponent: np.ndarray
    fees_enabled: np.ndarray
    min_size: np.ndarray
    ticks: np.ndarray
    info: pl.DataFrame

    @property
    def n(self) -> int:
        return int(self.day.shape[0])

    @classmethod
    def build(
        cls,
        caches: Sequence[DayCache],
        *,
        exclude_gap: bool = True,
        exclude_missing: bool = True,
    ) -> EpisodeStore:
        """Collect the episodes; an empty selection is an error naming the days."""
        cols: dict[str, list[Any]] = {k: [] for k in (
            "day", "slot", "window", "first", "length", "up_won", "settle", "fee_rate",
            "fee_exponent", "fees_enabled", "min_size")}  # fmt: skip
        info: dict[str, list[Any]] = {k: [] for k in (
            "date", "asset", "condition_id", "slug", "start_ns", "end_ns", "outcome",
            "outcome_source", "gap", "steps")}  # fmt: skip
        ticks: list[np.ndarray] = []
        offset = 0
        for d, c in enumerate(caches):
            window = np.asarray(c.arrays["window"])
            tradable = np.asarray(c.arrays["tradable"])
            wins = c.windows
            for row in wins.iter_rows(named=True):
                if exclude_gap and row["gap"]:
                    continue
                outcome = row["outcome"]
                decided = outcome in ("Up", "Down")
                if exclude_missing and not decided:
                    continue
                ks = np.flatnonzero(
                    (window[:, row["slot"]] == row["index"]) & tradable[:, row["slot"]]
                )
                if ks.shape[0] == 0:
                    continue
                cols["day"].append(d)
                cols["slot"].append(row["slot"])
                cols["window"].append(row["index"])
                cols["first"].append(offset)
                cols["length"].append(int(ks.shape[0]))
                cols["up_won"].append(outcome == "Up")
                cols["settle"].append(decided)
                cols["fee_rate"].append(row["fee_rate"])
                cols["fee_exponent"].append(row["fee_exponent"])
                cols["fees_enabled"].append(row["fees_enabled"])
                cols["min_size"].append(row["min_size"])
                for k in (
                    "asset",
                    "condition_id",
                    "slug",
                    "start_ns",
                    "end_ns",
                    "outcome",
                    "outcome_source",
                    "gap",
                ):
                    info[k].append(row[k])
                info["date"].append(c.date)
                info["steps"].append(int(ks.shape[0]))
                ticks.append(ks.astype(np.int64))
                offset += int(ks.shape[0])
        if not cols["day"]:
            days = ", ".join(c.date for c in caches) or "none"
            raise RecordingError(f"no playable episodes in the selected days ({days})")
        return cls(
            caches=list(caches),
            day=np.array(cols["day"], dtype=np.int64),
            slot=np.array(cols["slot"], dtype=np.int64),
            window=np.array(cols["window"], dtype=np.int64),
            first=np.array(cols["first"], dtype=np.int64),
            length=np.array(cols["length"], dtype=np.int64),
            up_won=np.array(cols["up_won"], dtype=bool),
            settle=np.array(cols["settle"], dtype=bool),
            fee_rate=np.array(cols["fee_rate"], dtype=np.float64),
            fee_exponent=np.array(cols["fee_exponent"], dtype=np.float64),
            fees_enabled=np.array(cols["fees_enabled"], dtype=bool),
            min_size=np.array(cols["min_size"], dtype=np.float64),
            ticks=np.concatenate(ticks),
            info=pl.DataFrame(info),
        )


class ReplayEnv:
    """``n_envs`` episodes in lockstep over an :class:`EpisodeStore` (see the module doc)."""

    def __init__(
        self,
        store: EpisodeStore,
        *,
        n_envs: int,
        fset: FeatureSet,
        broker: BrokerConfig,
        seed: int,
        latency_ns: int = 0,
        min_notional: float = 1.0,
        order: str = "shuffle",
    ) -> None:
        if n_envs < 1:
            raise ValueError("n_envs must be >= 1")
        self.store = store
        self.N = n_envs
        self.fset = fset
        self.latency_ns = latency_ns
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
        self._acc = _Accounts(n_envs)
        self.record_trades = True

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

    # -- gathering ---------------------------------------------------------------------------

    def _where(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(day, tick index within the day, slot) of every env's current step."""
        s = self.store
        return s.day[self.ep], s.ticks[s.first[self.ep] + self.pos], s.slot[self.ep]

    def _gather(self, name: str, day: np.ndarray, k: np.ndarray, slot: np.ndarray) -> np.ndarray:
        first = np.asarray(self.store.caches[0].arrays[name])
        out = np.empty((self.N, *first.shape[2:]), dtype=first.dtype)
        for d in np.unique(day).tolist():
            m = day == d
            arr = self.store.caches[d].arrays[name]
            out[m] = arr[k[m], slot[m]]
        return out

    def observe(self) -> np.ndarray:
        """Observations of the current steps, float32 [N, F]."""
        day, k, slot = self._where()
        obs = np.empty((self.N, self.fset.dim), dtype=np.float32)
        obs[:, self._mix] = self._gather("features", day, k, slot)
        top = Books(
            self._gather("top_px", day, k, slot)[..., None],
            self._gather("top_size", day, k, slot)[..., None],
        )
        obs[:, self._pix] = self.broker.position_features(top)
        return obs

    def tick_times(self) -> np.ndarray:
        """ns time of every env's current step [N]."""
        day, k, _ = self._where()
        t = np.empty(self.N, dtype=np.int64)
        for d in np.unique(day).tolist():
            m = day == d
            t[m] = np.asarray(self.store.caches[d].arrays["ticks"])[k[m]]
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
        day, k, slot = self._where()
        t = self.tick_times()
        books = Books(
            self._gather("fill_px", day, k, slot).astype(np.float64),
            self._gather("fill_size", day, k, slot).astype(np.float64),
        )
        episode = self.ep.copy()
        acts = np.asarray(actions, dtype=np.int64)
        held_before = self.broker.held.copy()
        result = self.broker.step(acts, books, np.ones(self.N, dtype=bool), t + self.latency_ns)
        rewards = result.rewards.copy()
        trades = self._acc.fills(self, result, held_before, acts) if self.record_trades else []
        self.pos += 1
        done = self.pos >= self.store.length[self.ep]
        episodes: list[dict[str, Any]] = []
        if done.any():
            s = self.store
            win = s.settle[self.ep] & done
            if win.any():
                settled = self.broker.settle_detail(win, s.up_won[self.ep])
                rewards += settled.pnl
                if self.record_trades:
                    trades += self._acc.settlements(self, settled, t)
                else:
                    self._acc.pnl += settled.pnl
            void = done & ~s.settle[self.ep]
            if void.any():
                self.broker.reset(void)
            finished = np.flatnonzero(done)
            episodes = [self._acc.episode_row(self, int(i), int(t[i])) for i in finished]
            self.episodes_done += int(finished.shape[0])
            self._start(finished)
        info = {
            "result": result, "t_ns": t, "episode": episode, "trades": trades,
            "episodes": episodes,
        }  # fmt: skip
        return self.observe(), rewards, done, info

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
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pass_no = int(state["pass_no"])
        self.cursor = int(state["cursor"])
        self._perm = self._permutation(self.pass_no)
        self.ep = np.array(state["ep"], dtype=np.int64)
        self.pos = np.array(state["pos"], dtype=np.int64)
        self.episodes_done = int(state["episodes_done"])
        ref = self.broker.state_dict()
        self.broker.load_state_dict(
            {k: np.array(v, dtype=ref[k].dtype) for k, v in state["broker"].items()}
        )


class _Accounts:
    """Per-env accounting of the episode in play: the RunLog's trades and episodes rows."""

    TOKENS = ("Up", "Down")
    ACTIONS = {"HOLD": 0, "BUY": 1, "SELL": 2}

    def __init__(self, n: int) -> None:
        self.pnl = np.zeros(n)
        self.fees = np.zeros(n)
        self.fills_n = np.zeros(n, dtype=np.int64)
        self.orders = np.zeros(n, dtype=np.int64)
        self.first_ns = np.full(n, -1, dtype=np.int64)
        self.first_left = np.full(n, np.nan)
        self.first_px = np.full(n, np.nan)
        self.first_tok: list[str | None] = [None] * n

    def reset(self, envs: np.ndarray) -> None:
        self.pnl[envs] = 0.0
        self.fees[envs] = 0.0
        self.first_left[envs] = np.nan
        self.first_px[envs] = np.nan
        self.fills_n[envs] = 0
        self.orders[envs] = 0
        self.first_ns[envs] = -1
        for i in envs.tolist():
            self.first_tok[i] = None

    def _row(self, env: ReplayEnv, e: int, row: dict[str, Any], kind: str) -> dict[str, Any]:
        info = env.store.info.row(e, named=True)
        pnl = row["realized_pnl"]
        return {
            "env": row["market"], "t_ns": row["t_ns"], "slot": int(env.store.slot[e]),
            "asset": info["asset"],
            "condition_id": info["condition_id"], "slug": info["slug"], "kind": kind,
            "action": self.ACTIONS.get(row["action"], -1),
            "token": self.TOKENS[row["token"]], "side": row["side"], "shares": row["shares"],
            "avg_price": row["avg_price"], "notional": row["notional"], "fee": row["fee"],
            "levels": row["levels"], "partial": row["partial"], "rejected": row["reject"],
            "realized_pnl": pnl if pnl is not None else 0.0,
        }  # fmt: skip

    def fills(
        self, env: ReplayEnv, res: Any, held_before: np.ndarray, acts: np.ndarray
    ) -> list[dict[str, Any]]:
        self.orders += acts != 0
        out = []
        for row in res.trade_rows():
            i = row["market"]
            e = int(env.ep[i])
            if row["side"] < 0:
                kind = "close"
            else:
                kind = "add" if held_before[i] == row["token"] else "open"
            out.append(self._row(env, e, row, kind))
            self.fills_n[i] += 1
            self.fees[i] += row["fee"]
            if row["realized_pnl"] is not None:
                self.pnl[i] += row["realized_pnl"]
            if row["side"] > 0 and self.first_ns[i] < 0:
                info = env.store.info.row(e, named=True)
                self.first_ns[i] = row["t_ns"]
                span = info["end_ns"] - info["start_ns"]
                self.first_left[i] = (info["end_ns"] - row["t_ns"]) / span
                self.first_px[i] = row["avg_price"]
                self.first_tok[i] = self.TOKENS[row["token"]]
        return out

    def settlements(self, env: ReplayEnv, settled: Any, t: np.ndarray) -> list[dict[str, Any]]:
        out = []
        for row in settled.trade_rows(t):
            i = row["market"]
            out.append(self._row(env, int(env.ep[i]), row, "settle"))
            self.pnl[i] += row["realized_pnl"]
        return out

    def episode_row(self, env: ReplayEnv, i: int, t: int) -> dict[str, Any]:
        e = int(env.ep[i])
        info = env.store.info.row(e, named=True)
        return {
            "slot": int(env.store.slot[e]), "asset": info["asset"],
            "condition_id": info["condition_id"], "slug": info["slug"],
            "start_ns": info["start_ns"], "end_ns": info["end_ns"],
            "outcome": info["outcome"], "outcome_source": info["outcome_source"],
            "gap": info["gap"], "settled_ns": info["end_ns"], "orders": int(self.orders[i]),
            "fills": int(self.fills_n[i]), "pnl": float(self.pnl[i]),
            "fees": float(self.fees[i]), "first_entry_ns": int(self.first_ns[i]),
            "first_entry_time_left": float(self.first_left[i]),
            "first_entry_price": float(self.first_px[i]),
            "first_entry_token": self.first_tok[i], "episode": e, "env": i,
        }  # fmt: skip


def evaluate(
    store: EpisodeStore,
    policy: Any,
    *,
    fset: FeatureSet,
    broker: BrokerConfig,
    latency_ns: int = 0,
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
