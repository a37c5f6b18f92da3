"""Archive objects from a local folder or over HTTPS, whole or by byte range, with retries.

An archive is addressed by a base (a directory, or an ``http(s)://`` URL) and objects by
their path relative to it (``polymarket_orderbook_2026-05-01T13.parquet``,
``data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2026-05-01.zip``).

- :meth:`Archive.stat` says whether an object exists (None: 404 / no file; a missing hour
  or day is a gap to the importer, not an error), its size and its ETag (HTTP) or
  ``size-mtime`` (local).
- :meth:`Archive.read` reads ``[start, end)``. Over HTTP it sends ``Range`` requests and
  retries 429, 5xx and dropped connections with exponential backoff (honouring
  ``Retry-After``), resuming a body cut mid-way from the last byte received; an object whose
  ETag changes between requests (replaced while being read) is an error naming it.
- :class:`RangeFile` makes an object a seekable file for pyarrow, so a Parquet reader
  fetches only the footer and the column chunks it reads. :attr:`Archive.stats` counts
  requests, retries and bytes fetched, for the import summary's bytes-fetched-vs-size.
"""

from __future__ import annotations

import abc
import http.client
import io
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from polyrl.errors import PolyrlError

USER_AGENT = "polyrl-import/0.1 (public archives)"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class ArchiveError(PolyrlError):
    """An archive object could not be read (after retries), or changed while being read."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What an archive says about one object."""

    location: str
    size: int
    etag: str


@dataclass(slots=True)
class FetchStats:
    """Requests made, retries and payload bytes received, for the import summary."""

    requests: int = 0
    retries: int = 0
    bytes_fetched: int = 0
    by_object: dict[str, int] = field(default_factory=dict)

    def add(self, rel: str, n: int) -> None:
        self.bytes_fetched += n
        self.by_object[rel] = self.by_object.get(rel, 0) + n


class Archive(abc.ABC):
    """Base of :class:`LocalArchive` and :class:`HttpArchive`: objects addressed by their path
    relative to :attr:`base`."""

    base: str
    stats: FetchStats

    @abc.abstractmethod
    def stat(self, rel: str) -> ObjectInfo | None:
        """The object's size and ETag, or None when the archive does not hold it."""

    @abc.abstractmethod
    def read(self, rel: str, start: int = 0, end: int | None = None) -> bytes:
        """The object's bytes ``[start, end)`` (to its end when ``end`` is None)."""

    @abc.abstractmethod
    def location(self, rel: str) -> str:
        """The object's full path or URL, for messages and provenance."""

    def open(self, rel: str, info: ObjectInfo | None = None) -> RangeFile:
        """A seekable read-only file over one object (pyarrow reads it by ranges)."""
        info = info or self.stat(rel)
        if info is None:
            raise ArchiveError(f"{self.location(rel)}: not in the archive")
        return RangeFile(self, rel, info.size)


class LocalArchive(Archive):
    """Objects under a local directory (hours or days downloaded beforehand)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ArchiveError(f"archive folder {self.root} does not exist")
        self.base = str(self.root)
        self.stats = FetchStats()

    def location(self, rel: str) -> str:
        return str(self.root / rel)

    def stat(self, rel: str) -> ObjectInfo | None:
        p = self.root / rel
        try:
            st = p.stat()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ArchiveError(f"{p}: {e}") from None
        return ObjectInfo(str(p), st.st_size, f"{st.st_size}-{st.st_mtime_ns}")

    def read(self, rel: str, start: int = 0, end: int | None = None) -> bytes:
        p = self.root / rel
        self.stats.requests += 1
        try:
            with open(p, "rb") as fh:
                fh.seek(start)
                data = fh.read() if end is None else fh.read(max(0, end - start))
        except OSError as e:
            raise ArchiveError(f"{p}: {e}") from None
        self.stats.add(rel, len(data))
        return data


class HttpArchive(Archive):
    """Objects under an HTTP(S) base URL, read with ``Range`` requests and retries."""

    def __init__(
        self,
        base: str,
        *,
        retries: int = 6,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 60.0,
    ) -> None:
        self.base = base.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.stats = FetchStats()
        self._etags: dict[str, str] = {}

    def location(self, rel: str) -> str:
        return f"{self.base}/{rel.lstrip('/')}"

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        self.stats.retries += 1
        delay = min(self.max_backoff_s, self.backoff_s * (2**attempt))
        if retry_after:
            try:
                delay = max(delay, min(self.max_backoff_s, float(retry_after)))
            except ValueError:
                pass
        time.sleep(delay)

    def _check_etag(self, rel: str, etag: str | None) -> None:
        if not etag:
            return
        seen = self._etags.setdefault(rel, etag)
        if seen != etag:
            raise ArchiveError(
                f"{self.location(rel)}: the object changed while it was read (ETag {seen} "
                f"-> {etag}); import it again"
            )

    def _request(self, rel: str, method: str, headers: dict[str, str]):  # noqa: ANN202
        req = urllib.request.Request(self.location(rel), method=method, headers=headers)
        req.add_header("User-Agent", USER_AGENT)
        self.stats.requests += 1
        return urllib.request.urlopen(req, timeout=self.timeout_s)  # noqa: S310 - http(s) only

    def stat(self, rel: str) -> ObjectInfo | None:
        last = ""
        for attempt in range(self.retries + 1):
            try:
                with self._request(rel, "HEAD", {}) as resp:
                    size = int(resp.headers.get("Content-Length", "-1"))
                    etag = resp.headers.get("ETag", "") or ""
                    if size < 0:
                        raise ArchiveError(f"{self.location(rel)}: no Content-Length")
                    self._check_etag(rel, etag)
                    return ObjectInfo(self.location(rel), size, etag)
            except urllib.error.HTTPError as e:
                if e.code == 404:
                    return None
                last = f"HTTP {e.code}"
                if e.code not in RETRY_STATUSES or attempt == self.retries:
                    break
                self._wait(attempt, e.headers.get("Retry-After"))
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                last = str(getattr(e, "reason", e))
                if attempt == self.retries:
                    break
                self._wait(attempt, None)
        raise ArchiveError(f"{self.location(rel)}: {last} after {self.retries} retries")

    def read(self, rel: str, start: int = 0, end: int | None = None) -> bytes:
        buf = bytearray()
        attempt = 0
        last = ""
        while True:
            pos = start + len(buf)
            if end is not None and pos >= end:
                return bytes(buf)
            rng = f"bytes={pos}-" + ("" if end is None else str(end - 1))
            try:
                with self._request(rel, "GET", {"Range": rng}) as resp:
                    self._check_etag(rel, resp.headers.get("ETag"))
                    clen = resp.headers.get("Content-Length")
                    expected = None if clen is None else int(clen)
                    if resp.status == 200 and pos > 0:
                        # The server ignored Range: skip to where we are.
                        resp.read(pos)
                        expected = None if expected is None else expected - pos
                    got = 0
                    while True:
                        chunk = resp.read(1 << 16)
                        if not chunk:
                            break
                        buf += chunk
                        got += len(chunk)
                        self.stats.add(rel, len(chunk))
                        if end is not None and start + len(buf) >= end:
                            del buf[end - start :]
                            return bytes(buf)
                if expected is None or got >= expected:
                    return bytes(buf)  # the object ends here (maybe before `end`)
                raise ConnectionError(f"connection closed after {got} of {expected} bytes")
            except urllib.error.HTTPError as e:
                if e.code == 404:
                    raise ArchiveError(f"{self.location(rel)}: not in the archive (404)") from None
                if e.code == 416 and end is None and pos > start:
                    return bytes(buf)
                last = f"HTTP {e.code}"
                if e.code not in RETRY_STATUSES or attempt >= self.retries:
                    break
                self._wait(attempt, e.headers.get("Retry-After"))
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                last = str(getattr(e, "reason", e)) or type(e).__name__
                if attempt >= self.retries:
                    break
                self._wait(attempt, None)
            attempt += 1
        raise ArchiveError(f"{self.location(rel)}: {last} after {self.retries} retries")


def open_archive(
    spec: str,
    *,
    retries: int = 6,
    backoff_s: float = 0.5,
    max_backoff_s: float = 30.0,
    timeout_s: float = 60.0,
) -> Archive:
    """``https://...`` / ``http://...`` -> :class:`HttpArchive` (with these retry and timeout
    settings); anything else is a folder (:class:`LocalArchive`)."""
    if spec.startswith(("http://", "https://")):
        return HttpArchive(
            spec,
            retries=retries,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
            timeout_s=timeout_s,
        )
    return LocalArchive(spec)


class RangeFile(io.RawIOBase):
    """A seekable, read-only view of one archive object; reads are served by range requests.

    Reads smaller than ``min_read`` fetch ``min_read`` bytes and keep them, so a Parquet
    reader's many small footer reads cost one request.
    """

    def __init__(self, archive: Archive, rel: str, size: int, min_read: int = 1 << 16) -> None:
        super().__init__()
        self.archive = archive
        self.rel = rel
        self.size = size
        self.min_read = min_read
        self._pos = 0
        self._cache_at = 0
        self._cache = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        elif whence == io.SEEK_END:
            self._pos = self.size + offset
        else:
            raise ValueError(f"bad whence {whence}")
        self._pos = max(0, self._pos)
        return self._pos

    def readinto(self, b) -> int:  # noqa: ANN001 - a writable buffer
        n = min(len(b), self.size - self._pos)
        if n <= 0:
            return 0
        a = self._pos
        c0, c1 = self._cache_at, self._cache_at + len(self._cache)
        if not (c0 <= a and a + n <= c1):
            stop = min(self.size, a + max(n, self.min_read))
            self._cache = self.archive.read(self.rel, a, stop)
            self._cache_at = a
            c0 = a
        b[:n] = self._cache[a - c0 : a - c0 + n]
        self._pos += n
        return n
