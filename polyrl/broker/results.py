"""What one broker step or settlement returns, and its rows for the trades table.

Arrays are [N] (one entry per market slot). Money is USDC and quantities are shares, all
float64; codes are small integers. A step has two order *legs* per market, executed in
this order: the ``sell`` leg (closing the held position) and the ``buy`` leg (opening or
adding). Only ``on_opposite="flip"`` ever uses both legs in one step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

HOLD, BUY, SELL = 0, 1, 2
"""Actions: hold, be long the Up token, be long the Down token."""
ACTION_NAMES: tuple[str, ...] = ("HOLD", "BUY", "SELL")
DECIDED = ("Up", "Down", "split")
"""Recorded outcomes that settle a position: $1 a share of the winning token, or $0.50 a
share of either token for a ``split`` (a 50-50 resolution)."""
SETTLE_ACTION = "SETTLE"
"""The ``action`` of a trades-table row written by a settlement."""

REJECT_NONE = 0
REJECT_NOT_TRADABLE = 1
"""The market was not tradable this step (book not synced, gap, not ready)."""
REJECT_MIN_SIZE = 2
"""The order was for fewer shares than the market's ``min_size``."""
REJECT_MIN_NOTIONAL = 3
"""The order was worth less than the market's ``min_notional`` USDC at the touch."""
REJECT_NO_LIQUIDITY = 4
"""The side of the book the order would take from was empty."""
REJECT_NAMES: tuple[str, ...] = (
    "none",
    "not_tradable",
    "below_min_size",
    "below_min_notional",
    "no_liquidity",
)


_BLANK: dict[int, tuple[np.ndarray, np.ndarray]] = {}
"""Per batch size N: an all-NaN float64 [N] and an all -1 int8 [N] column (never handed out)."""


@dataclass(frozen=True, slots=True)
class Fills:
    """One order leg per market for one step, arrays [N].

    Where no order was sent: ``side`` 0, ``token`` -1, ``rejected`` 0, zero amounts and
    ``avg_price`` NaN. Where an order was sent and rejected: ``side``/``token`` say what it
    was, ``rejected`` says why, amounts are 0.
    """

    shares: np.ndarray
    """Shares filled (float64)."""
    avg_price: np.ndarray
    """notional / shares, USDC per share; NaN where nothing filled (float64)."""
    notional: np.ndarray
    """USDC paid (buy) or received (sell) for the shares, before fees (float64)."""
    fee: np.ndarray
    """Taker fee, USDC, the sum of the per-level rounded fees (float64)."""
    side: np.ndarray
    """+1 buy, -1 sell, 0 no order (int8)."""
    token: np.ndarray
    """0 Up, 1 Down, -1 no order (int8)."""
    levels: np.ndarray
    """Book levels the fill consumed (int32)."""
    partial: np.ndarray
    """True where the book ran out before the order was done (bool)."""
    rejected: np.ndarray
    """Reject reason code, REJECT_* (int8)."""

    @classmethod
    def none(cls, n: int) -> Fills:
        """N legs with no order."""
        # Copies of cached blank columns: cheaper than np.full (a broker step makes two).
        blank = _BLANK.get(n)
        if blank is None:
            blank = _BLANK[n] = (np.full(n, np.nan), np.full(n, -1, dtype=np.int8))
        return cls(
            shares=np.zeros(n),
            avg_price=blank[0].copy(),
            notional=np.zeros(n),
            fee=np.zeros(n),
            side=np.zeros(n, dtype=np.int8),
            token=blank[1].copy(),
            levels=np.zeros(n, dtype=np.int32),
            partial=np.zeros(n, dtype=bool),
            rejected=np.zeros(n, dtype=np.int8),
        )

    @property
    def filled(self) -> np.ndarray:
        """bool [N]: the leg traded at least some shares."""
        return self.shares > 0


@dataclass(frozen=True, slots=True)
class StepResult:
    """Everything one :meth:`PaperBroker.step` did, arrays [N]."""

    rewards: np.ndarray
    """Reward of this step per market (float64; see ``BrokerConfig.reward``)."""
    realized: np.ndarray
    """Realized PnL booked by this step's sell leg, USDC (float64)."""
    sell: Fills
    """The closing leg (executed first)."""
    buy: Fills
    """The opening/adding leg (executed second)."""
    actions: np.ndarray
    """The actions as given (int8)."""
    t_ns: np.ndarray
    """Step time per market, ns (int64)."""

    def trade_rows(self, *, include_rejected: bool = False) -> list[dict[str, Any]]:
        """Row dicts for the trades table: one per filled leg, market by market, sell first.

        Keys: t_ns, market (slot index), action, token, side, shares, avg_price, notional,
        fee, realized_pnl (the sell leg's realized PnL; None for buys), levels, partial,
        reject. With ``include_rejected`` rejected orders are rows too (zero shares).
        """
        rows: list[dict[str, Any]] = []
        s_filled, b_filled = self.sell.filled, self.buy.filled
        keep_sell = s_filled | (include_rejected & (self.sell.rejected > 0))
        keep_buy = b_filled | (include_rejected & (self.buy.rejected > 0))
        markets = np.flatnonzero(keep_sell | keep_buy)
        if markets.shape[0] == 0:
            return rows
        # Whole columns to Python once (``tolist`` gives the same ints, floats and bools as
        # converting element by element), then the rows from plain lists.
        t_ns, actions, realized = (a.tolist() for a in (self.t_ns, self.actions, self.realized))
        legs = [
            (keep.tolist(), filled.tolist(), leg.token.tolist(), leg.side.tolist(),
             leg.shares.tolist(), leg.avg_price.tolist(), leg.notional.tolist(),
             leg.fee.tolist(), leg.levels.tolist(), leg.partial.tolist(), leg.rejected.tolist())
            for leg, keep, filled in (
                (self.sell, keep_sell, s_filled), (self.buy, keep_buy, b_filled))
        ]  # fmt: skip
        for i in markets.tolist():
            for n, (
                keep,
                filled,
                token,
                side,
                shares,
                avg,
                notional,
                fee,
                levels,
                partial,
                rej,
            ) in enumerate(legs):
                if keep[i]:
                    rows.append(
                        {
                            "t_ns": t_ns[i],
                            "market": i,
                            "action": ACTION_NAMES[actions[i]],
                            "token": token[i],
                            "side": side[i],
                            "shares": shares[i],
                            "avg_price": avg[i],
                            "notional": notional[i],
                            "fee": fee[i],
                            "realized_pnl": realized[i] if n == 0 and filled[i] else None,
                            "levels": levels[i],
                            "partial": partial[i],
                            "reject": rej[i],
                        }
                    )
        return rows


@dataclass(frozen=True, slots=True)
class Settlement:
    """What :meth:`PaperBroker.settle_detail` paid out, arrays [N]."""

    settled: np.ndarray
    """bool: the market was in the mask and held a position."""
    token: np.ndarray
    """Token held before settlement, -1 none (int8)."""
    shares: np.ndarray
    """Shares held before settlement."""
    payout: np.ndarray
    """USDC paid: $1 per share of the winning token, 0 for the losing one, $0.50 a share of
    either after a split (50-50) resolution."""
    cost: np.ndarray
    """Cost basis of the settled position, USDC incl. buy fees."""
    pnl: np.ndarray
    """Realized PnL of the settlement: payout - cost, USDC."""
    rewards: np.ndarray
    """Reward per market (pnl, plus the shaping term in shaped mode)."""

    def trade_rows(self, t_ns: int | np.ndarray) -> list[dict[str, Any]]:
        """Trades-table rows (same keys as :meth:`StepResult.trade_rows`), action SETTLE.

        ``avg_price`` is the payout per share (1.0, 0.0, or 0.5 for a split); side 0 (a
        redemption, not a sale).
        """
        t = np.broadcast_to(np.asarray(t_ns, dtype=np.int64), self.pnl.shape)
        return [
            {
                "t_ns": int(t[i]),
                "market": int(i),
                "action": SETTLE_ACTION,
                "token": int(self.token[i]),
                "side": 0,
                "shares": float(self.shares[i]),
                "avg_price": float(self.payout[i] / self.shares[i]),
                "notional": float(self.payout[i]),
                "fee": 0.0,
                "realized_pnl": float(self.pnl[i]),
                "levels": 0,
                "partial": False,
                "reject": REJECT_NONE,
            }
            for i in np.flatnonzero(self.settled)
        ]
