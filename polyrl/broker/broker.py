"""PaperBroker: vectorised paper execution of taker orders on recorded Polymarket books.

One PaperBroker serves a batch of N market slots: the live and replay Engines run it with
N = 4 (one market per asset), the training environment with N in the hundreds (one
market-window per episode). It is a deterministic function of its inputs and its state:
no randomness, no clock, no I/O, and each slot evolves exactly (bit for bit) as it would
in a batch of one. No real orders, ever.

**Sizing.** An opening order spends ``capital * size_fraction`` USDC (a market BUY's amount
is USDC), walking the asks of the token bought best level first; fees come on top. The
capital base is fixed per slot (no compounding). Closing sells the whole held position
into the bids of the held token, best level first. Both are fill-and-kill: what the book
cannot fill is dropped (buy) or stays held (sell). Fees are charged per level matched (see
:mod:`polyrl.broker.fees`).

**What each action does** (``on_opposite`` / ``on_same`` are :class:`BrokerConfig` fields):

============  ========  =============================  =============================
state         HOLD (0)  BUY (1)                        SELL (2)
============  ========  =============================  =============================
flat          nothing   buy Up for O                   buy Down for O
long Up       nothing   same signal, S                 opposite signal, X
long Down     nothing   opposite signal, X             same signal, S
not tradable  nothing   nothing (rejected, code 1)     nothing (rejected, code 1)
============  ========  =============================  =============================

* O = ``order_usdc`` = ``capital * size_fraction`` USDC, fees on top.
* S, same signal: ``on_same="hold"`` nothing (no pyramiding); ``"add"`` buy more of the
  held token for ``min(O, capital - cost)`` (average cost).
* X, opposite signal: ``on_opposite="close"`` sell the whole held position, open nothing;
  ``"flip"`` sell it and, only if every share sold, buy the other token for O in the same
  step; ``"ignore"`` nothing.
* Not tradable: whatever the state, nothing happens; the leg the action would have sent
  (per the rows above) is recorded as rejected with code 1.

``add`` never lifts the position's cost basis (USDC incl. buy fees) past ``capital`` by more
than the last buy's fee; with no room left it sends no order. After a partial close the
rest stays held; ``flip`` then opens nothing.

**Order checks**, in this order, each leg: no usable level on the side it takes from ->
rejected 4 (no liquidity); shares at the touch below ``min_size`` -> 2 (a buy's shares are
``usdc / best ask``, a sell's are the shares held; a position below ``min_size`` therefore
cannot be closed and rides to settlement); USDC at the touch below ``min_notional`` -> 3
(a buy's USDC is its amount, a sell's is shares * best bid).

**Accounting.** ``cost`` is the position's cost basis: buy notional plus buy fees. A sell of
``q`` of ``Q`` held shares realizes ``proceeds - sell fee - cost * q / Q`` (the whole cost
when it empties the position). Settlement pays $1 per share of the winning token and
realizes ``payout - cost``. A position's win (realized PnL over its life > 0) or loss
(<= 0) is counted when it is emptied or settled. Hence at all times::

    sum(realized) == sum(sell notional) + sum(payouts) - sum(buy notional)
                     - sum(fees) + sum(open cost)

**Reward.** ``"pnl"``: the realized PnL booked this step (sell legs) or at settlement, 0
otherwise. ``"shaped"`` adds two terms: ``shaping_unrealized_coef * (U_t - U_{t-1})`` where
``U`` is the unrealized PnL in USDC (``shares * mark - cost``, 0 when flat), and
``-shaping_trade_penalty`` per fill. The mark is the held token's best bid when the market
is tradable and has one, else the last such bid of this position, else the position is at
cost (``U = 0``). Over a position's life the first term telescopes to zero (``U`` starts
and ends at 0), so shaping moves credit in time without changing what a round trip earns;
only the trade penalty changes totals.

**Length.** About 530 lines, over the house's 500 on purpose: one class whose step, legs,
settlement and saved state all read and write the same [N] state arrays, with this
specification at its head. The parts it does not need to own live beside it (order books
and walks in :mod:`~polyrl.broker.book`, fees in :mod:`~polyrl.broker.fees`, the result
records in :mod:`~polyrl.broker.results`); splitting the legs or settlement out would
spread its invariants (``held >= 0`` exactly where ``shares > 0``, the accounting identity
above) over several modules.
"""

from __future__ import annotations

import numpy as np

from polyrl.broker.book import ASK, BID, Books, Walk, best_price, walk_buy, walk_sell
from polyrl.broker.config import BrokerConfig, MarketRules
from polyrl.broker.fees import taker_fee
from polyrl.broker.results import (
    REJECT_MIN_NOTIONAL,
    REJECT_MIN_SIZE,
    REJECT_NO_LIQUIDITY,
    REJECT_NOT_TRADABLE,
    Fills,
    Settlement,
    StepResult,
)
from polyrl.errors import CheckpointError

_STATE_DTYPES: dict[str, type] = {
    "held": np.int8,
    "shares": np.float64,
    "cost": np.float64,
    "entry_ns": np.int64,
    "realized": np.float64,
    "fees": np.float64,
    "trades": np.int64,
    "wins": np.int64,
    "losses": np.int64,
    "position_realized": np.float64,
    "mark": np.float64,
    "unrealized": np.float64,
}
_RULE_FIELDS = ("fee_rate", "fee_exponent", "fees_enabled", "min_size", "min_notional")
_SIDE_FEATURE = np.array([1.0, -1.0, 0.0], dtype=np.float32)
"""position_side indexed by ``held``: 0 (Up) -> +1, 1 (Down) -> -1, -1 (flat, the last
entry) -> 0."""


def _checked(
    fills: Fills, idx: np.ndarray, has: np.ndarray, small: np.ndarray, thin: np.ndarray
) -> np.ndarray | None:
    """Record the order checks of one leg's orders in slots ``idx`` (all [M]): ``has`` a
    usable level, below ``min_size`` (``small``) and below ``min_notional`` (``thin``), first
    failure wins. Returns None when every order passes (the usual case: nothing to write,
    ``fills.rejected`` is already 0 there), else the bool mask of the orders that pass."""
    ok = has & ~small & ~thin
    if ok.all():
        return None
    reason = np.where(
        ~has,
        REJECT_NO_LIQUIDITY,
        np.where(small, REJECT_MIN_SIZE, np.where(thin, REJECT_MIN_NOTIONAL, 0)),
    )
    fills.rejected[idx] = reason
    return ok


class PaperBroker:
    """Paper taker execution for N market slots; state arrays are [N] attributes.

    State (all [N]): ``held`` int8 token held (-1 none, 0 Up, 1 Down); ``shares`` held;
    ``cost`` basis, USDC incl. buy fees; ``entry_ns`` int64 time the position was opened
    (-1 flat); cumulative ``realized`` PnL and ``fees`` (USDC), ``trades`` (fills), ``wins``
    and ``losses`` (closed positions); ``position_realized`` PnL realized so far by the open
    position (partial closes); ``mark`` last best bid of the held token (NaN none yet) and
    ``unrealized`` last marked unrealized PnL (both for the shaped reward).
    Invariant: ``held >= 0`` exactly where ``shares > 0``.
    """

    def __init__(
        self, n: int, config: BrokerConfig | None = None, rules: MarketRules | None = None
    ) -> None:
        if n < 1:
            raise ValueError(f"n (market slots) must be >= 1, got {n}")
        self.n = int(n)
        self._rows = np.arange(self.n)
        self.config = config if config is not None else BrokerConfig()
        self.rules = MarketRules.uniform(n)
        if rules is not None:
            self.set_rules(rules)
        self.held = np.full(n, -1, dtype=np.int8)
        self.shares = np.zeros(n)
        self.cost = np.zeros(n)
        self.entry_ns = np.full(n, -1, dtype=np.int64)
        self.realized = np.zeros(n)
        self.fees = np.zeros(n)
        self.trades = np.zeros(n, dtype=np.int64)
        self.wins = np.zeros(n, dtype=np.int64)
        self.losses = np.zeros(n, dtype=np.int64)
        self.position_realized = np.zeros(n)
        self.mark = np.full(n, np.nan)
        self.unrealized = np.zeros(n)

    # ------------------------------------------------------------------------------------
    # Rules and resets

    def set_rules(self, rules: MarketRules, mask: np.ndarray | None = None) -> None:
        """Replace the venue rules of all slots (``rules`` [N]) or of ``mask``ed slots only.

        ``rules`` was validated when built (fee exponent 1 or 2, rates >= 0, ...).
        """
        if rules.n != self.n:
            raise ValueError(f"rules has {rules.n} markets, the broker has {self.n}")
        if mask is None:
            self.rules = rules.select(slice(None))
            return
        m = self._mask(mask, "mask")
        merged = {}
        for name in _RULE_FIELDS:
            merged[name] = np.where(m, getattr(rules, name), getattr(self.rules, name))
        self.rules = MarketRules(**merged)

    def reset(self, mask: np.ndarray | None = None, *, stats: bool = False) -> None:
        """Start a new window in ``mask``ed slots (all if None) without settlement.

        An open position is dropped: its cost is neither paid back nor booked as PnL.
        ``stats`` also zeroes the cumulative realized PnL, fees, trades, wins and losses.
        """
        m = np.ones(self.n, dtype=bool) if mask is None else self._mask(mask, "mask")
        self._flatten(m)
        if stats:
            for name in ("realized", "fees", "trades", "wins", "losses"):
                getattr(self, name)[m] = 0

    def _flatten(self, m: np.ndarray) -> None:
        """Close the slots ``m`` (a mask or int indices) without settling anything."""
        self.held[m] = -1
        self.shares[m] = 0.0
        self.cost[m] = 0.0
        self.entry_ns[m] = -1
        self.position_realized[m] = 0.0
        self.mark[m] = np.nan
        self.unrealized[m] = 0.0

    # ------------------------------------------------------------------------------------
    # The step

    def step(
        self,
        actions: np.ndarray,
        books: Books,
        tradable: np.ndarray,
        t_ns: int | np.ndarray,
    ) -> StepResult:
        """Apply one action per market to the books as they stand when the order arrives.

        ``actions`` int [N] in {0 HOLD, 1 BUY, 2 SELL}; ``books`` [N, 2, 2, L]; ``tradable``
        bool [N] (False: the action is treated as HOLD); ``t_ns`` int or int64 [N], the
        step's time (stamps entries and trade rows). See the module docstring for what each
        action does.
        """
        n = self.n
        a = np.asarray(actions)
        if a.shape != (n,) or a.dtype.kind not in "iu":  # signed or unsigned integers
            raise ValueError(
                f"actions must be an integer array of shape ({n},), got {a.dtype} {a.shape}"
            )
        if a.min() < 0 or a.max() > 2:
            raise ValueError(f"actions must be 0 (HOLD), 1 (BUY) or 2 (SELL), got {np.unique(a)}")
        tr = self._mask(tradable, "tradable")
        all_tradable = bool(tr.all())
        t = np.asarray(t_ns, dtype=np.int64)
        # The common shapes without np.broadcast_to's overhead; anything else goes through it
        # (and its error for a wrong shape).
        t = t.copy() if t.shape == (n,) else np.full(n, t) if t.ndim == 0 else t
        if t.shape != (n,):
            t = np.broadcast_to(t, (n,)).copy()
        if books.n != n:
            raise ValueError(f"books has {books.n} markets, the broker has {n}")
        if self.config.check_books:
            books.validate()
        cfg = self.config

        acts = a.astype(np.int8)
        want = acts - 1  # token the action asks to be long: BUY 0, SELL 1, HOLD -1
        active = want >= 0
        flat = self.held < 0
        holding = active & ~flat
        closing = (
            holding & (want != self.held)  # the opposite signal
            if cfg.on_opposite != "ignore"
            else np.zeros(n, dtype=bool)
        )
        opening = active & flat
        if cfg.on_same == "add":
            # An add with no capital left sends no order (so it is never "rejected" either).
            opening |= holding & (want == self.held) & (self.cost < cfg.capital)

        shaped = cfg.reward == "shaped"
        # Unrealized PnL before the legs (a full close zeroes it); only read when shaped.
        u_prev = self.unrealized.copy() if shaped else self.unrealized
        sell, buy = Fills.none(n), Fills.none(n)
        realized = np.zeros(n)
        if not all_tradable:  # otherwise nothing is blocked (the replay env's usual case)
            for leg, wanted, token in ((sell, closing, self.held), (buy, opening, want)):
                blocked = wanted & ~tr
                leg.rejected[blocked] = REJECT_NOT_TRADABLE
                leg.side[blocked] = -1 if leg is sell else 1
                leg.token[blocked] = token[blocked]
            closing &= tr
            opening &= tr

        if closing.any():
            emptied = self._sell(closing.nonzero()[0], books, sell, realized)
            if cfg.on_opposite == "flip":
                opening[emptied] = True
        if opening.any():
            self._buy(opening.nonzero()[0], want, books, buy, t)

        rewards = realized.copy()
        if shaped:
            self._mark(books, tr)
            n_fills = sell.filled.astype(np.float64) + buy.filled.astype(np.float64)
            rewards += cfg.shaping_unrealized_coef * (self.unrealized - u_prev)
            rewards -= cfg.shaping_trade_penalty * n_fills
        return StepResult(
            rewards=rewards,
            realized=realized,
            sell=sell,
            buy=buy,
            actions=acts,
            t_ns=t,
        )

    def _fees(self, idx: np.ndarray, w: Walk) -> np.ndarray:
        """Per-level rounded taker fees of a walk, summed per market: [M] USDC."""
        r = self.rules
        rate = np.where(r.fees_enabled[idx], r.fee_rate[idx], 0.0)[:, None]
        per_level = taker_fee(
            w.shares, w.price, rate, r.fee_exponent[idx][:, None], self.config.fee_rounding
        )
        return per_level.cumsum(axis=1)[:, -1]

    def _sell(
        self, idx: np.ndarray, books: Books, fills: Fills, realized: np.ndarray
    ) -> np.ndarray:
        """Sell the whole position of slots ``idx``; returns the slots it emptied."""
        token = self.held[idx]
        fills.side[idx] = -1
        fills.token[idx] = token
        px = books.px[idx, token, BID]
        size = books.size[idx, token, BID]
        qty = self.shares[idx]
        best, has = best_price(px, size)
        touch = qty * np.where(has, best, 0.0)  # USDC at the best bid; 0 when there is none
        ok = _checked(
            fills, idx, has, qty < self.rules.min_size[idx], touch < self.rules.min_notional[idx]
        )
        if ok is not None:
            if not ok.any():
                return idx[:0]
            idx, px, size, qty = idx[ok], px[ok], size[ok], qty[ok]

        w = walk_sell(px, size, qty)
        fee = self._fees(idx, w)
        full = w.complete
        cost = self.cost[idx]
        cost_out = np.where(full, cost, cost * (w.total_shares / qty))
        pnl = w.total_notional - fee - cost_out

        self.shares[idx] = np.where(full, 0.0, qty - w.total_shares)
        self.cost[idx] = np.where(full, 0.0, cost - cost_out)
        self.realized[idx] += pnl
        self.fees[idx] += fee
        self.trades[idx] += 1
        self.position_realized[idx] += pnl
        realized[idx] = pnl
        self._write(fills, idx, w, fee)

        emptied = idx[full]
        if emptied.shape[0]:
            life = self.position_realized[emptied]
            self.wins[emptied] += life > 0
            self.losses[emptied] += life <= 0
            self._flatten(emptied)
        return emptied

    def _buy(
        self, idx: np.ndarray, want: np.ndarray, books: Books, fills: Fills, t: np.ndarray
    ) -> None:
        """Open or add to positions in slots ``idx``, buying token ``want[idx]``."""
        cfg = self.config
        budget = np.minimum(cfg.order_usdc, cfg.capital - self.cost[idx])  # > 0 (see step)
        token = want[idx]
        fills.side[idx] = 1
        fills.token[idx] = token
        px = books.px[idx, token, ASK]
        size = books.size[idx, token, ASK]
        best, has = best_price(px, size)
        at_touch = budget / np.where(has, best, 1.0)
        ok = _checked(
            fills,
            idx,
            has,
            at_touch < self.rules.min_size[idx],
            budget < self.rules.min_notional[idx],
        )
        if ok is not None:
            if not ok.any():
                return
            idx, px, size, budget, token = idx[ok], px[ok], size[ok], budget[ok], token[ok]

        w = walk_buy(px, size, budget)
        fee = self._fees(idx, w)
        was_flat = self.held[idx] < 0
        self.shares[idx] += w.total_shares
        self.cost[idx] += w.total_notional + fee
        self.held[idx] = token
        self.entry_ns[idx] = np.where(was_flat, t[idx], self.entry_ns[idx])
        self.fees[idx] += fee
        self.trades[idx] += 1
        self._write(fills, idx, w, fee)

    @staticmethod
    def _write(fills: Fills, idx: np.ndarray, w: Walk, fee: np.ndarray) -> None:
        fills.shares[idx] = w.total_shares
        fills.notional[idx] = w.total_notional
        fills.avg_price[idx] = w.total_notional / w.total_shares
        fills.fee[idx] = fee
        fills.levels[idx] = w.levels
        fills.partial[idx] = ~w.complete

    def _mark(self, books: Books, tradable: np.ndarray) -> None:
        """Update ``mark`` and ``unrealized`` from the held tokens' best bids (shaped reward)."""
        pos = self.held >= 0
        bid, has = self._best_bid_held(books)
        fresh = pos & has & tradable
        self.mark = np.where(fresh, bid, np.where(pos, self.mark, np.nan))
        known = pos & ~np.isnan(self.mark)
        value = self.shares * np.where(known, self.mark, 0.0)
        self.unrealized = np.where(known, value - self.cost, 0.0)

    def _best_bid_held(self, books: Books) -> tuple[np.ndarray, np.ndarray]:
        token = np.maximum(self.held, 0)
        return best_price(books.px[self._rows, token, BID], books.size[self._rows, token, BID])

    # ------------------------------------------------------------------------------------
    # Settlement and features

    def settle(
        self, mask: np.ndarray, up_won: np.ndarray, split: np.ndarray | None = None
    ) -> np.ndarray:
        """Resolve ``mask``ed markets with the given outcome; returns rewards [N] (USDC).

        ``up_won`` bool [N] is used exactly as given (the caller decides ties: Up wins iff
        the end reference >= the start one). Positions pay $1 per share of the winning
        token, 0 for the other; PnL = payout - cost; the slots are left flat. Where
        ``split`` bool [N] is set the market resolved 50-50 (Gamma ``outcomePrices``
        ``["0.5", "0.5"]``): every share of either token pays $0.50 and ``up_won`` is
        ignored there.
        """
        return self.settle_detail(mask, up_won, split).rewards

    def settle_detail(
        self, mask: np.ndarray, up_won: np.ndarray, split: np.ndarray | None = None
    ) -> Settlement:
        """:meth:`settle`, returning every per-market amount (for trades rows and logs)."""
        m = self._mask(mask, "mask")
        up = self._mask(up_won, "up_won")
        half = np.zeros(self.n, dtype=bool) if split is None else self._mask(split, "split")
        winner = np.where(up, 0, 1)
        settled = m & (self.held >= 0)
        shares = np.where(settled, self.shares, 0.0)
        per_share = np.where(half, 0.5, np.where(self.held == winner, 1.0, 0.0))
        payout = np.where(settled, shares * per_share, 0.0)
        cost = np.where(settled, self.cost, 0.0)
        pnl = payout - cost
        rewards = pnl.copy()
        if self.config.reward == "shaped":
            # U drops to 0 when the position goes: the last term of the telescoping sum.
            rewards -= np.where(m, self.config.shaping_unrealized_coef * self.unrealized, 0.0)
        token = np.where(settled, self.held, -1).astype(np.int8)
        self.realized += pnl
        life = self.position_realized + pnl
        self.wins += settled & (life > 0)
        self.losses += settled & (life <= 0)
        self._flatten(m)
        return Settlement(
            settled=settled,
            token=token,
            shares=shares,
            payout=payout,
            cost=cost,
            pnl=pnl,
            rewards=rewards,
        )

    def position_features(self, books: Books) -> np.ndarray:
        """float32 [N, 3]: has_position (0/1), position_side (+1 Up, -1 Down, 0 flat),
        position_pnl = (shares * best bid of the held token - cost) / cost.

        position_pnl is the return on cost of selling at the touch (ignoring depth and the
        sell fee); 0 when flat or when the held token has no bid.
        """
        pos = self.held >= 0
        if not pos.any():  # all flat: every feature is 0
            return np.zeros((self.n, 3), dtype=np.float32)
        bid, has = self._best_bid_held(books)
        ok = pos & has & (self.cost > 0)
        value = self.shares * np.where(ok, bid, 0.0)
        pnl = np.where(ok, (value - self.cost) / np.where(ok, self.cost, 1.0), 0.0)
        out = np.empty((self.n, 3), dtype=np.float32)
        out[:, 0] = pos
        out[:, 1] = _SIDE_FEATURE[self.held]
        out[:, 2] = pnl
        return out

    def cash(self) -> np.ndarray:
        """USDC per slot not tied up in a position: ``capital + realized - cost`` [N]."""
        return self.config.capital + self.realized - self.cost

    # ------------------------------------------------------------------------------------
    # Save and resume

    def split_off(self, idx: np.ndarray | list[int]) -> PaperBroker:
        """A new broker holding copies of rows ``idx`` (state and rules), then reset here.

        The Engine moves a position still open when its window ends into such a broker to
        wait for the window's resolution while the slot trades the next window.
        """
        rows = np.asarray(idx, dtype=np.int64)
        state = {k: v[rows] for k, v in self.state_dict().items()}
        other = PaperBroker(int(rows.shape[0]), self.config)
        other.load_state_dict(state)
        m = np.zeros(self.n, dtype=bool)
        m[rows] = True
        self._flatten(m)
        return other

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every state array and of the rules (``rules.<field>``), all [N]."""
        out = {name: getattr(self, name).copy() for name in _STATE_DTYPES}
        for name in _RULE_FIELDS:
            out[f"rules.{name}"] = getattr(self.rules, name).copy()
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict` output; a missing, extra or misshapen key raises
        ``CheckpointError`` naming it. The config is not part of the state."""
        expected = set(_STATE_DTYPES) | {f"rules.{f}" for f in _RULE_FIELDS}
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or extra:
            raise CheckpointError(f"broker state: missing keys {missing}, unexpected {extra}")
        for key in sorted(expected):
            shape = np.shape(state[key])
            if shape != (self.n,):
                raise CheckpointError(
                    f"broker state: {key} has shape {shape}, expected ({self.n},)"
                )
        try:
            rules = MarketRules(**{f: np.asarray(state[f"rules.{f}"]) for f in _RULE_FIELDS})
        except ValueError as e:
            raise CheckpointError(f"broker state: rules: {e}") from None
        for name, dtype in _STATE_DTYPES.items():
            setattr(self, name, np.array(state[name], dtype=dtype))
        self.rules = rules

    # ------------------------------------------------------------------------------------

    def _mask(self, value: np.ndarray, name: str) -> np.ndarray:
        m = np.asarray(value)
        if m.shape != (self.n,) or m.dtype != np.bool_:
            raise ValueError(
                f"{name} must be a bool array of shape ({self.n},), got {m.dtype} {m.shape}"
            )
        return m
