"""Plain HTTP GET for the REST pollers (stdlib urllib on a worker thread).

REST traffic here is a handful of requests a minute, so a thread per request is cheap and
keeps the dependency list short. Every non-200 answer is returned, not raised: the caller
decides whether to back off (429/418/5xx, honouring ``Retry-After``), skip (404) or record.
"""

from __future__ import annotations

import asyncio
import random
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from polyrl.sources.config import SourcesConfig
    from polyrl.sources.sink import FrameSink

USER_AGENT = "polyrl-recorder/0.1 (market data only)"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """Status, body text and the ``Retry-After`` seconds where the server sent one."""

    status: int
    text: str
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def throttled(self) -> bool:
        """Rate limited or temporarily failing: back off and retry later."""
        return self.status in (418, 425, 429) or self.status >= 500 or self.status == 0


def _get(url: str, timeout_s: float) -> HttpResponse:
    req = urllib.request.Request(
        url, headers={"User-Agent": USER_AGENT, "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - http(s) only
            return HttpResponse(resp.status, resp.read().decode("utf-8", errors="replace"))
    except urllib.error.HTTPError as e:
        retry = e.headers.get("Retry-After") if e.headers else None
        try:
            retry_s = float(retry) if retry is not None else None
        except ValueError:
            retry_s = None
        body = e.read().decode("utf-8", errors="replace") if e.fp is not None else ""
        return HttpResponse(e.code, body, retry_s)
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as e:
        # status 0: no HTTP answer at all (refused, reset, timeout, DNS).
        return HttpResponse(0, f"{type(e).__name__}: {e}")


async def http_get(url: str, *, timeout_s: float = 10.0) -> HttpResponse:
    """GET ``url`` without blocking the event loop."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    return await asyncio.to_thread(_get, url, timeout_s)


async def get_with_retry(
    url: str,
    sink: FrameSink,
    channel: str,
    cfg: SourcesConfig,
    rng: random.Random,
    *,
    tries: int,
) -> HttpResponse | None:
    """GET with backoff on throttling/failure; every failure is a status row, every success is
    told to the sink (the venue answered on ``channel``). None = gave up."""
    from polyrl.sources.parse import status_frame
    from polyrl.sources.ws import Backoff

    backoff = Backoff(cfg.reconnect_min_s, cfg.reconnect_max_s, rng)
    for i in range(tries):
        resp = await http_get(url)
        if resp.ok:
            sink.answered(channel)
            return resp
        sink.emit(
            status_frame(
                "http_error",
                sink.clock.now_ns(),
                channel=channel,
                message=f"GET {url} -> {resp.status or 'no answer'} {resp.text[:200]}",
            )
        )
        if not resp.throttled:
            return None
        if i + 1 < tries:
            wait = resp.retry_after_s if resp.retry_after_s is not None else backoff.next()
            await sink.clock.sleep(wait)
    return None
