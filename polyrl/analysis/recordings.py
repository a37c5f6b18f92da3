"""Exploring a recording: what was recorded, at what rates, where it broke, and one window
up close. A thin layer over :class:`~polyrl.recording.reader.RecordingReader` and
:func:`~polyrl.recording.inspect.inspect_recording` that answers in polars frames.

Memory: :meth:`Recording.rates` reads one hour partition at a time (receive times only);
:meth:`Recording.stream` reads a whole stream over the selected dates, so narrow the dates
for the big streams of a long recording.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from polyrl.events import NS_PER_S, STATUS_STREAM, partition_of
from polyrl.recording.inspect import InspectReport, inspect_recording
from polyrl.recording.reader import RecordingReader
from polyrl.storage import Location, is_uri, locate

_STATUS_COLUMNS = ["kind", "stream_id", "message", "gap_start_ns", "gap_end_ns"]
_MARKET_COLUMNS = ["slug", "up_token", "down_token", "window_start_ns", "window_end_ns"]
_STATUS_SCHEMA = {
    "recv_ns": pl.Int64, "key": pl.String, "kind": pl.String, "stream_id": pl.String,
    "message": pl.String, "gap_start_ns": pl.Int64, "gap_end_ns": pl.Int64,
}  # fmt: skip
_RESOLUTION_SCHEMA = {
    "condition_id": pl.String, "outcome": pl.String, "outcome_source": pl.String,
    "resolved_ns": pl.Int64,
}  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowView:
    """One window around its close: ``market`` (slug, asset, condition id, start/end ns,
    outcome), ``book`` [t_ns, best_bid, best_ask, mid of the Up token, per update received],
    ``reference`` [t_ns, value of the settlement reference feed], and the reference at the
    window's start and end as the feed stamps them (``open_price``/``close_price``; None
    when the recording has no tick at or before that instant)."""

    market: dict[str, Any]
    book: pl.DataFrame
    reference: pl.DataFrame
    open_price: float | None
    close_price: float | None


class Recording:
    """A recording root and a date selection (``dates`` globs like ``2024-06-*``).

    Construction lists the partitions, so a missing root or a glob matching nothing fails
    at once with a :class:`~polyrl.errors.RecordingError` naming them.
    """

    def __init__(self, root: Path | str | Location, dates: str | Sequence[str] = "*") -> None:
        loc = locate(root)
        # A local root stays the path it was given; one on an object store is read through
        # the one Location (one filesystem and bucket check), shown by its URI.
        self.root: Path | Location = Path(loc.path) if loc.is_local else loc
        self.dates = dates
        self.reader = RecordingReader(self.root, dates=dates)

    def __repr__(self) -> str:
        shown = str(self.root) if isinstance(self.root, Path) else self.root.uri
        return f"Recording({shown!r}, dates={self.dates!r})"

    @property
    def streams(self) -> tuple[str, ...]:
        """The streams with at least one partition in the selection."""
        return self.reader.streams

    @property
    def hours(self) -> list[tuple[str, int]]:
        """The ``(date, hour)`` partitions selected, in time order."""
        return self.reader.hours()

    def stream(
        self,
        name: str,
        columns: Sequence[str] | None = None,
        *,
        dates: str | Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """One stream's rows over the selection (or ``dates``), sorted by ``(recv_ns, seq)``;
        ``columns`` beyond the common ones (``recv_ns``, ``seq``, ``exch_ns``, ``key``,
        ``asset``), default all but ``raw``."""
        cols = {name: list(columns)} if columns is not None else None
        reader = RecordingReader(
            self.root, dates=dates if dates is not None else self.dates, streams=[name],
            columns=cols,
        )  # fmt: skip
        return reader.read_stream(name)

    def inspect(self, by: Literal["asset", "key"] = "asset") -> InspectReport:
        """What ``polyrl inspect`` reports for the selection (``by`` asset or key)."""
        return inspect_recording(self.root, self.dates, by=by)

    def overview(self, by: Literal["asset", "key"] = "asset") -> pl.DataFrame:
        """Per stream and asset (or key): rows, first and last receive time, mean rate per
        second, largest silence and receive latency p50/p99 in ms (``polyrl inspect``)."""
        rows = [s.to_json() for s in self.inspect(by).streams]
        df = pl.DataFrame(rows, infer_schema_length=None)
        keep = ["stream", "group", "rows", "first", "last", "mean_rate_per_s",
                "max_silence_s", "latency_ms_p50", "latency_ms_p99"]  # fmt: skip
        return df.select([c for c in keep if c in df.columns])

    def channels(self) -> pl.DataFrame:
        """Per venue connection, from ``recorder.status``: connects, disconnects,
        reconnects, gaps, seconds lost in gaps, parse errors."""
        rows = [asdict(c) for c in self.inspect().channels]
        for r in rows:
            r.pop("parse_errors_by_stream", None)
        return pl.DataFrame(rows, infer_schema_length=None)

    def rates(self, every_s: int = 60) -> pl.DataFrame:
        """Rows received per stream per ``every_s`` seconds: ``stream``, ``t_ns`` (bucket
        start), ``rows``, ``rate_per_s`` [stream x bucket, every bucket from the
        recording's first to its last, empty ones as 0 so silences show]."""
        step = int(every_s) * NS_PER_S
        reader = RecordingReader(self.root, dates=self.dates, columns=["recv_ns"])
        parts = []
        for date, hour in reader.hours():
            for stream, df in reader.read_hour(date, hour).items():
                parts.append(
                    df.group_by((pl.col("recv_ns") // step * step).alias("t_ns"))
                    .agg(pl.len().cast(pl.Int64).alias("rows"))
                    .with_columns(pl.lit(stream).alias("stream"))
                )
        schema = {"stream": pl.String, "t_ns": pl.Int64, "rows": pl.Int64, "rate_per_s": pl.Float64}
        if not parts:
            return pl.DataFrame(schema=schema)
        counts = pl.concat(parts).group_by("stream", "t_ns").agg(pl.col("rows").sum())
        lo, hi = counts["t_ns"].min(), counts["t_ns"].max()
        if not isinstance(lo, int) or not isinstance(hi, int):  # None: files without rows
            return pl.DataFrame(schema=schema)
        grid = pl.DataFrame({"stream": sorted(counts["stream"].unique().to_list())}).join(
            pl.DataFrame({"t_ns": pl.int_range(lo, hi + step, step, eager=True)}), how="cross"
        )
        out = grid.join(counts, on=["stream", "t_ns"], how="left").with_columns(
            pl.col("rows").fill_null(0)
        )
        return (
            out.with_columns((pl.col("rows") / every_s).alias("rate_per_s"))
            .sort("stream", "t_ns")
            .select(list(schema))
        )

    def status(self) -> pl.DataFrame:
        """Every ``recorder.status`` row (start, stop, connect, disconnect, gap, parse_error,
        ...): ``recv_ns``, ``key`` (the channel), ``kind``, ``stream_id``, ``message``,
        ``gap_start_ns``, ``gap_end_ns``. Empty when the recording has none."""
        if STATUS_STREAM not in self.streams:
            return pl.DataFrame(schema=_STATUS_SCHEMA)
        df = self.stream(STATUS_STREAM, _STATUS_COLUMNS)
        return df.select("recv_ns", "key", *_STATUS_COLUMNS)

    def gaps(self) -> pl.DataFrame:
        """The outages ``recorder.status`` recorded: ``channel``, ``stream_id``,
        ``start_ns``, ``end_ns`` (the row's receive time when the end is unknown),
        ``seconds``. ``start_ns`` is the gap row's ``gap_start_ns``, the last frame before the
        silence: earlier than the ``disconnect`` row, which the watchdog writes later."""
        g = self.status().filter(pl.col("kind") == "gap")
        return g.select(
            pl.col("key").alias("channel"),
            "stream_id",
            pl.coalesce("gap_start_ns", "recv_ns").alias("start_ns"),
            pl.coalesce("gap_end_ns", "recv_ns").alias("end_ns"),
        ).with_columns(((pl.col("end_ns") - pl.col("start_ns")) / NS_PER_S).alias("seconds"))

    def markets(self) -> pl.DataFrame:
        """One row per window and asset (``polymarket.market``, last announcement kept):
        ``condition_id``, ``asset``, ``slug``, tokens, ``window_start_ns``/``window_end_ns``,
        and the recorded ``outcome``, its ``outcome_source`` and ``resolved_ns`` (null when
        no resolution was recorded), in window order."""
        m = (
            self.stream("polymarket.market", _MARKET_COLUMNS)
            .unique("key", keep="last", maintain_order=True)
            .select(pl.col("key").alias("condition_id"), "asset", *_MARKET_COLUMNS)
        )
        if "polymarket.resolution" in self.streams:
            r = self.stream("polymarket.resolution", ["outcome", "source"]).unique(
                "key", keep="first", maintain_order=True
            )
            r = r.select(
                pl.col("key").alias("condition_id"),
                "outcome",
                pl.col("source").alias("outcome_source"),
                pl.col("recv_ns").alias("resolved_ns"),
            )
        else:
            r = pl.DataFrame(schema=_RESOLUTION_SCHEMA)
        return m.join(r, on="condition_id", how="left").sort("window_start_ns", "asset")

    def window_close(
        self, window: str, *, before_s: float = 300.0, after_s: float = 60.0
    ) -> WindowView:
        """The Up token's best bid/ask and the reference price from ``before_s`` before a
        window's end to ``after_s`` after it; ``window`` is a slug or condition id (an
        unknown one is a KeyError naming it)."""
        m = self.markets().filter((pl.col("slug") == window) | (pl.col("condition_id") == window))
        if m.is_empty():
            raise KeyError(f"no window {window!r} in {self.reader.root} (dates {self.dates!r})")
        market = m.row(0, named=True)
        start, end = int(market["window_start_ns"]), int(market["window_end_ns"])
        a, b = end - int(before_s * NS_PER_S), end + int(after_s * NS_PER_S)
        days = sorted({partition_of(t)[0] for t in (start - 3600 * NS_PER_S, a, b)})
        span = (pl.col("recv_ns") >= a) & (pl.col("recv_ns") <= b)
        up = pl.col("key") == market["up_token"]
        quotes = []
        for stream in ("polymarket.best_bid_ask", "polymarket.price_change"):
            if stream in self.streams:
                df = self.stream(stream, ["best_bid", "best_ask"], dates=days)
                quotes.append(df.filter(span & up).select("recv_ns", "seq", "best_bid", "best_ask"))
        book = (
            pl.concat(quotes).sort("recv_ns", "seq") if quotes
            else pl.DataFrame(schema={"recv_ns": pl.Int64, "seq": pl.Int64,
                                      "best_bid": pl.Float64, "best_ask": pl.Float64})
        ).filter(pl.col("best_bid").is_not_null() | pl.col("best_ask").is_not_null())  # fmt: skip
        book = book.select(
            pl.col("recv_ns").alias("t_ns"),
            "best_bid",
            "best_ask",
            ((pl.col("best_bid") + pl.col("best_ask")) / 2).alias("mid"),
        )
        ref = self.stream("reference.price", ["value"], dates=days).filter(
            pl.col("asset") == market["asset"]
        )
        stamp = pl.coalesce("exch_ns", "recv_ns")

        def at(t: int) -> float | None:
            before = ref.filter(stamp <= t)
            return float(before["value"][-1]) if before.height else None

        return WindowView(
            market={k: market[k] for k in ("slug", "asset", "condition_id", "window_start_ns",
                                           "window_end_ns", "outcome", "outcome_source")},
            book=book,
            reference=ref.filter(span).select(pl.col("recv_ns").alias("t_ns"), "value"),
            open_price=at(start),
            close_price=at(end),
        )  # fmt: skip


def load_recording(root: Path | str | Location, dates: str | Sequence[str] = "*") -> Recording:
    """A :class:`Recording` of ``root`` (``sample``: the embedded sample, built on first
    use under the configured recordings root; a URI such as ``s3://bucket/prefix``: read
    from the object store, endpoint from ``AWS_ENDPOINT_URL`` or a
    :class:`~polyrl.storage.Location` built with a ``[storage]`` config) restricted to
    ``dates``."""
    from polyrl.sim.sample import resolve_root

    if isinstance(root, Location) or is_uri(root):
        return Recording(root, dates)
    return Recording(resolve_root(root), dates)
