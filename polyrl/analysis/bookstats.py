"""How a recording's Polymarket books look: depth, spread, mid moves, trade rate, endings.

:func:`book_stats` rebuilds each window's *Up* book from the ``polymarket.book`` snapshots
and ``polymarket.price_change`` levels in receive order, samples it once a second
(``window_start + k s``, k = 0..899, the state received strictly before that instant) and
computes, per asset and over all assets:

- ``depth_bid_early`` / ``depth_ask_early``: median summed size of the best 5 levels per side
  (shares) with 10-15 minutes left; ``depth_bid_last`` / ``depth_ask_last``: the same in the
  last minute (60 s or less left);
- ``spread_rest_median`` / ``_mean`` / ``_p90`` and ``spread_last_*``: the Up spread with more
  than a minute left, and in the last minute;
- ``mid_still_share``: share of 1-second steps in which the Up mid did not move;
  ``move_median`` / ``move_p90``: size of its moves when it did (probability);
- ``trades_per_s_token``: ``polymarket.trade`` rows per second per token over the windows
  the recording covers whole;
- ``decided_share``: share of those windows whose last Up mid before the end is above 0.9 or
  below 0.1.

Only samples with a two-sided book count; depth and spread only those whose Up mid lies
within :data:`IN_PLAY` (0.05-0.95), while the market is still in play. The same figures can
be computed from any 1 Hz best-bid/ask-and-depth series, so a simulated day and a real one
compare like for like.
Memory: one hour of the two book streams (Up tokens, no raw text) at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from polyrl.events import ASSETS, NS_PER_S, WINDOW_NS
from polyrl.recording.reader import RecordingReader

BOOK = "polymarket.book"
CHANGE = "polymarket.price_change"
TRADE = "polymarket.trade"
MARKET = "polymarket.market"
EARLY_LEFT_S = 600
"""Samples with at least this many seconds left are "early" (10-15 minutes left)."""
LAST_LEFT_S = 60
"""Samples with at most this many seconds left are in the "last minute"."""
DECIDED = 0.9
"""A window is decided when its last Up mid is above this or below 1 - this."""
TOP = 5
IN_PLAY = (0.05, 0.95)
"""Depth and spread count only samples whose Up mid lies within these bounds (a decided
book's far side is empty or pinned to one price; real ones often lose it altogether)."""
QUIET_S = 5
"""After a token's last row, its book is sampled this many more seconds (unchanged); a window
is complete when its Up book was seen from its start to at most this long before its end."""
"""Levels per side summed into the depth figure."""

Sample = tuple[int, int, float, float, float, float, str]
"""``(window_start_ns, k, best_bid, best_ask, bid5, ask5, up_token)``: the book k s in."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BookStats:
    """The statistics of one group of windows (one asset, or ``all``); None when no sample
    of that kind exists (e.g. no complete window)."""

    group: str
    windows: int
    """Windows with at least one two-sided sample."""
    complete_windows: int
    """Windows whose whole span the recording covers (trades and endings use only these)."""
    samples: int
    depth_bid_early: float | None
    depth_ask_early: float | None
    depth_bid_last: float | None
    depth_ask_last: float | None
    spread_rest_median: float | None
    spread_rest_mean: float | None
    spread_rest_p90: float | None
    spread_last_median: float | None
    spread_last_mean: float | None
    spread_last_p90: float | None
    mid_still_share: float | None
    move_median: float | None
    move_p90: float | None
    trades_per_s_token: float | None
    decided_share: float | None

    def to_json(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return asdict(self)


def _markets(root: Path, dates: str | Sequence[str]) -> pl.DataFrame:
    reader = RecordingReader(
        root, dates=dates, streams=[MARKET],
        columns={MARKET: ["up_token", "down_token", "window_start_ns", "window_end_ns"]},
    )  # fmt: skip
    if MARKET not in reader.streams:
        return pl.DataFrame()
    df = reader.read_stream(MARKET)
    return df.unique(subset=["up_token"], keep="first", maintain_order=True)


def _samples(
    reader: RecordingReader, windows: dict[str, list[tuple[int, int]]]
) -> tuple[dict[str, list[Sample]], dict[str, tuple[int, int]]]:
    """Per Up token: a :data:`Sample` for each sample
    k seconds into a window with a two-sided book, and the token's first/last receive time.

    The book is the last snapshot with every later level change applied (receive order)."""
    bids: dict[str, dict[float, float]] = {}
    asks: dict[str, dict[float, float]] = {}
    due: dict[str, list[tuple[int, int, int]]] = {
        key: sorted(
            (ws + k * NS_PER_S, ws, k) for ws, _ in spans for k in range(WINDOW_NS // NS_PER_S + 1)
        )[::-1]
        for key, spans in windows.items()
    }
    out: dict[str, list[Sample]] = {k: [] for k in windows}
    seen: dict[str, tuple[int, int]] = {}
    keys = list(windows)

    def emit(key: str, before_ns: int) -> None:
        pending = due[key]
        b, a = bids.get(key), asks.get(key)
        while pending and pending[-1][0] < before_ns:
            _, ws, k = pending.pop()
            if b and a:
                bp = sorted(b, reverse=True)[:TOP]
                ap = sorted(a)[:TOP]
                out[key].append(
                    (ws, k, bp[0], ap[0], sum(b[p] for p in bp), sum(a[p] for p in ap), key)
                )

    for date, hour in reader.hours():
        frames = reader.read_hour(date, hour)
        parts = []
        if BOOK in frames:
            bk = frames[BOOK].filter(pl.col("key").is_in(keys))
            parts.append(
                bk.select(
                    "recv_ns",
                    "seq",
                    "key",
                    pl.lit(0).alias("kind"),
                    pl.lit(None, pl.String).alias("side"),
                    pl.lit(None, pl.Float64).alias("price"),
                    pl.lit(None, pl.Float64).alias("size"),
                    "bid_px",
                    "bid_size",
                    "ask_px",
                    "ask_size",
                )  # fmt: skip
            )
        if CHANGE in frames:
            pc = frames[CHANGE].filter(pl.col("key").is_in(keys))
            empty = pl.lit(None, pl.List(pl.Float64))
            parts.append(
                pc.select(
                    "recv_ns",
                    "seq",
                    "key",
                    pl.lit(1).alias("kind"),
                    "side",
                    "price",
                    "size",
                    empty.alias("bid_px"),
                    empty.alias("bid_size"),
                    empty.alias("ask_px"),
                    empty.alias("ask_size"),
                )  # fmt: skip
            )
        if not parts:
            continue
        ev = pl.concat(parts).sort("recv_ns", "seq")
        for recv, key, kind, side, price, size, bpx, bsz, apx, asz in zip(
            *(ev[c].to_list() for c in ("recv_ns", "key", "kind", "side", "price", "size")),
            *(ev[c].to_list() for c in ("bid_px", "bid_size", "ask_px", "ask_size")),
            strict=True,
        ):
            if due[key] and due[key][-1][0] < recv:
                emit(key, recv)
            first = seen.get(key)
            seen[key] = (recv if first is None else first[0], recv)
            if kind == 0:
                bids[key] = dict(zip(bpx, bsz, strict=False))
                asks[key] = dict(zip(apx, asz, strict=False))
                continue
            levels = bids.setdefault(key, {}) if side == "BUY" else asks.setdefault(key, {})
            if size > 0:
                levels[price] = size
            else:
                levels.pop(price, None)
    for key in keys:
        if key in seen:  # a book silent up to QUIET_S after its last row is taken as unchanged
            emit(key, seen[key][1] + QUIET_S * NS_PER_S + 1)
    return out, seen


def _trade_counts(reader: RecordingReader, spans: dict[str, tuple[int, int]]) -> dict[str, int]:
    """Trades per token received within ``spans[token]`` = (start_ns, end_ns)."""
    counts = dict.fromkeys(spans, 0)
    if TRADE not in reader.streams:
        return counts
    for date, hour in reader.hours():
        df = reader.read_hour(date, hour).get(TRADE)
        if df is None:
            continue
        for key, recv in zip(df["key"].to_list(), df["recv_ns"].to_list(), strict=True):
            span = spans.get(key)
            if span is not None and span[0] <= recv < span[1]:
                counts[key] += 1
    return counts


def _q(values: list[float], q: float) -> float | None:
    return float(np.quantile(np.asarray(values), q)) if values else None


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def book_stats(root: Path | str, dates: str | Sequence[str] = "*") -> list[BookStats]:
    """Book statistics per asset (in canonical order) and over all assets (``all``, last);
    see the module docstring. Raises RecordingError when the root or dates select nothing."""
    root = Path(root)
    markets = _markets(root, dates)
    if markets.is_empty():
        return [_stats("all", [], [], 0, None)]
    rows = markets.to_dicts()
    asset_of = {r["up_token"]: (r["asset"] or "?") for r in rows}
    windows: dict[str, list[tuple[int, int]]] = {}
    for r in rows:
        windows.setdefault(r["up_token"], []).append((r["window_start_ns"], r["window_end_ns"]))
    reader = RecordingReader(
        root, dates=dates, streams=[BOOK, CHANGE],
        columns={BOOK: ["bid_px", "bid_size", "ask_px", "ask_size"],
                 CHANGE: ["side", "price", "size"]},
    )  # fmt: skip
    samples, seen = _samples(reader, windows)
    # A window is complete when its Up token's book was seen from its start to its end.
    complete: dict[tuple[str, int], int] = {}
    spans: dict[str, tuple[int, int]] = {}
    for r in rows:
        up, ws, we = r["up_token"], r["window_start_ns"], r["window_end_ns"]
        first_last = seen.get(up)
        if first_last and first_last[0] <= ws and first_last[1] >= we - QUIET_S * NS_PER_S:
            complete[(up, ws)] = we
            spans[up] = (ws, we)
            spans[r["down_token"]] = (ws, we)
    trade_reader = RecordingReader(root, dates=dates, streams=[TRADE], columns={TRADE: []})
    trades = _trade_counts(trade_reader, spans)
    token_asset = dict(asset_of)
    for r in rows:
        token_asset[r["down_token"]] = asset_of[r["up_token"]]
    groups = [a for a in ASSETS if a in set(asset_of.values())]
    out = []
    for group in [*groups, "all"]:
        keys = [k for k in samples if group == "all" or asset_of[k] == group]
        rows_g = [s for k in keys for s in samples[k]]
        wins = [(k, ws) for (k, ws) in complete if k in keys]
        finals = [
            s
            for k in keys
            for s in samples[k]
            if (k, s[0]) in complete and s[1] == WINDOW_NS // NS_PER_S
        ]
        n_tokens = 2 * len(wins)
        n_trades = sum(
            c for tok, c in trades.items() if group == "all" or token_asset.get(tok) == group
        )
        rate = n_trades / (n_tokens * WINDOW_NS / NS_PER_S) if n_tokens else None
        n_win = sum(len({s[0] for s in samples[k]}) for k in keys)
        out.append(_stats(group, rows_g, finals, len(wins), rate, n_win))
    return out


def _stats(
    group: str,
    rows: list[Sample],
    finals: list[Sample],
    complete: int,
    rate: float | None,
    windows: int = 0,
) -> BookStats:
    end = WINDOW_NS // NS_PER_S
    rows = [r for r in rows if r[1] < end]
    lo, hi = IN_PLAY
    play = [r for r in rows if lo <= (r[2] + r[3]) / 2.0 <= hi]
    early = [r for r in play if end - r[1] >= EARLY_LEFT_S]
    last = [r for r in play if end - r[1] <= LAST_LEFT_S]
    rest = [r for r in play if end - r[1] > LAST_LEFT_S]
    # Window starts are shared by the assets, so key samples by (start, k, asset's row).
    by_time = {(r[0], r[1], r[6]): (r[2] + r[3]) / 2.0 for r in rows}
    still, moves = 0, []
    steps = 0
    for (ws, k, tok), m in by_time.items():
        prev = by_time.get((ws, k - 1, tok))
        if prev is None:
            continue
        steps += 1
        d = round(abs(m - prev), 6)
        if d < 1e-9:
            still += 1
        else:
            moves.append(d)
    mids = [(r[2] + r[3]) / 2.0 for r in finals]
    spread_rest = [round(r[3] - r[2], 6) for r in rest]
    spread_last = [round(r[3] - r[2], 6) for r in last]
    return BookStats(
        group=group,
        windows=windows,
        complete_windows=complete,
        samples=len(rows),
        depth_bid_early=_q([r[4] for r in early], 0.5),
        depth_ask_early=_q([r[5] for r in early], 0.5),
        depth_bid_last=_q([r[4] for r in last], 0.5),
        depth_ask_last=_q([r[5] for r in last], 0.5),
        spread_rest_median=_q(spread_rest, 0.5),
        spread_rest_mean=_mean(spread_rest),
        spread_rest_p90=_q(spread_rest, 0.9),
        spread_last_median=_q(spread_last, 0.5),
        spread_last_mean=_mean(spread_last),
        spread_last_p90=_q(spread_last, 0.9),
        mid_still_share=still / steps if steps else None,
        move_median=_q(moves, 0.5),
        move_p90=_q(moves, 0.9),
        trades_per_s_token=rate,
        decided_share=(
            sum(1 for m in mids if m > DECIDED or m < 1 - DECIDED) / len(mids) if mids else None
        ),
    )


def _fmt(v: float | None, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.{digits}f}"


def format_book_stats(stats: list[BookStats]) -> str:
    """A text table: one column per group, one row per statistic."""
    rows = [
        ("windows (complete)", lambda s: f"{s.windows} ({s.complete_windows})"),
        ("top-5 bid depth, 10-15 min left", lambda s: _fmt(s.depth_bid_early, 0)),
        ("top-5 ask depth, 10-15 min left", lambda s: _fmt(s.depth_ask_early, 0)),
        ("top-5 bid depth, last minute", lambda s: _fmt(s.depth_bid_last, 0)),
        ("top-5 ask depth, last minute", lambda s: _fmt(s.depth_ask_last, 0)),
        ("spread median/mean/p90, >1 min left", lambda s: _spreads(s, "rest")),
        ("spread median/mean/p90, last minute", lambda s: _spreads(s, "last")),
        ("1 s steps with no mid move", lambda s: _fmt(s.mid_still_share, 3)),
        ("mid move median / p90", lambda s: f"{_fmt(s.move_median, 3)} / {_fmt(s.move_p90, 3)}"),
        ("trades per s per token", lambda s: _fmt(s.trades_per_s_token, 2)),
        ("windows ending decided", lambda s: _fmt(s.decided_share, 3)),
    ]
    head = ["statistic", *[s.group for s in stats]]
    table = [head] + [[name, *[f(s) for s in stats]] for name, f in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    lines = ["Polymarket books (Up token, 1 s samples; depth and spread with mid 0.05-0.95)"]
    for r in table:
        lines.append(
            "  " + r[0].ljust(widths[0]) + "  "
            + "  ".join(c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True))
        )  # fmt: skip
    return "\n".join(lines)


def _spreads(s: BookStats, part: str) -> str:
    vals = [getattr(s, f"spread_{part}_{k}") for k in ("median", "mean", "p90")]
    return "/".join(_fmt(v, 3) for v in vals)
