"""WsConnection against a plain loopback WebSocket server: the watchdog tells a silent socket
from a busy process."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from polyrl.clock import LiveClock
from polyrl.events import Frame
from polyrl.sources.config import SourcesConfig
from polyrl.sources.ws import WsConnection

CHANNEL = "binance.spot.ws"


class _Sink:
    def __init__(self) -> None:
        self.clock = LiveClock()
        self.frames: list[Frame] = []

    def emit(self, frame: Frame) -> None:
        self.frames.append(frame)

    def status_kinds(self) -> list[str]:
        return [json.loads(f.text)["kind"] for f in self.frames if f.channel != CHANNEL]


def _config(watchdog_s: float) -> SourcesConfig:
    return dataclasses.replace(
        SourcesConfig(), watchdog_s=watchdog_s, reconnect_min_s=0.05, reconnect_max_s=0.1
    )


async def _run(*, period_s: float | None, block_s: float, total_s: float) -> tuple[_Sink, int]:
    """Serve a frame every ``period_s`` (None: one frame, then silence); block the client's
    event loop for ``block_s`` once the first frame is in; return the sink and the connects."""

    async def handler(ws: ServerConnection) -> None:
        i = 0
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.send(json.dumps({"stream": "btcusdt@aggTrade", "data": {"a": i}}))
                i += 1
                if period_s is None:
                    await ws.wait_closed()  # silent but open
                    return
                await asyncio.sleep(period_s)

    sink = _Sink()
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        conn = WsConnection(
            channel=CHANNEL, url=lambda: f"ws://127.0.0.1:{port}", sink=sink, config=_config(0.2)
        )
        task = asyncio.create_task(conn.run())
        while not any(f.channel == CHANNEL for f in sink.frames):
            await asyncio.sleep(0.005)
        time.sleep(block_s)  # the whole process is busy: no frame can be read meanwhile
        await asyncio.sleep(total_s)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
    return sink, conn.connects


def test_a_blocked_event_loop_is_not_taken_for_a_silent_socket() -> None:
    sink, connects = asyncio.run(_run(period_s=0.01, block_s=0.6, total_s=0.3))
    assert connects == 1, sink.status_kinds()
    assert "disconnect" not in sink.status_kinds()
    ids = [json.loads(f.text)["data"]["a"] for f in sink.frames if f.channel == CHANNEL]
    assert ids == list(range(len(ids))) and len(ids) > 20  # nothing lost, nothing repeated


def test_a_silent_socket_is_reopened_by_the_watchdog() -> None:
    sink, connects = asyncio.run(_run(period_s=None, block_s=0.0, total_s=0.9))
    assert connects >= 2
    kinds = sink.status_kinds()
    assert "disconnect" in kinds and "gap" in kinds
