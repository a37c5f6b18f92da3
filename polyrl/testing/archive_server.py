"""A loopback HTTP/1.1 archive server: static files with ``Range``, ETags and faults.

It stands in for the public archives (PMXT's hourly Parquet, Binance's data archive) and,
through :meth:`ArchiveServer.route`, for JSON APIs such as Gamma. Files are served from a
folder as the real object stores serve them: ``HEAD`` and ``GET`` with ``Content-Length``,
an ``ETag`` (a digest of the content), ``Accept-Ranges: bytes``, single ``Range`` requests
answered ``206`` with ``Content-Range`` (``416`` when unsatisfiable), ``404`` for what does
not exist.

Faults, each for the next ``times`` matching requests (glob on the path):
:meth:`fail` answers a status (429/5xx, with ``Retry-After`` when given) and :meth:`cut`
sends the headers and ``after`` bytes of the body, then drops the connection.
Every request is logged (:attr:`log`: method, path, range, status, body bytes sent).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

Route = Callable[[dict[str, list[str]]], tuple[int, Any]]
"""A route: query -> (status, body); a body that is not bytes or str is sent as JSON."""


@dataclass(slots=True)
class Served:
    method: str
    path: str
    range: str | None
    status: int
    sent: int


@dataclass(slots=True)
class _Fault:
    pattern: str
    times: int
    status: int = 0
    retry_after: float | None = None
    cut_after: int | None = None


class ArchiveServer:
    """Serve ``root`` on 127.0.0.1 (a free port) in a background thread; use as a context."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.log: list[Served] = []
        self._routes: dict[str, Route] = {}
        self._faults: list[_Fault] = []
        self._etags: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                server._handle(self, head=True)

            def do_GET(self) -> None:  # noqa: N802
                server._handle(self, head=False)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def __enter__(self) -> ArchiveServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def route(self, path: str, fn: Route) -> None:
        """Answer ``GET path?query`` with ``fn(query)`` instead of a file."""
        self._routes[path] = fn

    def fail(self, pattern: str, status: int, times: int = 1, retry_after: float | None = None):
        """Answer the next ``times`` requests matching ``pattern`` with ``status``."""
        with self._lock:
            self._faults.append(_Fault(pattern, times, status=status, retry_after=retry_after))

    def cut(self, pattern: str, after: int, times: int = 1) -> None:
        """Drop the connection after ``after`` body bytes of the next matching GETs."""
        with self._lock:
            self._faults.append(_Fault(pattern, times, cut_after=after))

    def sent_bytes(self, pattern: str = "*") -> int:
        """Body bytes sent for paths matching ``pattern``."""
        return sum(s.sent for s in self.log if fnmatch.fnmatchcase(s.path, pattern))

    def _fault(self, path: str, head: bool) -> _Fault | None:
        with self._lock:
            for f in self._faults:
                if f.times > 0 and fnmatch.fnmatchcase(path, f.pattern):
                    if f.cut_after is not None and head:
                        continue
                    f.times -= 1
                    return f
        return None

    def _etag(self, p: Path, size: int, mtime: int) -> str:
        key = (str(p), size, mtime)
        if key not in self._etags:
            h = hashlib.sha256(p.read_bytes()).hexdigest()[:32]
            self._etags[key] = f'"{h}"'
        return self._etags[key]

    def _send(self, h: BaseHTTPRequestHandler, status: int, headers: dict[str, str]) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()

    def _answer(self, h, method, path, rng, status, body: bytes, extra=None) -> None:  # noqa: ANN001
        headers = {"Content-Length": str(len(body)), **(extra or {})}
        # Logged before anything goes out: a client that has its answer sees the entry.
        self.log.append(Served(method, path, rng, status, len(body) if method == "GET" else 0))
        self._send(h, status, headers)
        if method == "GET":
            h.wfile.write(body)

    def _handle(self, h: BaseHTTPRequestHandler, *, head: bool) -> None:
        method = "HEAD" if head else "GET"
        parts = urlsplit(h.path)
        path = parts.path
        rng = h.headers.get("Range")
        fault = self._fault(path, head)
        if fault is not None and fault.status:
            extra = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            body = json.dumps({"error": f"injected {fault.status}"}).encode()
            self._answer(h, method, path, rng, fault.status, body, extra)
            return
        if path in self._routes:
            status, obj = self._routes[path](parse_qs(parts.query))
            body = (
                obj
                if isinstance(obj, bytes)
                else (obj.encode() if isinstance(obj, str) else json.dumps(obj).encode())
            )
            self._answer(h, method, path, rng, status, body, {"Content-Type": "application/json"})
            return
        p = (self.root / path.lstrip("/")).resolve()
        if not p.is_relative_to(self.root.resolve()) or not p.is_file():
            self._answer(h, method, path, rng, 404, b"<Error><Code>NoSuchKey</Code></Error>")
            return
        st = p.stat()
        size = st.st_size
        headers = {"ETag": self._etag(p, size, st.st_mtime_ns), "Accept-Ranges": "bytes"}
        a, b = 0, size - 1
        status = 200
        if rng:
            spec = rng.removeprefix("bytes=").split(",")[0].strip()
            first, _, last = spec.partition("-")
            try:
                if first == "":
                    a, b = max(0, size - int(last)), size - 1
                else:
                    a = int(first)
                    b = min(size - 1, int(last)) if last else size - 1
            except ValueError:
                a, b = 0, size - 1
            if a >= size or a > b:
                headers["Content-Range"] = f"bytes */{size}"
                self._answer(h, method, path, rng, 416, b"", headers)
                return
            status = 206
            headers["Content-Range"] = f"bytes {a}-{b}/{size}"
        n = b - a + 1
        headers["Content-Length"] = str(n)
        body = b""
        if not head:
            with open(p, "rb") as fh:
                fh.seek(a)
                body = fh.read(n)
        cut = not head and fault is not None and fault.cut_after is not None
        if cut:
            assert fault is not None and fault.cut_after is not None
            body = body[: fault.cut_after]
        # Logged before anything goes out: a client that has its answer sees the entry.
        self.log.append(Served(method, path, rng, status, len(body)))
        self._send(h, status, headers)
        if head:
            return
        h.wfile.write(body)
        if cut:
            h.wfile.flush()
            h.close_connection = True
