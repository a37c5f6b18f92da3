"""The dashboard's web server: one page and a WebSocket that pushes snapshots, on 127.0.0.1.

Built on the ``websockets`` package alone: ``GET /`` returns the page, ``GET /snapshot.json``
the current snapshot, and ``/ws`` pushes a new snapshot whenever it changes (checked twice a
second). The snapshot comes from a callable: a live session's state in memory, or a run
directory's files (which a live run in another process keeps rewriting). Stopping pushes the
last snapshot first, so a page watching a session that just ended shows it finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

PUSH_S = 0.5


def page_html() -> bytes:
    """The dashboard page (static; it draws what the WebSocket pushes)."""
    return resources.files("polyrl.dashboard").joinpath("page.html").read_bytes()


class DashboardServer:
    """Serves the page and pushes ``source()`` snapshots to every connected browser."""

    def __init__(self, source: Callable[[], dict[str, Any]], *, host: str = "127.0.0.1",
                 port: int = 0) -> None:  # fmt: skip
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the dashboard serves loopback only")
        self.source = source
        self.host = host
        self.port = port
        self._server: Server | None = None
        self._clients: set[ServerConnection] = set()
        self._task: asyncio.Task[None] | None = None
        self._last: str | None = None
        self.pushed = 0

    @classmethod
    def live(cls, session: Any, *, port: int = 0) -> DashboardServer:
        """A dashboard of a running LiveSession (in this process)."""
        from polyrl.dashboard.state import session_snapshot

        def source() -> dict[str, Any]:
            snap = getattr(session, "snapshot", None)
            return snap if snap is not None else session_snapshot(session)

        return cls(source, port=port)

    @classmethod
    def for_run(cls, run_dir: Path, *, port: int = 0) -> DashboardServer:
        """A dashboard of a run directory (finished, or live in another process): a live or
        backtest run, a training run or a sweep, told apart at every snapshot (a training
        run's folder only shows what it is once its first files are written)."""
        from polyrl.clock import LiveClock
        from polyrl.dashboard.state import run_snapshot
        from polyrl.dashboard.training import Files, folder_kind, sweep_snapshot, train_snapshot

        wall = LiveClock()  # live.json's age is wall time: it tells a stopped process
        files = Files()  # the last good read of each file, across snapshots

        def source() -> dict[str, Any]:
            kind = folder_kind(run_dir, files)
            if kind == "sweep":
                return sweep_snapshot(run_dir, files)
            if kind == "train":
                return train_snapshot(run_dir, files, now_s=wall.now_ns() / 1e9)
            return run_snapshot(run_dir, now_ns=wall.now_ns())

        return cls(source, port=port)

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            return None  # the WebSocket handshake goes on
        if path in ("/", "/index.html"):
            return _response(HTTPStatus.OK, page_html(), "text/html; charset=utf-8")
        if path == "/snapshot.json":
            body = json.dumps(self.source()).encode()
            return _response(HTTPStatus.OK, body, "application/json")
        return _response(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    async def _handler(self, ws: ServerConnection) -> None:
        self._clients.add(ws)
        try:
            for _ in range(10):  # a run file being rewritten: try again shortly
                try:
                    text = json.dumps(self.source())
                except (OSError, ValueError):
                    await asyncio.sleep(0.1)
                    continue
                await ws.send(text)
                break
            await ws.wait_closed()
        finally:
            self._clients.discard(ws)

    async def _push(self) -> None:
        """Send the snapshot to every browser if it changed since the last push."""
        if not self._clients:
            return
        try:
            text = json.dumps(self.source())
        except (OSError, ValueError):
            return  # a run file being rewritten: next time
        if text == self._last:
            return
        self._last = text
        for ws in list(self._clients):
            with contextlib.suppress(Exception):
                await ws.send(text)
        self.pushed += 1

    async def _pusher(self) -> None:
        while True:
            await asyncio.sleep(PUSH_S)
            await self._push()

    async def start(self) -> None:
        self._server = await serve(self._handler, self.host, self.port,
                                   process_request=self._http, compression=None)  # fmt: skip
        self.port = self._server.sockets[0].getsockname()[1]
        self._task = asyncio.create_task(self._pusher())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._push()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def _response(status: HTTPStatus, body: bytes, ctype: str) -> Response:
    headers = Headers([("Content-Type", ctype), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-store")])  # fmt: skip
    return Response(status.value, status.phrase, headers, body)
