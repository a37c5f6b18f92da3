"""Synthetic markets as raw frames: :func:`generate_frames` and :class:`Simulation`.

The simulator is pure: it reads no clock, file or socket; it yields
:class:`polyrl.events.Frame` objects whose text is exactly what the venues send (see
:mod:`polyrl.sim.binance`, :mod:`polyrl.sim.book`, :mod:`polyrl.sim.polymarket`,
:mod:`polyrl.sim.reference`) and whose ``recv_ns`` is the venue's send time plus a simulated
latency per connection.

**How it is cut.** A cheap global skeleton (:mod:`polyrl.sim.paths`: 100 ms prices, regimes,
reference and latency paths) is computed once for the span. Frames are then generated in
5-minute chunks of venue time aligned to the epoch; each stream of each asset in a chunk
draws from generators keyed by ``(seed, stream, absolute chunk index, asset)`` and reads only
the skeleton. The only state carried from chunk to chunk is the trade-id counters (whose
per-chunk increments come from their own cheap generators, see
:func:`polyrl.sim.binance_trades.trade_counts`) and the Polymarket books (simulated per market from
its subscription, with its own generator). ``Simulation.frames(from_ns=, to_ns=)`` uses this
to produce any part of the run on its own (for example one hour per process), and the parts
concatenate to the full run exactly. Memory is bounded by one chunk of frames (~100k for
four assets) plus the skeleton (~55 MB per simulated day).

**Order.** Frames come out in nondecreasing ``recv_ns``; ties are broken by stream rank
(Binance spot, futures, REST, CLOB, Gamma, RTDS), then venue time, then generation order.
Within one connection receive time strictly follows send order. Only frames with venue
time in ``[start_ns, end_ns)`` and ``recv_ns < end_ns`` are yielded.

**Determinism.** Same config, sources, assets, span and seed give the same frames, byte for
byte (on the same numpy version). A subset of assets gives exactly the frames of those
assets in a run of all four, and a run to an earlier end gives a prefix of a run to a later
end (same start).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from polyrl.errors import ConfigError
from polyrl.events import ASSETS, WINDOW_NS, Frame
from polyrl.sim.batch import NO_REQUEST, Batch
from polyrl.sim.binance_book import book_tickers, depth_partials
from polyrl.sim.binance_futures import liquidations, mark_prices
from polyrl.sim.binance_rest import open_interest, warmup_klines
from polyrl.sim.binance_trades import IdState, agg_trades, initial_ids, trade_counts
from polyrl.sim.chunk import ChunkCtx
from polyrl.sim.config import SimConfig
from polyrl.sim.numeric import TAG_FAULTS, rng
from polyrl.sim.paths import CHUNK_NS, LAT_FLOOR_NS, Skeleton, build_skeleton
from polyrl.sim.polymarket import PolymarketSide, closed_time_ns, market_ids
from polyrl.sim.reference import WindowOutcome, reference_frames, settle_e18
from polyrl.sim.specs import SPECS
from polyrl.sources.config import SourcesConfig

__all__ = ["TYPICAL_ROWS_PER_ASSET_HOUR", "Simulation", "generate_frames", "window_outcomes"]

TYPICAL_ROWS_PER_ASSET_HOUR: dict[str, tuple[int, int]] = {
    "binance.spot.trade": (8_000, 90_000),
    "binance.spot.book_ticker": (20_000, 250_000),
    "binance.spot.depth": (36_000, 36_000),
    "binance.spot.kline": (60, 60),
    "binance.futures.trade": (12_000, 150_000),
    "binance.futures.mark": (3_600, 3_600),
    "binance.futures.liquidation": (1, 60),
    "binance.futures.open_interest": (360, 360),
    "polymarket.market": (6, 20),
    "polymarket.book": (8_000, 30_000),
    "polymarket.price_change": (20_000, 130_000),
    "polymarket.trade": (12_000, 45_000),
    "polymarket.best_bid_ask": (2_000, 20_000),
    "polymarket.tick_size": (0, 300),
    "polymarket.resolution": (3, 4),
    "reference.price": (3_400, 3_600),
}
"""Parsed rows per asset in one simulated hour at the default config (and default sources:
depth5@100ms, 60 warm-up klines fetched at the start, open interest every 10 s, chainlink).
A price_change row is one ``price_changes[]`` entry (two per level change). tick_size rows
come only from windows whose book leaves [0.04, 0.96], which a quiet hour may not have.
Measured over seeds; the bounds are what the tests hold the simulator to."""

_SUPPORTED_FEEDS = ("chainlink", "twap60", "twap30")


class Simulation:
    """One simulated span: its skeleton, its frames and its ground truth.

    ``assets`` is any non-empty subset of btc, eth, sol, xrp (in any order; frames do not
    depend on the order). ``seed`` is a non-negative integer.
    """

    def __init__(
        self,
        cfg: SimConfig,
        sources: SourcesConfig,
        *,
        assets: Sequence[str],
        start_ns: int,
        end_ns: int,
        seed: int,
    ) -> None:
        bad = [a for a in assets if a not in ASSETS]
        if bad or not assets:
            raise ConfigError(f"assets must be a non-empty subset of {list(ASSETS)}, got {bad}")
        if len(set(assets)) != len(assets):
            raise ConfigError(f"assets must not repeat: {list(assets)}")
        if end_ns <= start_ns:
            raise ConfigError(f"simulation span is empty: start {start_ns} >= end {end_ns}")
        if seed < 0:
            raise ConfigError(f"seed must be >= 0, got {seed}")
        if sources.reference_feed not in _SUPPORTED_FEEDS:
            raise ConfigError(
                f"sources.reference_feed {sources.reference_feed!r} cannot be simulated "
                f"(choose one of {', '.join(_SUPPORTED_FEEDS)})"
            )
        self.cfg = cfg
        self.sources = sources
        self.assets = [a for a in ASSETS if a in assets]
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.seed = seed
        self.skeleton: Skeleton = build_skeleton(
            cfg, sources, start_ns=start_ns, end_ns=end_ns, seed=seed
        )

    # -- ground truth --------------------------------------------------------------------

    def window_outcomes(self) -> list[WindowOutcome]:
        """Every window of the simulated assets that ends in ``(start_ns, end_ns]``, by
        window start then asset, with its reference open/close values and outcome."""
        out = []
        first = self.start_ns - self.start_ns % WINDOW_NS
        for ws in range(first, self.end_ns, WINDOW_NS):
            we = ws + WINDOW_NS
            if not self.start_ns < we <= self.end_ns:
                continue
            for asset in self.assets:
                i = SPECS[asset].index
                ids = market_ids(self.seed, asset, ws)
                out.append(
                    WindowOutcome(
                        asset=asset,
                        slug=ids.slug,
                        window_start_ns=ws,
                        window_end_ns=we,
                        condition_id=ids.condition_id,
                        up_token=ids.up_token,
                        down_token=ids.down_token,
                        open_e18=settle_e18(self.skeleton, i, ws),
                        close_e18=settle_e18(self.skeleton, i, we),
                        closed_ns=closed_time_ns(self.cfg, self.seed, i, ws),
                    )
                )
        return out

    # -- frames ----------------------------------------------------------------------------

    def chunks(self) -> range:
        """Starts (ns) of the 5-minute chunks the span is generated in."""
        first = self.start_ns - self.start_ns % CHUNK_NS
        return range(first, self.end_ns, CHUNK_NS)

    def chunk_batches(
        self, c0: int, ids: dict[tuple[str, bool], IdState], pm: PolymarketSide
    ) -> list[Batch]:
        """Every stream's frames of the chunk starting at ``c0`` (before the merge)."""
        ctx = self._ctx(c0)
        batches: list[Batch] = []
        if c0 <= self.start_ns < c0 + CHUNK_NS:
            for asset in self.assets:
                batches.append(
                    warmup_klines(
                        self.skeleton,
                        self.cfg,
                        self.sources,
                        SPECS[asset],
                        self.start_ns,
                        self.seed,
                    )
                )
        for asset in self.assets:
            spec = SPECS[asset]
            batches.append(agg_trades(ctx, spec, False, ids[(asset, False)]))
            batches.append(book_tickers(ctx, spec))
            batches.append(depth_partials(ctx, spec))
            batches.append(agg_trades(ctx, spec, True, ids[(asset, True)]))
            batches.append(mark_prices(ctx, spec))
            batches.append(liquidations(ctx, spec))
            batches.append(open_interest(ctx, spec))
            batches.append(reference_frames(ctx, spec))
        batches.extend(pm.chunk(ctx))
        return batches

    def frames(self, *, from_ns: int | None = None, to_ns: int | None = None) -> Iterator[Frame]:
        """The frames of the span in nondecreasing ``recv_ns`` (see the module docstring).

        ``from_ns``/``to_ns`` (chunk boundaries: multiples of 5 minutes inside the span)
        select the part of the full run received in ``[from_ns, to_ns)``, shifted by
        ``LAT_FLOOR_NS`` (0.2 ms) to where the chunks are cut, without generating what comes
        before: trade ids are counted forward, books of markets open at ``from_ns`` are
        re-simulated silently, and the two chunks before ``from_ns`` are generated to collect
        the frames still in flight. Consecutive parts concatenate to the full run exactly, so
        hours can be generated in parallel.
        """
        chunks = self.chunks()
        lo = self._chunk_at(from_ns, "from_ns") if from_ns is not None else 0
        hi = self._chunk_at(to_ns, "to_ns") if to_ns is not None else len(chunks)
        ids = {
            (a, fut): initial_ids(SPECS[a], fut, chunks[0])
            for a in self.assets
            for fut in (False, True)
        }
        pm = PolymarketSide(
            self.skeleton,
            self.cfg,
            self.sources,
            assets=self.assets,
            start_ns=self.start_ns,
            end_ns=self.end_ns,
            seed=self.seed,
        )
        # Latency is capped well below two chunks (SimConfig), so frames of chunk lo-3 and
        # before have all arrived before chunk lo begins.
        warm = max(lo - 2, 0)
        if warm > 0:
            for c0 in chunks[:warm]:
                ctx = self._ctx(c0)
                for (a, fut), state in ids.items():
                    counts, fills = trade_counts(ctx, SPECS[a], fut)
                    state.agg += int(counts.sum())
                    state.trade += int(fills.sum())
            pm.fast_forward(chunks[warm])
        carry = _Merged.empty()
        for ci in range(warm, hi):
            c0 = chunks[ci]
            merged = _Merged.of(carry, self.chunk_batches(c0, ids, pm), c0 // CHUNK_NS)
            cut = min(c0 + CHUNK_NS + LAT_FLOOR_NS, self.end_ns)
            ready, carry = merged.split(cut)
            if ci >= lo:
                yield from ready.emit(self.cfg.malformed_rate, self.seed, c0 // CHUNK_NS)
        # The last chunk's cut is end_ns: whatever is left arrives after the end.

    def _chunk_at(self, t_ns: int, name: str) -> int:
        chunks = self.chunks()
        if t_ns == self.end_ns:
            return len(chunks)
        if t_ns not in chunks or t_ns <= self.start_ns:
            raise ConfigError(
                f"{name} must be a 5-minute boundary inside the simulated span, got {t_ns}"
            )
        return chunks.index(t_ns)

    def _ctx(self, c0: int) -> ChunkCtx:
        return ChunkCtx(
            self.skeleton,
            self.cfg,
            self.sources,
            self.seed,
            c0 // CHUNK_NS,
            c0,
            c0 + CHUNK_NS,
            self.start_ns,
            self.end_ns,
        )


class _Merged:
    """Frames of one chunk (plus those carried from the last) sorted by receive time."""

    __slots__ = ("recv", "rank", "vt", "order", "texts", "channels", "requests")

    def __init__(
        self,
        recv: np.ndarray,
        rank: np.ndarray,
        vt: np.ndarray,
        order: np.ndarray,
        texts: list[str],
        channels: list[str],
        requests: list,
    ) -> None:
        self.recv, self.rank, self.vt, self.order = recv, rank, vt, order
        self.texts, self.channels, self.requests = texts, channels, requests

    @classmethod
    def empty(cls) -> _Merged:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, z, z, [], [], [])

    @classmethod
    def of(cls, carry: _Merged, batches: list[Batch], chunk: int) -> _Merged:
        recv = [carry.recv]
        rank = [carry.rank]
        vt = [carry.vt]
        texts = list(carry.texts)
        channels = list(carry.channels)
        requests = list(carry.requests)
        for b in batches:
            n = len(b.texts)
            if n == 0:
                continue
            recv.append(b.recv)
            rank.append(np.full(n, b.rank, dtype=np.int64))
            vt.append(b.vt)
            texts.extend(b.texts)
            channels.extend([b.channel] * n)
            requests.extend(b.requests if b.requests is not None else [NO_REQUEST] * n)
        n_new = len(texts) - len(carry.texts)
        # Generation order, unique across chunks: carried frames keep their earlier numbers.
        order = np.concatenate([carry.order, (chunk << 32) + np.arange(n_new, dtype=np.int64)])
        r = np.concatenate(recv)
        k = np.concatenate(rank)
        v = np.concatenate(vt)
        idx = np.lexsort((order, v, k, r))
        il = idx.tolist()
        return cls(
            r[idx],
            k[idx],
            v[idx],
            order[idx],
            [texts[i] for i in il],
            [channels[i] for i in il],
            [requests[i] for i in il],
        )

    def split(self, cut: int) -> tuple[_Merged, _Merged]:
        """(frames received before ``cut``, the rest)."""
        n = int(np.searchsorted(self.recv, cut, side="left"))
        head = _Merged(
            self.recv[:n],
            self.rank[:n],
            self.vt[:n],
            self.order[:n],
            self.texts[:n],
            self.channels[:n],
            self.requests[:n],
        )
        tail = _Merged(
            self.recv[n:],
            self.rank[n:],
            self.vt[n:],
            self.order[n:],
            self.texts[n:],
            self.channels[n:],
            self.requests[n:],
        )
        return head, tail

    def emit(self, malformed_rate: float, seed: int, chunk: int) -> Iterator[Frame]:
        texts = self.texts
        if malformed_rate > 0 and texts:
            texts = _garble(texts, malformed_rate, rng(seed, TAG_FAULTS, chunk))
        for ch, r, t, q in zip(
            self.channels, self.recv.tolist(), texts, self.requests, strict=True
        ):
            yield Frame(channel=ch, recv_ns=r, text=t, request=q)


def _garble(texts: list[str], rate: float, g: np.random.Generator) -> list[str]:
    """Replace a ``rate`` fraction of frames by a strict prefix (half of them with junk bytes
    appended): never valid JSON, since every frame ends with its closing bracket."""
    n = len(texts)
    hit = np.flatnonzero(g.random(n) < rate).tolist()
    if not hit:
        return texts
    out = list(texts)
    cut = g.random(len(hit)).tolist()
    junk = g.random(len(hit)).tolist()
    for i, c, j in zip(hit, cut, junk, strict=True):
        t = out[i]
        k = max(1, min(len(t) - 1, int(c * len(t))))
        out[i] = t[:k] + ("\x00\ufffd#garbled" if j < 0.5 else "")
    return out


def generate_frames(
    cfg: SimConfig,
    sources: SourcesConfig,
    *,
    assets: Sequence[str],
    start_ns: int,
    end_ns: int,
    seed: int,
) -> Iterator[Frame]:
    """Every raw frame of the simulated venues over ``[start_ns, end_ns)``, in receive order.

    See the module docstring for what is simulated, the order and the determinism contract.
    """
    sim = Simulation(cfg, sources, assets=assets, start_ns=start_ns, end_ns=end_ns, seed=seed)
    return sim.frames()


def window_outcomes(
    cfg: SimConfig,
    sources: SourcesConfig,
    *,
    assets: Sequence[str],
    start_ns: int,
    end_ns: int,
    seed: int,
) -> list[WindowOutcome]:
    """Ground truth of every window ending in ``(start_ns, end_ns]`` (see
    :meth:`Simulation.window_outcomes`)."""
    sim = Simulation(cfg, sources, assets=assets, start_ns=start_ns, end_ns=end_ns, seed=seed)
    return sim.window_outcomes()
