"""One Polymarket Up/Down market's order books, simulated event by event, as CLOB frames.

**The book model.** A resting order on one token is also an order on the other (a bid at
``p`` for Up is an ask at ``1 - p`` for Down), so the simulator keeps a single *Up* book and
writes every level change as the mirrored pair of ``price_changes[]`` entries: ``BUY p`` on
one token and ``SELL 1 - p`` on the other, same size, BUY entry first. The Down book is the
exact mirror of the Up book at all times.

Prices are integers in thousandths (``p`` = price * 1000), sizes integers in hundredths of a
share, so the text on the wire is exact and a consumer that applies ``book`` then every
``price_change`` in order reproduces each later ``book`` snapshot exactly.

**Dynamics.** Events arrive as a Poisson process (``book_quote_rate`` + ``book_trade_rate``
per second; x ``volatile_activity_mult`` when volatile; trades pick up during the window):

* a *quote* event re-centres the touch on the target mid, ``clip(fair(t - book_lag_s) +
  noise)`` (``book_lag_s`` is 0 unless an edge is planted on purpose; fair from
  :meth:`Skeleton.fair_up`, an OU noise of sd ``book_noise``), ``width`` cents wide
  (half-cents on the 0.001 tick): crossing levels are cancelled, the new touch placed, depth
  kept at about ``book_levels`` per side, and often one level resized towards a fresh size;
* a *trade* takes (part of) the best level on the side an informed taker picks (leaning to
  the unlagged fair value): one ``last_trade_price`` per maker filled (``book_fills_per_trade``
  on average) on the token the taker traded, the ``price_change`` of the level, then a fresh
  ``book`` of both tokens.

The touch stays put while the target lies inside a spread of one or two cents (makers do
not requote for nothing). Level sizes shrink to ``book_end_depth`` of their size over the
window's last ``book_thin_s``, and in its last minute the spread is often several cents wide.

After each event, ``best_bid_ask`` frames (both tokens) follow when the Up touch changed.

**Tick size.** The tick is 0.001 exactly while the Up book's best bid is above 0.96 or its
best ask below 0.04 (equivalently for the Down book), and 0.01 otherwise; every change of
that predicate, checked after each ``price_change`` frame, emits ``tick_size_change`` for
both tokens. Going back to 0.01, levels off the coarse grid are re-pegged (bids down, asks
up) by one more ``price_change`` frame.

**Per-entry best_bid/best_ask** report the token's touch after all the level changes of the
event that produced the entry (so, as on the venue in bursts, an early entry can already
show the touch that later entries of the same event complete).

The frames of one event share its millisecond timestamp; with ``array_frame_prob`` they are
sent together as one JSON-array frame. Book frames list bids ascending and asks descending
(best last), as the live venue does.

The market's identity and the price grid's wire text live in :mod:`polyrl.sim.clob`. The
book stays one class (about 500 lines): quoting, trading and the frames' hashes draw in turn
from one generator, so a seed's frames depend on that order and the parts share its state.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from polyrl.events import NS_PER_MS, WINDOW_NS
from polyrl.sim.clob import COARSE, FINE, PX, TICK_TEXT, MarketIds, size_text, small_tick
from polyrl.sim.config import SimConfig
from polyrl.sim.numeric import TAG_MARKET, hex_strings, ou, rng
from polyrl.sim.paths import STEP_NS, STEPS_PER_S, Skeleton

MIN_LEVEL = 500
"""Smallest resting size, hundredths of a share (5 shares, the venue's minimum order)."""
_POOL = 2048
END_TAU_S = 0.05
"""Smallest time left (seconds) in the fair value the book follows (see MarketSim)."""


class MarketSim:
    """The two books of one market from its subscription to its window's end.

    ``advance(until_ms, ts, texts)`` appends the CLOB frames with timestamps before
    ``until_ms`` (and before the window's end) to ``ts`` (ms) and ``texts``; it is called
    chunk after chunk and continues where it stopped, so its frames never depend on how
    time is cut into chunks.
    """

    def __init__(
        self, ids: MarketIds, sk: Skeleton, cfg: SimConfig, seed: int, subscribe_ns: int
    ) -> None:
        self.ids = ids
        self.cfg = cfg
        ws = ids.window_start_ns
        self.g = rng(seed, TAG_MARKET, ids.asset_index, ws // 1_000_000_000)
        self.t_sub_ms = -(-subscribe_ns // NS_PER_MS)
        self.t_end_ms = ids.window_end_ns // NS_PER_MS
        g0 = subscribe_ns - subscribe_ns % STEP_NS
        self.g0_ms = g0 // NS_PER_MS
        count = max(1, (ids.window_end_ns - g0) // STEP_NS)
        times = g0 + np.arange(count, dtype=np.int64) * STEP_NS
        lag = int(round(cfg.book_lag_s * 1e9))
        i = ids.asset_index
        # Makers treat the reference a second before the close as all but final: the book's
        # fair value counts the seconds left less one (at least END_TAU_S), so a window ends
        # decided as the real ones measured do (bar a close within a hair of its strike).
        fair_lag = sk.fair_up(i, ws, times - lag, END_TAU_S, 1.0)
        fair_now = sk.fair_up(i, ws, times, END_TAU_S, 1.0)
        noise = ou(
            self.g.standard_normal(count), cfg.book_noise_tau_s * STEPS_PER_S, cfg.book_noise
        )
        self.target = (np.clip(fair_lag + noise, 0.002, 0.998) * 1000.0).tolist()
        self.fair = (fair_now * 1000.0).tolist()
        volatile = sk.regime[sk.step_index(times)] == 1
        act = np.where(volatile, cfg.volatile_activity_mult, 1.0)
        elapsed = np.clip((times - ws) / WINDOW_NS, -1.0, 1.0)
        trade = cfg.book_trade_rate * np.where(elapsed < 0, 0.3, 0.5 + np.maximum(elapsed, 0))
        self.rate_ms = ((cfg.book_quote_rate + trade) * act / 1000.0).tolist()
        self.trade_share = (trade / (cfg.book_quote_rate + trade + 1e-12)).tolist()
        left_s = (ids.window_end_ns - times) / 1e9
        thin = np.clip(left_s / cfg.book_thin_s, 0.0, 1.0)
        self.depth = (cfg.book_end_depth + (1.0 - cfg.book_end_depth) * thin).tolist()
        """Level-size multiplier per 100 ms step: 1, thinning to ``book_end_depth`` at the end."""
        self.last_minute = (left_s <= 60.0).tolist()

        self.bid_px: list[int] = []  # ascending: best last
        self.ask_px: list[int] = []  # descending: best last
        self.bid_sz: dict[int, int] = {}
        self.ask_sz: dict[int, int] = {}
        # Wire text of each level, keyed by its Up price: Up bids/asks and the Down levels
        # they mirror (an Up bid at p is a Down ask at 1 - p).
        self.bid_up: dict[int, str] = {}
        self.ask_up: dict[int, str] = {}
        self.ask_down: dict[int, str] = {}
        self.bid_down: dict[int, str] = {}
        self.tick = COARSE
        self.width = 1
        self.ltp: list[int | None] = [None, None]  # last trade price of Up, Down
        self.started = False
        self.next_ms = self.t_sub_ms
        self.last_bbo: tuple[int, int] | None = None
        self.volume = 0.0
        """Traded notional, USDC."""
        self._u: list[float] = []
        self._n: list[float] = []
        self._e: list[float] = []
        self._h: list[str] = []
        self.head_up = f'"market":"{ids.condition_id}","asset_id":"{ids.up_token}"'
        self.head_down = f'"market":"{ids.condition_id}","asset_id":"{ids.down_token}"'

    # -- random pools (one Generator call per 2048 draws) ----------------------------------

    def _unif(self) -> float:
        if not self._u:
            self._u = self.g.random(_POOL).tolist()
        return self._u.pop()

    def _norm(self) -> float:
        if not self._n:
            self._n = self.g.standard_normal(_POOL).tolist()
        return self._n.pop()

    def _expo(self) -> float:
        if not self._e:
            self._e = self.g.standard_exponential(_POOL).tolist()
        return self._e.pop()

    def _hash(self) -> str:
        if not self._h:
            self._h = hex_strings(self.g, _POOL // 4)
        return self._h.pop()

    # -- book primitives -----------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """True once the window has ended (no more frames)."""
        return self.started and self.next_ms >= self.t_end_ms

    def touch(self) -> tuple[int, int]:
        """(best bid, best ask) of the Up book, thousandths."""
        return self.bid_px[-1], self.ask_px[-1]

    def mid(self) -> float:
        """Up mid price, probability."""
        bb, ba = self.touch()
        return (bb + ba) / 2000.0

    def _level_size(self, j: int) -> int:
        cfg = self.cfg
        s = cfg.book_level_size * self.depth[j] * math.exp(cfg.book_level_sigma * self._norm())
        c = max(MIN_LEVEL, int(s * 100))
        return c - c % 100 if self._unif() < 0.6 else c

    def _set(self, side: int, p: int, s: int, changes: list[tuple[int, int, int]]) -> None:
        """Set Up level (side 0 bid, 1 ask) at ``p`` to size ``s`` (0 removes); record it.

        Keeps each level's wire text for both tokens ready, so snapshots are joins.
        """
        if side == 0:
            px, sz, key, up_tx, down_tx = self.bid_px, self.bid_sz, None, self.bid_up, self.ask_down
        else:
            px, sz, key, up_tx, down_tx = self.ask_px, self.ask_sz, _neg, self.ask_up, self.bid_down
        if s > 0:
            if p not in sz:
                bisect.insort(px, p, key=key)
            sz[p] = s
            st = size_text(s)
            up_tx[p] = f'{{"price":"{PX[p]}","size":"{st}"}}'
            down_tx[p] = f'{{"price":"{PX[1000 - p]}","size":"{st}"}}'
        else:
            del sz[p], up_tx[p], down_tx[p]
            px.pop(bisect.bisect_left(px, p if key is None else -p, key=key))
        changes.append((side, p, s))

    def _entries(self, changes: list[tuple[int, int, int]]) -> str:
        bb, ba = self.touch()
        up_bbo = f'"best_bid":"{PX[bb]}","best_ask":"{PX[ba]}"'
        down_bbo = f'"best_bid":"{PX[1000 - ba]}","best_ask":"{PX[1000 - bb]}"'
        up, down = self.ids.up_token, self.ids.down_token
        parts = []
        for side, p, s in changes:
            st = size_text(s)
            e_up = (
                f'{{"asset_id":"{up}","price":"{PX[p]}","size":"{st}",'
                f'"side":"{"BUY" if side == 0 else "SELL"}","hash":"{self._hash()}",{up_bbo}}}'
            )
            e_down = (
                f'{{"asset_id":"{down}","price":"{PX[1000 - p]}","size":"{st}",'
                f'"side":"{"SELL" if side == 0 else "BUY"}","hash":"{self._hash()}",{down_bbo}}}'
            )
            parts.append(f"{e_up},{e_down}" if side == 0 else f"{e_down},{e_up}")
        return ",".join(parts)

    def _price_change(self, t: int, changes: list[tuple[int, int, int]]) -> str:
        return (
            f'{{"market":"{self.ids.condition_id}","price_changes":[{self._entries(changes)}],'
            f'"timestamp":"{t}","event_type":"price_change"}}'
        )

    def _sides(self, down: bool) -> tuple[str, str]:
        """(bids, asks) JSON arrays of one token in wire order (best last)."""
        if not down:
            return ",".join(map(self.bid_up.__getitem__, self.bid_px)), ",".join(
                map(self.ask_up.__getitem__, self.ask_px)
            )
        # Down bids mirror Up asks (descending Up prices = ascending Down prices) and back.
        return ",".join(map(self.bid_down.__getitem__, self.ask_px)), ",".join(
            map(self.ask_down.__getitem__, self.bid_px)
        )

    def _book(self, t: int, down: bool, initial: bool) -> str:
        bids, asks = self._sides(down)
        head = self.head_down if down else self.head_up
        if initial:
            ltp = self.ltp[1 if down else 0]
            ltp_text = "" if ltp is None else PX[ltp]
            return (
                f'{{{head},"timestamp":"{t}","hash":"{self._hash()}","bids":[{bids}],'
                f'"asks":[{asks}],"tick_size":"{TICK_TEXT[self.tick]}","event_type":"book",'
                f'"last_trade_price":"{ltp_text}"}}'
            )
        return (
            f'{{{head},"bids":[{bids}],"asks":[{asks}],"hash":"{self._hash()}",'
            f'"timestamp":"{t}","event_type":"book"}}'
        )

    # -- events ------------------------------------------------------------------------------

    def _spread(self) -> int:
        """The quoted Up spread, thousandths: ``width`` cents on the 0.01 tick, ``width``
        half-cents on the 0.001 tick."""
        return self.width * (COARSE if self.tick == COARSE else COARSE // 2)

    def _draw_width(self, j: int) -> None:
        """Draw the spread width (in units of :meth:`_spread`): 1, or 2 with ``book_wide_prob``;
        in the last minute, with ``book_end_wide_prob`` 2 to 8 instead."""
        if self.last_minute[j] and self._unif() < self.cfg.book_end_wide_prob:
            self.width = 2 + int(self._unif() * 7)
        else:
            self.width = 2 if self._unif() < self.cfg.book_wide_prob else 1

    def _target_touch(self, m: float) -> tuple[int, int]:
        tick = self.tick
        sp = self._spread()
        b = int(math.floor((m - sp / 2.0) / tick)) * tick
        b = min(max(b, tick), 1000 - tick - sp)
        return b, b + sp

    def _initial(self, t: int, out_ts: list[int], out_tx: list[str]) -> None:
        j = min((t - self.g0_ms) // 100, len(self.target) - 1)
        m = self.target[j]
        self._draw_width(j)
        b, a = self._target_touch(m)
        if small_tick(b, a):
            self.tick = FINE
            b, a = self._target_touch(m)
        sink: list[tuple[int, int, int]] = []
        k = self.cfg.book_levels
        self._set(0, b, self._level_size(j), sink)
        self._set(1, a, self._level_size(j), sink)
        for _ in range(3 * k):
            if len(self.bid_px) >= k and len(self.ask_px) >= k:
                break
            self._grow(j, sink)
        self.last_bbo = self.touch()
        texts = [self._book(t, False, True), self._book(t, True, True)]
        out_ts.append(t)
        out_tx.append("[" + ",".join(texts) + "]")

    def _grow(self, j: int, changes: list[tuple[int, int, int]]) -> None:
        """Keep about ``book_levels`` levels per side: add one near the touch or drop the
        farthest."""
        k = self.cfg.book_levels
        tick = self.tick
        reach = 2 * k
        if len(self.bid_px) < k:
            p = self.bid_px[-1] - tick * (1 + int(self._unif() * reach))
            if p >= tick and p not in self.bid_sz:
                self._set(0, p, self._level_size(j), changes)
        elif len(self.bid_px) > k + 3:
            self._set(0, self.bid_px[0], 0, changes)
        if len(self.ask_px) < k:
            p = self.ask_px[-1] + tick * (1 + int(self._unif() * reach))
            if p <= 1000 - tick and p not in self.ask_sz:
                self._set(1, p, self._level_size(j), changes)
        elif len(self.ask_px) > k + 3:
            self._set(1, self.ask_px[0], 0, changes)

    def _quote(self, j: int, changes: list[tuple[int, int, int]]) -> None:
        if self._unif() < (0.2 if self.last_minute[j] else 0.05):
            self._draw_width(j)
        m = self.target[j]
        b, a = self._target_touch(m)
        cb, ca = self.touch()
        if self.width <= 2 and cb <= m <= ca and ca - cb == self._spread():
            # The target still lies inside a narrow quoted spread: makers leave the touch be.
            b, a = cb, ca
        while self.ask_px and self.ask_px[-1] < a:
            self._set(1, self.ask_px[-1], 0, changes)
        while self.bid_px and self.bid_px[-1] > b:
            self._set(0, self.bid_px[-1], 0, changes)
        if a not in self.ask_sz:
            self._set(1, a, self._level_size(j), changes)
        if b not in self.bid_sz:
            self._set(0, b, self._level_size(j), changes)
        self._grow(j, changes)
        if self._unif() < 0.6:
            side = 0 if self._unif() < 0.5 else 1
            px = self.bid_px if side == 0 else self.ask_px
            sz = self.bid_sz if side == 0 else self.ask_sz
            depth = min(len(px), self.cfg.book_levels)
            p = px[-1 - int(self._unif() * depth)]
            # Resized towards a fresh draw at today's depth (so books thin as the end nears).
            new = int(math.sqrt(sz[p] * self._level_size(j)))
            if new < MIN_LEVEL:
                new = 0 if len(px) > 1 else MIN_LEVEL
            if new != sz[p]:
                self._set(side, p, new, changes)

    def _trade(
        self, t: int, j: int, frames: list[str], changes: list[tuple[int, int, int]]
    ) -> bool:
        """A taker trade; False when the touch is too thin to trade."""
        bb, ba = self.touch()
        lean = self.cfg.book_informed * (self.fair[j] - (bb + ba) / 2.0) / 10.0
        buy = self._unif() < 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, lean))))
        side = 1 if buy else 0  # the Up level taken: an ask when the taker buys Up
        p = ba if buy else bb
        sz = self.ask_sz if buy else self.bid_sz
        only = len(self.ask_px if buy else self.bid_px) == 1
        med = self.cfg.book_trade_size
        if self._unif() < 0.9:
            shares = med * math.exp(0.8 * self._norm())
        else:
            shares = 3.0 * med * self._unif() ** (-1.0 / 1.5)
        q = max(MIN_LEVEL, int(shares * 100))
        have = sz[p]
        if q >= have - 100:  # no sub-share remainders: take the level (but never the last)
            q = have - MIN_LEVEL if only else have
        if q < MIN_LEVEL // 5:
            return False
        on_down = self._unif() < 0.5
        tp = 1000 - p if on_down else p
        tside = "BUY" if buy != on_down else "SELL"
        self.ltp[1 if on_down else 0] = tp
        token = self.ids.down_token if on_down else self.ids.up_token
        self.volume += q / 100.0 * tp / 1000.0
        # The taker fills several makers' orders at the level: one last_trade_price each.
        fills = 1
        more = 1.0 - 1.0 / self.cfg.book_fills_per_trade
        while fills < 10 and self._unif() < more:
            fills += 1
        fills = max(1, min(fills, q // 100))
        part = q // fills
        for k in range(fills):
            fq = part if k < fills - 1 else q - part * (fills - 1)
            frames.append(
                f'{{"asset_id":"{token}","event_type":"last_trade_price",'
                f'"fee_rate_bps":"{self.cfg.trade_fee_rate_bps}",'
                f'"market":"{self.ids.condition_id}","price":"{PX[tp]}","side":"{tside}",'
                f'"size":"{size_text(fq)}","timestamp":"{t}",'
                f'"transaction_hash":"0x{self._hash()}{self._hash()[:24]}"}}'
            )
        self._set(side, p, have - q, changes)
        frames.append(self._price_change(t, changes))
        changes.clear()
        return True

    def _check_tick(self, t: int, j: int, frames: list[str]) -> None:
        bb, ba = self.touch()
        want = FINE if small_tick(bb, ba) else COARSE
        if want == self.tick:
            return
        old = TICK_TEXT[self.tick]
        new = TICK_TEXT[want]
        for token in (self.ids.up_token, self.ids.down_token):
            frames.append(
                f'{{"asset_id":"{token}","event_type":"tick_size_change",'
                f'"market":"{self.ids.condition_id}","new_tick_size":"{new}",'
                f'"old_tick_size":"{old}","timestamp":"{t}"}}'
            )
        self.tick = want
        if want == COARSE:
            changes: list[tuple[int, int, int]] = []
            for p in [q for q in self.bid_px if q % COARSE]:
                s = self.bid_sz[p]
                self._set(0, p, 0, changes)
                to = p - p % COARSE
                if to >= COARSE:
                    self._set(0, to, self.bid_sz.get(to, 0) + s, changes)
            for p in [q for q in self.ask_px if q % COARSE]:
                s = self.ask_sz[p]
                self._set(1, p, 0, changes)
                to = p - p % COARSE + COARSE
                if to <= 1000 - COARSE:
                    self._set(1, to, self.ask_sz.get(to, 0) + s, changes)
            if not self.bid_px:
                self._set(0, COARSE, self._level_size(j), changes)
            if not self.ask_px:
                self._set(1, 1000 - COARSE, self._level_size(j), changes)
            if changes:
                frames.append(self._price_change(t, changes))

    def _bba(self, t: int, frames: list[str]) -> None:
        bbo = self.touch()
        if bbo == self.last_bbo:
            return
        self.last_bbo = bbo
        bb, ba = bbo
        spread = PX[ba - bb]
        for head, b, a in ((self.head_up, bb, ba), (self.head_down, 1000 - ba, 1000 - bb)):
            frames.append(
                f'{{"event_type":"best_bid_ask",{head},"best_bid":"{PX[b]}",'
                f'"best_ask":"{PX[a]}","spread":"{spread}","timestamp":"{t}"}}'
            )

    def _event(self, t: int, out_ts: list[int], out_tx: list[str]) -> None:
        j = min((t - self.g0_ms) // 100, len(self.target) - 1)
        frames: list[str] = []
        changes: list[tuple[int, int, int]] = []
        traded = False
        if self._unif() < self.trade_share[j]:
            traded = self._trade(t, j, frames, changes)
            if traded:
                self._check_tick(t, j, frames)
                frames.append(self._book(t, False, False))
                frames.append(self._book(t, True, False))
        if not traded:
            self._quote(j, changes)
            if not changes:
                return
            frames.append(self._price_change(t, changes))
            self._check_tick(t, j, frames)
        self._bba(t, frames)
        if len(frames) > 1 and self._unif() < self.cfg.array_frame_prob:
            out_ts.append(t)
            out_tx.append("[" + ",".join(frames) + "]")
        else:
            out_ts.extend([t] * len(frames))
            out_tx.extend(frames)

    def advance(self, until_ms: int, out_ts: list[int], out_tx: list[str]) -> None:
        """Append the frames stamped before ``until_ms`` (ms) that are not out yet."""
        if not self.started:
            if self.t_sub_ms >= min(until_ms, self.t_end_ms):
                return
            self.started = True
            self._initial(self.t_sub_ms, out_ts, out_tx)
            self.next_ms = self.t_sub_ms + self._gap(self.t_sub_ms)
        stop = min(until_ms, self.t_end_ms)
        while self.next_ms < stop:
            t = self.next_ms
            self._event(t, out_ts, out_tx)
            self.next_ms = t + self._gap(t)

    def _gap(self, t: int) -> int:
        j = min((t - self.g0_ms) // 100, len(self.rate_ms) - 1)
        return int(self._expo() / self.rate_ms[j])


def _neg(x: int) -> int:
    return -x
