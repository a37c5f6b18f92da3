"""The settlement reference feed on the RTDS socket, and the windows' ground-truth outcomes.

RTDS frames (Polymarket's real-time data socket docs, crypto prices topics) look like::

    {"topic":"crypto_prices_chainlink","type":"update","timestamp":<server send ms>,
     "payload":{"symbol":"btc/usd","timestamp":<tick ms>,"value":65048.0789,
                "full_accuracy_value":"65048078900000000000000"}}

with ``crypto_prices_twap_sixty``/``_thirty`` and a ``window_s`` field in TWAP mode. Ticks are
stamped on whole seconds (about one per second per asset; a few are dropped, never the
window boundaries); the server sends each ``reference_publish_s`` (x 1.0-1.1) later.

**Resolution rule.** The open value of a window is the settlement tick whose
``payload.timestamp`` equals the window start; the close value is the tick stamped at the
window end (which is the next window's open value). The window resolves Up iff
``close >= open``, compared on ``full_accuracy_value`` (exact integers; a tie is Up). In
TWAP mode the ticks are the TWAP topic's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polyrl.events import CH_RTDS_WS, NS_PER_MS, NS_PER_S
from polyrl.sim.batch import Batch
from polyrl.sim.chunk import ChunkCtx
from polyrl.sim.numeric import TAG_REFERENCE, rng
from polyrl.sim.paths import LAT_RTDS, Skeleton
from polyrl.sim.specs import AssetSpec

RANK_REFERENCE = 60

_TOPICS = {
    "chainlink": ("crypto_prices_chainlink", None),
    "twap60": ("crypto_prices_twap_sixty", 60),
    "twap30": ("crypto_prices_twap_thirty", 30),
}
E18_PER_E8 = 10**10


def resolve(open_e18: int, close_e18: int) -> str:
    """``"Up"`` iff the close is at or above the open (a tie resolves Up), else ``"Down"``."""
    return "Up" if close_e18 >= open_e18 else "Down"


@dataclass(frozen=True, slots=True)
class WindowOutcome:
    """Ground truth of one asset's window: its ids, reference values and outcome.

    Values are the settlement ticks (see the module docstring); ``*_e18`` are the exact
    ``full_accuracy_value`` integers, ``open_value``/``close_value`` the JSON ``value``.
    """

    asset: str
    slug: str
    window_start_ns: int
    window_end_ns: int
    condition_id: str
    up_token: str
    down_token: str
    open_e18: int
    close_e18: int
    closed_ns: int
    """Gamma ``closedTime`` of the market, ns."""

    @property
    def open_value(self) -> float:
        """Open reference value, USD."""
        return self.open_e18 / 10**18

    @property
    def close_value(self) -> float:
        """Close reference value, USD."""
        return self.close_e18 / 10**18

    @property
    def outcome(self) -> str:
        """``Up`` or ``Down`` by :func:`resolve`."""
        return resolve(self.open_e18, self.close_e18)


def settle_e18(sk: Skeleton, asset_index: int, t_ns: int) -> int:
    """The settlement tick stamped at second ``t_ns`` as the exact E18 integer."""
    if t_ns % NS_PER_S:
        raise ValueError(f"reference ticks are stamped on whole seconds, not {t_ns}")
    return sk.settle_at(asset_index, t_ns) * E18_PER_E8


def reference_frames(ctx: ChunkCtx, spec: AssetSpec) -> Batch:
    """The RTDS update frames of one asset for one chunk (ticks stamped in the chunk)."""
    sk = ctx.sk
    i = spec.index
    topic, window_s = _TOPICS[ctx.sources.reference_feed]
    secs = np.arange(ctx.c0 // NS_PER_S, ctx.c1 // NS_PER_S, dtype=np.int64)
    feed_ns = secs * NS_PER_S
    j = sk.second_index(feed_ns)
    g = rng(ctx.seed, TAG_REFERENCE, ctx.chunk, i)
    # Publish delay varies by at most 10 %: consecutive ticks of one asset stay in order.
    delay = ctx.cfg.reference_publish_s * (1.0 + 0.1 * g.random(secs.size))
    server_ms = secs * 1_000 + np.rint(delay * 1_000).astype(np.int64)
    keep = sk.ref_present[i, j] & (feed_ns >= ctx.start_ns) & (feed_ns < ctx.end_ns)
    values = sk.settle_e8[i, j[keep]].tolist()
    srv = server_ms[keep].tolist()
    ticks = (secs[keep] * 1_000).tolist()
    extra = "" if window_s is None else f',"window_s":{window_s}'
    head = f'{{"topic":"{topic}","type":"update","timestamp":'
    sym = spec.reference_symbol
    texts = [
        f'{head}{s},"payload":{{"symbol":"{sym}","timestamp":{t},"value":{v / 1e8!r},'
        f'"full_accuracy_value":"{v}0000000000"{extra}}}}}'
        for s, t, v in zip(srv, ticks, values, strict=True)
    ]
    vt = server_ms[keep] * NS_PER_MS
    return Batch(CH_RTDS_WS, RANK_REFERENCE, vt, sk.recv_ns(LAT_RTDS, vt), texts)
