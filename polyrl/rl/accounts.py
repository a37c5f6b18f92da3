"""Accounting of the replay environment's episodes in play: the rows of the RunLog's
trades table (each fill and settlement) and episodes table (one per finished episode), in
the order and with the amounts the Engine writes them.

Per env (arrays [N]): the episode's PnL, fees, fills and orders so far, and its first
entry (time, fraction of the window left, price, token). The totals add a step's amounts
in the order of its trades rows (market by market, sell leg first).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from polyrl.broker import Fills, Settlement, StepResult
from polyrl.rl.episodes import EpisodeStore


def _by_env(row: dict[str, Any]) -> int:
    return row["env"]


class EpisodeAccounts:
    """Per-env accounting of the episode in play: the RunLog's trades and episodes rows.

    ``store`` holds the episodes and ``info`` its ``info`` table as one dict per episode;
    the callers pass each env's episode ids ``ep`` [N] and slots ``ep_slot`` [N].
    """

    TOKENS = ("Up", "Down")
    ACTIONS = {"HOLD": 0, "BUY": 1, "SELL": 2}

    def __init__(self, n: int, store: EpisodeStore, info: list[dict[str, Any]]) -> None:
        self.store = store
        self.info = info
        self.pnl = np.zeros(n)
        self.fees = np.zeros(n)
        self.fills_n = np.zeros(n, dtype=np.int64)
        self.orders = np.zeros(n, dtype=np.int64)
        self.first_ns = np.full(n, -1, dtype=np.int64)
        self.first_left = np.full(n, np.nan)
        self.first_px = np.full(n, np.nan)
        self.first_tok: list[str | None] = [None] * n

    _ARRAYS = ("pnl", "fees", "fills_n", "orders", "first_ns", "first_left", "first_px")

    def state_dict(self) -> dict[str, Any]:
        """The episodes in play (their PnL, fees, fills and first entry so far), JSON-ready
        (NaN as null): an episode that spans a resume is accounted as if it had not."""
        out: dict[str, Any] = {
            k: [None if isinstance(x, float) and x != x else x for x in getattr(self, k).tolist()]
            for k in self._ARRAYS
        }
        out["first_tok"] = list(self.first_tok)
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in self._ARRAYS:
            cur = getattr(self, k)
            vals = [np.nan if x is None else x for x in state[k]]
            setattr(self, k, np.array(vals, dtype=cur.dtype))
        self.first_tok = list(state["first_tok"])

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

    def _row(self, e: int, row: dict[str, Any], kind: str) -> dict[str, Any]:
        info = self.info[e]
        pnl = row["realized_pnl"]
        return {
            "env": row["market"], "t_ns": row["t_ns"], "slot": int(self.store.slot[e]),
            "asset": info["asset"],
            "condition_id": info["condition_id"], "slug": info["slug"], "kind": kind,
            "action": self.ACTIONS.get(row["action"], -1),
            "token": self.TOKENS[row["token"]], "side": row["side"], "shares": row["shares"],
            "avg_price": row["avg_price"], "notional": row["notional"], "fee": row["fee"],
            "levels": row["levels"], "partial": row["partial"], "rejected": row["reject"],
            "realized_pnl": pnl if pnl is not None else 0.0,
        }  # fmt: skip

    def fills(
        self,
        ep: np.ndarray,
        ep_slot: np.ndarray,
        res: StepResult,
        held_before: np.ndarray,
        acts: np.ndarray,
    ) -> list[dict[str, Any]]:
        """Trades rows of the step's fills (market by market, sell leg first: the order of
        ``StepResult.trade_rows``) and the episodes' running totals.

        Built leg by leg from the filled markets' entries (one gather and one ``tolist`` per
        column) rather than row by row from numpy scalars; the totals are updated sell legs
        first, then buy legs, which adds each market's amounts in the same order as going
        row by row.
        """
        self.orders += acts != 0
        sell, buy = res.sell, res.buy
        si, bi = np.flatnonzero(sell.filled), np.flatnonzero(buy.filled)
        if si.shape[0] == 0 and bi.shape[0] == 0:
            return []
        self.fills_n[si] += 1
        self.fees[si] += sell.fee[si]
        self.pnl[si] += res.realized[si]
        self.fills_n[bi] += 1
        self.fees[bi] += buy.fee[bi]
        rows = [self._leg_rows(ep, ep_slot, res, sell, si, held_before),
                self._leg_rows(ep, ep_slot, res, buy, bi, held_before)]  # fmt: skip
        if rows[0] and rows[1]:  # a stable sort keeps a market's sell row before its buy row
            return sorted(rows[0] + rows[1], key=_by_env)
        return rows[0] or rows[1]

    def _leg_rows(
        self,
        ep: np.ndarray,
        ep_slot: np.ndarray,
        res: StepResult,
        leg: Fills,
        idx: np.ndarray,
        held_before: np.ndarray,
    ) -> list[dict[str, Any]]:
        """Trades rows of one leg's fills in markets ``idx`` (ascending), and the first entry
        of each episode that a buy opens."""
        if idx.shape[0] == 0:
            return []
        selling = leg is res.sell
        cols = [c[idx].tolist() for c in (
            ep, ep_slot, res.t_ns, res.actions, held_before, leg.token, leg.side,
            leg.shares, leg.avg_price, leg.notional, leg.fee, leg.levels, leg.partial,
            leg.rejected, self.first_ns)]  # fmt: skip
        realized = res.realized[idx].tolist() if selling else [0.0] * idx.shape[0]
        out = []
        tokens, infos = self.TOKENS, self.info
        for row in zip(idx.tolist(), *cols, realized, strict=True):
            i, e, slot, t_ns, action, held, token, side, shares, avg, notional, fee = row[:12]
            levels, partial, rej, first, pnl = row[12:]
            info = infos[e]
            out.append({
                "env": i, "t_ns": t_ns, "slot": slot, "asset": info["asset"],
                "condition_id": info["condition_id"], "slug": info["slug"],
                "kind": "close" if side < 0 else "add" if held == token else "open",
                "action": action, "token": tokens[token], "side": side, "shares": shares,
                "avg_price": avg, "notional": notional, "fee": fee, "levels": levels,
                "partial": partial, "rejected": rej, "realized_pnl": pnl,
            })  # fmt: skip
            if side > 0 and first < 0:
                self.first_ns[i] = t_ns
                span = info["end_ns"] - info["start_ns"]
                self.first_left[i] = (info["end_ns"] - t_ns) / span
                self.first_px[i] = avg
                self.first_tok[i] = tokens[token]
        return out

    def settlements(
        self, ep: np.ndarray, settled: Settlement, t: np.ndarray
    ) -> list[dict[str, Any]]:
        """Trades rows of the settlements ``settled`` at step times ``t`` [N]."""
        out = []
        for row in settled.trade_rows(t):
            i = row["market"]
            out.append(self._row(int(ep[i]), row, "settle"))
            self.pnl[i] += row["realized_pnl"]
        return out

    def episode_row(self, e: int, i: int) -> dict[str, Any]:
        """The episodes row of episode ``e``, which env ``i`` has just finished."""
        info = self.info[e]
        settle = bool(self.store.settle[e])
        return {
            "slot": int(self.store.slot[e]), "asset": info["asset"],
            "condition_id": info["condition_id"], "slug": info["slug"],
            "start_ns": info["start_ns"], "end_ns": info["end_ns"],
            "outcome": info["outcome"], "outcome_source": info["outcome_source"],
            "gap": info["gap"], "settled_ns": info["end_ns"], "no_outcome": not settle,
            "orders": int(self.orders[i]), "fills": int(self.fills_n[i]),
            "pnl": float(self.pnl[i]) if settle else None,
            "fees": float(self.fees[i]), "first_entry_ns": int(self.first_ns[i]),
            "first_entry_time_left": float(self.first_left[i]),
            "first_entry_price": float(self.first_px[i]),
            "first_entry_token": self.first_tok[i],
            "reference_mismatch": info["reference_mismatch"],
            "reference_stale": info["reference_stale"], "episode": e, "env": i,
        }  # fmt: skip
