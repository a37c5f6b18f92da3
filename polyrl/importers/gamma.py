"""Gamma -> ``polymarket.market`` and ``polymarket.resolution`` rows for past windows.

Each asset's 15-minute window starting at ``s`` (unix seconds) is looked up as the recorder
does: ``GET {gamma}/markets?slug={asset}-updown-15m-{s}``, parsed by the recorder's own
:func:`~polyrl.sources.polymarket.gamma.parse_gamma`. Requests go through
:class:`~polyrl.importers.fetch.HttpArchive` (retries of 429/5xx honouring ``Retry-After``).

Receive times (no look-ahead):

- the market row is received :data:`MARKET_LEAD_S` (60 s) before the window starts, so it is
  known before its tokens' first in-window events, as the recorder (which discovers markets
  minutes ahead) would know it. It stands for that discovery-time read: ``closed`` is False and
  ``active`` True in it whatever Gamma says now (the outcome is known only later); its
  ``raw`` is the response read at import time, which may hold the outcome (nothing reads
  ``raw`` for a decision);
- the resolution row is received at Gamma's ``closedTime`` when it gives one, else at the
  window end + :data:`CLOSE_DELAY_S` (21 s: the median ``closedTime - endDate`` of 292
  resolved Up/Down markets), and never before the window end.

A window Gamma does not know (an empty answer) yields no row: the importer counts it as a
gap (it was not tradable). A closed market whose outcome is not decided yet yields the market
row only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from polyrl.errors import ParseError, PolyrlError
from polyrl.events import NS_PER_S, Event
from polyrl.importers.fetch import Archive
from polyrl.recording.schema import ARROW_SCHEMAS
from polyrl.sources.polymarket.gamma import parse_gamma
from polyrl.sources.quality import VALUE_CHECKS

WINDOW_S = 900
MARKET_LEAD_S = 60
"""A market row is received this long before its window starts."""
CLOSE_DELAY_S = 21
"""Without ``closedTime``, a resolution is received this long after the window end."""


def slug_of(asset: str, window_start_s: int) -> str:
    return f"{asset}-updown-15m-{window_start_s}"


@dataclass(frozen=True, slots=True)
class GammaWindow:
    """One asset's window as Gamma answered: its rows (empty when Gamma does not know it)."""

    asset: str
    slug: str
    start_ns: int
    end_ns: int
    market: Event | None
    resolution: Event | None

    @property
    def condition_id(self) -> str | None:
        return None if self.market is None else self.market.key


def window_events(text: str, asset: str, window_start_s: int) -> GammaWindow:
    """A Gamma ``/markets?slug=`` answer for one window -> its market and resolution rows."""
    slug = slug_of(asset, window_start_s)
    start_ns = window_start_s * NS_PER_S
    end_ns = start_ns + WINDOW_S * NS_PER_S
    try:
        data = json.loads(text)
    except ValueError:
        raise ParseError(f"gamma {slug}: answer is not JSON") from None
    if data == [] or data == {}:
        return GammaWindow(asset, slug, start_ns, end_ns, None, None)
    market_recv = start_ns - MARKET_LEAD_S * NS_PER_S
    events = [e for e in parse_gamma(text, market_recv) if _slug(e) == slug]
    market = next((e for e in events if e.stream == "polymarket.market"), None)
    res = next((e for e in events if e.stream == "polymarket.resolution"), None)
    if market is None:
        return GammaWindow(asset, slug, start_ns, end_ns, None, None)
    market = replace(market, fields={**market.fields, "closed": False, "active": True})
    if res is not None:
        we = res.fields["window_end_ns"] or end_ns
        closed = res.exch_ns
        recv = closed if closed is not None else we + CLOSE_DELAY_S * NS_PER_S
        res = replace(res, recv_ns=max(recv, we, end_ns))
    return GammaWindow(asset, slug, start_ns, end_ns, market, res)


def _slug(e: Event) -> str | None:
    return e.fields.get("slug")


def fetch_window(gamma: Archive, asset: str, window_start_s: int) -> GammaWindow:
    """Look one window up on Gamma (retries through ``gamma``)."""
    slug = slug_of(asset, window_start_s)
    body = gamma.read(f"markets?slug={slug}")
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise PolyrlError(
            f"{gamma.location('markets?slug=' + slug)}: answer is not UTF-8"
        ) from None
    try:
        return window_events(text, asset, window_start_s)
    except ParseError as e:
        raise PolyrlError(f"{gamma.location('markets?slug=' + slug)}: {e}") from None


def events_table(stream: str, events: list[Event]) -> pa.Table:
    """Gamma rows of one stream as an Arrow table (its schema minus ``seq``; value checks of
    :mod:`polyrl.sources.quality` in ``quality``)."""
    full = ARROW_SCHEMAS[stream]
    schema = full.remove(full.get_field_index("seq"))
    check = VALUE_CHECKS.get(stream)
    cols: dict[str, list[Any]] = {f.name: [] for f in schema}
    for e in events:
        cols["recv_ns"].append(e.recv_ns)
        cols["exch_ns"].append(e.exch_ns)
        cols["key"].append(e.key)
        cols["asset"].append(e.asset)
        cols["quality"].append(check(e.fields) if check is not None else 0)
        cols["raw"].append(e.raw)
        for name in cols:
            if name in e.fields:
                cols[name].append(e.fields[name])
    return pa.Table.from_pydict(cols, schema=schema)
