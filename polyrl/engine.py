"""The Engine: clock + events -> features -> policy -> broker -> run log. Live and replay.

The Engine never reads the wall clock or a socket. It is handed, tick by tick, the market
part of the observation (:class:`TickObs`: features, readiness, books — from the
FeatureEngine live, or from the per-day cache in replay, which the same FeatureEngine
wrote) and does the agent-dependent part the same way in both modes:

1. settle positions of ended windows whose outcome is known by now (the recorded
   resolution, or after ``resolution_timeout_s`` the verdict of the market's own reference
   feed, flagged ``reference_stale`` / ``reference_mismatch`` in its episode row);
2. roll slots whose window changed: a position still open is parked (split off the
   broker) until its window settles; the slot starts the new window flat;
3. add the position features (from the broker and the book at the tick) to the market
   features, ask the policy for one action per market, force HOLD where the market is not
   tradable or still has an order in flight, and send the orders; each order fills through
   the PaperBroker at the book as it stands when it arrives (tick + fill latency);
4. log the decision of every market, every fill, and each window's episode when it settles.

A window resolved 50-50 (``split``) pays $0.50 a share of either token. A window without a
recorded resolution and without usable reference ticks has no outcome (source ``missing``):
its episode row is flagged ``no_outcome`` with PnL null, never a refund booked as PnL 0, so
that statistics leave it out and count it.

**Latency.** An order decided at tick t arrives at t + L and fills at the book as it stood
then (the observation carries that book). It is executed in the step of the last tick at or
before its arrival, after that tick's decisions: with L below one tick, in the step that
decided it (the decision at the next tick already sees the fill); with L of k ticks or more
(k = L // tick), k ticks later. Until it has been executed the order is *in flight*: its
market's position is the one before it, and the market is not tradable (HOLD is forced), so
a later decision can neither count it twice nor race it. An order that would arrive at or
after its window's end is dropped (the market no longer takes orders); it still counts as
an order of its episode.

Kept whole at about 500 lines: the loop, its config and input contract (conventions keep
those beside it) and its checkpoint state (which reads the loop's private episodes and orders)
are one idea.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polyrl.broker import DECIDED, Books, MarketRules, PaperBroker
from polyrl.errors import CheckpointError
from polyrl.features.markets import Window
from polyrl.features.sets import FeatureSet
from polyrl.policies.base import HOLD, Policy
from polyrl.runlog import RunLog

OutcomeFn = Callable[[Window, int], "tuple[str, str] | None"]
TOKENS = ("Up", "Down")


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Decision timing and settlement (``[engine]``)."""

    tick_ms: int = 500
    """Decision interval, ms; ticks lie on the wall-clock grid of multiples of it."""
    fill_latency_ms: int = 300
    """Orders arrive this long after the decision and fill at the book as it stands then.
    Any value >= 0, also a tick or more (see the module doc). The default is the network
    (about 50 ms venue to client, p50 48-62 ms on the market channel) plus the venue's
    250 ms taker delay that holds marketable orders on markets with ``itode`` (Polymarket
    docs, api-reference get-clob-market-info)."""
    resolution_timeout_s: float = 3600.0
    """Settle from the reference feed when no resolution arrived this long after the end."""
    min_notional: float = 1.0
    """Smallest marketable order the venue accepts, USDC."""

    def __post_init__(self) -> None:
        if self.tick_ms <= 0:
            raise ValueError("tick_ms must be > 0")
        if self.fill_latency_ms < 0:
            raise ValueError("fill_latency_ms must be >= 0")
        if self.resolution_timeout_s <= 0:
            raise ValueError("resolution_timeout_s must be > 0")

    @property
    def tick_ns(self) -> int:
        return self.tick_ms * 1_000_000

    @property
    def latency_ns(self) -> int:
        return self.fill_latency_ms * 1_000_000

    @property
    def delay_ticks(self) -> int:
        """Whole ticks an order stays in flight after its decision (0 below one tick)."""
        return self.fill_latency_ms // self.tick_ms


@dataclass(slots=True)
class TickObs:
    """The market part of one tick's observation, M markets.

    ``features`` float32 [M, F_market]; ``tradable`` bool [M]; ``window`` int32 [M] (-1 none);
    ``top_px``/``top_size`` [M, 2, 2] best level at the tick; ``fill_px``/``fill_size``
    [M, 2, 2, L] the books at tick + latency.
    """

    t_ns: int
    features: np.ndarray
    tradable: np.ndarray
    window: np.ndarray
    top_px: np.ndarray
    top_size: np.ndarray
    fill_px: np.ndarray
    fill_size: np.ndarray


@dataclass(slots=True)
class _Episode:
    window: Window
    orders: int = 0
    fills: int = 0
    pnl: float = 0.0
    fees: float = 0.0
    first_entry_ns: int = -1
    first_entry_time_left: float = float("nan")
    first_entry_price: float = float("nan")
    first_entry_token: str | None = None


@dataclass(slots=True)
class _Order:
    """The orders one tick sent: executed when due (see the module doc)."""

    t_ns: int
    arrive_ns: int
    actions: np.ndarray
    tradable: np.ndarray
    window: np.ndarray
    books: Books


@dataclass(slots=True)
class _Parked:
    episode: _Episode
    broker: PaperBroker | None


@dataclass(slots=True)
class EngineTotals:
    """Running totals (for status lines and dashboards)."""

    ticks: int = 0
    fills: int = 0
    realized: float = 0.0
    fees: float = 0.0
    settled: int = 0
    pnl_by_asset: dict[str, float] = field(default_factory=dict)


class Engine:
    """Shared decision loop for live and replay (see the module doc)."""

    def __init__(
        self,
        *,
        assets: tuple[str, ...],
        fset: FeatureSet,
        policy: Policy,
        broker: PaperBroker,
        windows: Callable[[int], Window],
        outcome: OutcomeFn,
        runlog: RunLog | None,
        config: EngineConfig,
        log_decisions: bool = True,
    ) -> None:
        self.assets = assets
        self.M = len(assets)
        self.fset = fset
        self.policy = policy
        self.broker = broker
        self.window_of = windows
        self.outcome = outcome
        self.runlog = runlog
        self.config = config
        self.log_decisions = log_decisions
        self._cur: list[_Episode | None] = [None] * self.M
        self._parked: list[_Parked] = []
        self._flight: list[_Order] = []
        self._market_ix = np.array(fset.market_index, dtype=np.int64)
        self._pos_ix = np.array(fset.position_index, dtype=np.int64)
        self.totals = EngineTotals(pnl_by_asset=dict.fromkeys(assets, 0.0))
        self.last_obs: np.ndarray | None = None
        self.last_actions: np.ndarray | None = None
        self.last_rewards: np.ndarray = np.zeros(self.M)
        """The broker's per-market rewards of the last step (realized PnL by default)."""
        self.on_roll: Callable[[int], None] | None = None
        """Called with a slot whose episode just ended (its window is over)."""
        self.on_settle: Callable[[Window, float], None] | None = None
        """Called when a window settles, with the settlement's PnL (online training)."""

    # ---------------------------------------------------------------------------------------

    def step(self, obs: TickObs) -> np.ndarray:
        """One decision tick; returns the actions taken [M] (HOLD where not tradable)."""
        t = obs.t_ns
        self._settle_parked(t)
        self._roll(obs, t)
        top = Books(obs.top_px[..., None], obs.top_size[..., None])
        full = np.empty((self.M, self.fset.dim), dtype=np.float32)
        full[:, self._market_ix] = obs.features
        full[:, self._pos_ix] = self.broker.position_features(top)
        tradable = obs.tradable & (obs.window >= 0) & ~self.in_flight()
        actions = np.asarray(self.policy.act(full, tradable), dtype=np.int64)
        actions = np.where(tradable, actions, HOLD)
        self._flight.append(
            _Order(t, t + self.config.latency_ns, actions, tradable, obs.window.copy(),
                   Books(obs.fill_px, obs.fill_size))
        )  # fmt: skip
        self.last_rewards = np.zeros(self.M)
        due = t + self.config.tick_ns
        while self._flight and self._flight[0].arrive_ns < due:
            self._execute(self._flight.pop(0))
        for m in np.flatnonzero(actions != HOLD).tolist():
            ep = self._cur[m]
            if ep is not None:
                ep.orders += 1
        if self.runlog is not None and self.log_decisions:
            self.runlog.add_columns(
                "decisions",
                {
                    "t_ns": [t] * self.M,
                    "slot": list(range(self.M)),
                    "asset": list(self.assets),
                    "window": obs.window.tolist(),
                    "tradable": tradable.tolist(),
                    "action": actions.tolist(),
                },
            )
        self.totals.ticks += 1
        self.last_obs, self.last_actions = full, actions
        return actions

    def in_flight(self) -> np.ndarray:
        """Markets with an order sent and not yet executed, bool [M]."""
        out = np.zeros(self.M, dtype=bool)
        for o in self._flight:
            out |= o.actions != HOLD
        return out

    def _execute(self, o: _Order) -> None:
        """Fill one tick's orders at the books at their arrival; an order whose window is
        no longer the slot's (it ended before the order arrived) is dropped."""
        cur = np.array([ep.window.index if ep is not None else -1 for ep in self._cur])
        actions = np.where(o.window == cur, o.actions, HOLD)
        held_before = self.broker.held.copy()
        result = self.broker.step(actions, o.books, o.tradable, o.arrive_ns)
        self._book_fills(result, held_before)
        self.last_rewards = self.last_rewards + result.rewards

    def finish(self, t_ns: int, *, final_outcome: OutcomeFn | None = None) -> None:
        """End of a replay: close every slot's episode and settle what is parked, using
        ``final_outcome`` (default: whatever is known at ``t_ns``) for windows still open."""
        for m in range(self.M):
            ep = self._cur[m]
            if ep is not None:
                self._park_or_close(m, ep, t_ns)
                self._cur[m] = None
        self._flight.clear()  # orders arriving after the replay's end never fill
        fn = final_outcome or self.outcome
        for p in list(self._parked):
            got = fn(p.episode.window, t_ns)
            if got is not None:
                self._settle(p, got, t_ns)

    def state_dict(self) -> dict[str, Any]:
        """Everything a restarted Engine needs to carry on (JSON-ready): the broker, each
        slot's episode in play and each parked position (windows by condition id), totals."""
        return {
            "broker": _arrays_to_lists(self.broker.state_dict()),
            "current": [_episode_state(ep) if ep is not None else None for ep in self._cur],
            "parked": [
                {**_episode_state(p.episode),
                 "broker": _arrays_to_lists(p.broker.state_dict()) if p.broker else None}
                for p in self._parked
            ],
            "totals": dataclasses.asdict(self.totals),
            "in_flight": [
                {"t_ns": o.t_ns, "arrive_ns": o.arrive_ns, "actions": o.actions.tolist(),
                 "tradable": o.tradable.tolist(), "window": o.window.tolist(),
                 "px": o.books.px.tolist(), "size": o.books.size.tolist()}
                for o in self._flight
            ],
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any], windows: dict[str, Window]) -> None:
        """Restore :meth:`state_dict` output; ``windows`` maps condition ids to the windows
        the FeatureEngine knows. A window the state names but ``windows`` lacks, or a
        missing key, raises ``CheckpointError`` naming it."""
        try:
            self.broker.load_state_dict(_lists_to_arrays(state["broker"], self.broker))
            cur = [
                _episode_from(_window(windows, e["condition_id"]), e) if e else None
                for e in state["current"]
            ]
            parked = []
            for p in state["parked"]:
                broker = None
                if p["broker"] is not None:
                    broker = PaperBroker(1, self.broker.config)
                    broker.load_state_dict(_lists_to_arrays(p["broker"], broker))
                parked.append(_Parked(_episode_from(_window(windows, p["condition_id"]), p),
                                      broker))  # fmt: skip
            totals = EngineTotals(**state["totals"])
            flight = [
                _Order(o["t_ns"], o["arrive_ns"], np.array(o["actions"], dtype=np.int64),
                       np.array(o["tradable"], dtype=bool),
                       np.array(o["window"], dtype=np.int32),
                       Books(np.array(o["px"], dtype=np.float64),
                             np.array(o["size"], dtype=np.float64)))
                for o in state.get("in_flight", [])
            ]  # fmt: skip
        except KeyError as e:
            raise CheckpointError(f"engine state: missing key {e}") from None
        if len(cur) != self.M:
            raise CheckpointError(f"engine state: {len(cur)} slots, this engine has {self.M}")
        self._cur, self._parked, self.totals = cur, parked, totals
        self._flight = flight

    # ---------------------------------------------------------------------------------------

    def _roll(self, obs: TickObs, t: int) -> None:
        changed = []
        for m in range(self.M):
            wi = int(obs.window[m])
            ep = self._cur[m]
            if ep is not None and ep.window.index == wi:
                continue
            if ep is not None:
                if self.on_roll is not None:
                    self.on_roll(m)
                self._park_or_close(m, ep, t)
            self._cur[m] = _Episode(self.window_of(wi)) if wi >= 0 else None
            if wi >= 0:
                changed.append(m)
        if changed:
            idx = np.array(changed)
            ws = [self.window_of(int(obs.window[m])) for m in changed]
            rules = self.broker.rules
            new = MarketRules(
                fee_rate=rules.fee_rate.copy(),
                fee_exponent=rules.fee_exponent.copy(),
                fees_enabled=rules.fees_enabled.copy(),
                min_size=rules.min_size.copy(),
                min_notional=rules.min_notional.copy(),
            )
            new.fee_rate[idx] = [w.fee_rate for w in ws]
            new.fee_exponent[idx] = [w.fee_exponent for w in ws]
            new.fees_enabled[idx] = [w.fees_enabled for w in ws]
            new.min_size[idx] = [w.min_size for w in ws]
            new.min_notional[idx] = self.config.min_notional
            self.broker.set_rules(new)

    def _park_or_close(self, m: int, ep: _Episode, t: int) -> None:
        """The slot's window is over: its episode waits for the window's outcome (with the
        position, if one is still open, split off the broker so the slot starts flat)."""
        held = self.broker.held[m] >= 0
        broker = self.broker.split_off([m]) if held else None
        if not held:
            self.broker.reset(_one(self.M, m))
        self._parked.append(_Parked(ep, broker))
        self._settle_parked(t)

    def _settle_parked(self, t: int) -> None:
        for p in list(self._parked):
            got = self.outcome(p.episode.window, t)
            if got is not None:
                self._settle(p, got, t)

    def _settle(self, p: _Parked, got: tuple[str, str], t: int) -> None:
        outcome, source = got
        ep = p.episode
        if p.broker is not None and p.broker.held[0] >= 0:
            if outcome in DECIDED:
                s = p.broker.settle_detail(
                    np.array([True]), np.array([outcome == "Up"]), np.array([outcome == "split"])
                )
                for row in s.trade_rows(t):
                    self._trade_row(row, ep, kind="settle")
                pnl = float(s.pnl[0])
                ep.pnl += pnl
                self.totals.realized += pnl
                self.totals.pnl_by_asset[ep.window.asset] += pnl
                if self.on_settle is not None:
                    self.on_settle(ep.window, pnl)
            else:
                # No outcome: the position's value is unknown. It is dropped from the book
                # without a payout and the window is marked no_outcome with PnL null, so
                # statistics leave it out and count it (never a refund booked as PnL 0).
                p.broker.reset(np.array([True]))
        self._parked.remove(p)
        self._episode_row(ep, got, t)

    def _episode_row(self, ep: _Episode, got: tuple[str | None, str | None], t: int) -> None:
        self.totals.settled += 1
        if self.runlog is None:
            return
        w = ep.window
        no_outcome = got[0] not in DECIDED
        self.runlog.add(
            "episodes",
            {
                "slot": w.slot, "asset": w.asset, "condition_id": w.condition_id,
                "slug": w.slug, "start_ns": w.start_ns, "end_ns": w.end_ns,
                "outcome": got[0], "outcome_source": got[1], "gap": w.gap, "settled_ns": t,
                "no_outcome": no_outcome, "orders": ep.orders, "fills": ep.fills,
                "pnl": None if no_outcome else ep.pnl, "fees": ep.fees,
                "first_entry_ns": ep.first_entry_ns,
                "first_entry_time_left": ep.first_entry_time_left,
                "first_entry_price": ep.first_entry_price,
                "first_entry_token": ep.first_entry_token,
                "reference_mismatch": w.reference_mismatch,
                "reference_stale": w.reference_stale,
            },
        )  # fmt: skip

    def _book_fills(self, result: Any, held_before: np.ndarray) -> None:
        rows = result.trade_rows()
        if not rows:
            return
        for row in rows:
            m = row["market"]
            ep = self._cur[m]
            if ep is None:
                continue
            if row["side"] < 0:
                kind = "close"
            else:
                kind = "add" if held_before[m] == row["token"] else "open"
            self._trade_row(row, ep, kind=kind)
            ep.fills += 1
            ep.fees += row["fee"]
            self.totals.fills += 1
            self.totals.fees += row["fee"]
            if row["realized_pnl"] is not None:
                ep.pnl += row["realized_pnl"]
                self.totals.realized += row["realized_pnl"]
                self.totals.pnl_by_asset[ep.window.asset] += row["realized_pnl"]
            if row["side"] > 0 and ep.first_entry_ns < 0:
                ep.first_entry_ns = row["t_ns"]
                ep.first_entry_time_left = (ep.window.end_ns - row["t_ns"]) / (
                    ep.window.end_ns - ep.window.start_ns
                )
                ep.first_entry_price = row["avg_price"]
                ep.first_entry_token = TOKENS[row["token"]]

    def _trade_row(self, row: dict[str, Any], ep: _Episode, *, kind: str) -> None:
        if self.runlog is None:
            return
        w = ep.window
        pnl = row["realized_pnl"]
        self.runlog.add(
            "trades",
            {
                "t_ns": row["t_ns"], "slot": w.slot, "asset": w.asset,
                "condition_id": w.condition_id, "slug": w.slug, "kind": kind,
                "action": {"HOLD": 0, "BUY": 1, "SELL": 2}.get(row["action"], -1),
                "token": TOKENS[row["token"]], "side": row["side"], "shares": row["shares"],
                "avg_price": row["avg_price"], "notional": row["notional"], "fee": row["fee"],
                "levels": row["levels"], "partial": row["partial"], "rejected": row["reject"],
                "realized_pnl": pnl if pnl is not None else 0.0,
            },
        )  # fmt: skip


def _one(n: int, m: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[m] = True
    return mask


def _episode_state(ep: _Episode) -> dict[str, Any]:
    """An episode's running counters (everything but its window) and its window's id."""
    out: dict[str, Any] = {"condition_id": ep.window.condition_id}
    for f in dataclasses.fields(ep):
        if f.name != "window":
            out[f.name] = getattr(ep, f.name)
    return out


def _episode_from(w: Window, state: dict[str, Any]) -> _Episode:
    names = {f.name for f in dataclasses.fields(_Episode)} - {"window"}
    return _Episode(w, **{k: v for k, v in state.items() if k in names})


def _window(windows: dict[str, Window], cid: str) -> Window:
    w = windows.get(cid)
    if w is None:
        raise CheckpointError(f"engine state: window {cid} is not among the known windows")
    return w


def _arrays_to_lists(state: dict[str, np.ndarray]) -> dict[str, list[Any]]:
    return {k: v.tolist() for k, v in state.items()}


def _lists_to_arrays(state: dict[str, list[Any]], like: PaperBroker) -> dict[str, np.ndarray]:
    ref = like.state_dict()
    return {k: np.array(v, dtype=ref[k].dtype if k in ref else None) for k, v in state.items()}
