"""Where data lives: a path or a URI (``s3://bucket/prefix``, ``gs://bucket/prefix``,
``file:///abs/path``) turned into a :class:`Location` — a pyarrow filesystem and the base
path inside it — so readers list and read local disk and object stores the same way.

Credentials come only from the standard environment: ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN`` when set) for ``s3://``; a missing one
is a :class:`~polyrl.errors.StorageError` naming the variable, before any request is made
(the SDK's other credential sources, such as an instance metadata service, are never
consulted). The endpoint is ``[storage] endpoint`` when set, else ``AWS_ENDPOINT_URL``,
else the provider's own. ``gs://`` goes through pyarrow's GCS filesystem and its default
credentials; it is not tested here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from polyrl.errors import StorageError

SCHEMES = ("s3", "gs", "gcs", "file")
CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
CACHE_DIR_VAR = "POLYRL_CACHE_DIR"
"""The local folder of the day caches of recordings on an object store."""
ENV_VARS = (*CREDENTIAL_VARS, "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", CACHE_DIR_VAR)
"""Every environment variable this module's users read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageConfig:
    """Object storage (``[storage]``); credentials come from the environment, never here."""

    endpoint: str = ""
    """S3 endpoint URL (``http://127.0.0.1:9000`` for a local server); empty: the
    ``AWS_ENDPOINT_URL`` variable when set, else AWS itself."""
    region: str = "us-east-1"
    """S3 region."""
    connect_timeout_s: float = 5.0
    """Seconds to wait for a connection to the object store."""
    request_timeout_s: float = 30.0
    """Seconds a request may wait for data before it fails (a cut connection, a stalled
    server) rather than hang."""
    retries: int = 3
    """Attempts per request (the SDK's standard retry strategy) before an error is raised."""

    def __post_init__(self) -> None:
        if self.retries < 1:
            raise ValueError(f"retries must be >= 1, got {self.retries}")
        if self.connect_timeout_s <= 0 or self.request_timeout_s <= 0:
            raise ValueError("connect_timeout_s and request_timeout_s must be > 0")


@dataclass(frozen=True, slots=True)
class Location:
    """A directory on a filesystem: ``fs`` and the base ``path`` inside it (no trailing
    slash), with ``uri`` the form shown in messages (``s3://bucket/prefix`` or a local
    path)."""

    fs: pafs.FileSystem = field(compare=False)
    path: str
    uri: str
    scheme: str = "file"

    def __str__(self) -> str:
        return self.uri

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    def child(self, *parts: str) -> Location:
        """The location ``parts`` below this one."""
        rel = "/".join(p.strip("/") for p in parts if p)
        return Location(self.fs, f"{self.path}/{rel}", f"{self.uri.rstrip('/')}/{rel}", self.scheme)

    def file(self, path: str) -> PurePath:
        """A path inside ``fs`` as a path object: a real :class:`Path` on local disk, a
        :class:`PurePosixPath` (never opened directly) on an object store."""
        return Path(path) if self.is_local else PurePosixPath(path)

    def show(self, path: str | PurePath) -> str:
        """A path inside ``fs`` as a user reads it (``s3://bucket/key`` on a store)."""
        return str(path) if self.is_local else f"{self.scheme}://{path}"

    def entries(self) -> list[pafs.FileInfo]:
        """What lies directly below this directory (none when it does not exist)."""
        sel = pafs.FileSelector(self.path, allow_not_found=True, recursive=False)
        try:
            return sorted(self.fs.get_file_info(sel), key=lambda i: i.path)
        except OSError as e:
            raise storage_error(self.uri, e) from None

    def subdirs(self) -> list[str]:
        """Names of the directories directly below this one, sorted."""
        return [i.base_name for i in self.entries() if i.type == pafs.FileType.Directory]

    def is_dir(self) -> bool:
        try:
            info = self.fs.get_file_info(self.path)
        except OSError as e:
            raise storage_error(self.uri, e) from None
        if info.type == pafs.FileType.Directory:
            return True
        # An object store has no directories, only keys: a prefix with keys below is one.
        return not self.is_local and any(True for _ in self.entries())

    def read_bytes(self, name: str) -> bytes | None:
        """The bytes of file ``name`` below this location; ``None`` when it does not exist."""
        path = f"{self.path}/{name}"
        try:
            if self.fs.get_file_info(path).type != pafs.FileType.File:
                return None
            with self.fs.open_input_stream(path) as fh:
                return bytes(fh.read())
        except OSError as e:
            raise storage_error(self.show(path), e) from None


def storage_error(what: str, e: BaseException) -> StorageError:
    """An SDK error as one line naming ``what`` was being read."""
    text = " ".join(str(e).split())
    return StorageError(f"{what}: {text}")


def object_uri(fs: pafs.FileSystem, path: str) -> str:
    """``bucket/key`` inside an object store's filesystem as ``s3://bucket/key``."""
    scheme = "gs" if fs.type_name == "gcs" else fs.type_name
    return path if scheme == "local" else f"{scheme}://{path}"


def is_uri(root: object) -> bool:
    """``True`` for ``scheme://...`` strings with a scheme polyrl reads."""
    return isinstance(root, str) and urlsplit(root).scheme in SCHEMES and "://" in root


def locate(root: Location | PurePath | str, config: StorageConfig | None = None) -> Location:
    """A path or URI (see module doc) as a :class:`Location`. A plain path stays on local disk
    as given; ``s3://`` needs the credential variables and an existing bucket, each a
    one-line :class:`StorageError` naming what is missing."""
    if isinstance(root, Location):
        return root
    cfg = config or StorageConfig()
    text = str(root)
    if not is_uri(text):
        return Location(pafs.LocalFileSystem(), str(Path(text).expanduser()), text, "file")
    parts = urlsplit(text)
    scheme = parts.scheme
    if scheme == "file":
        local = Path(parts.path or "/")
        return Location(pafs.LocalFileSystem(), str(local), str(local), "file")
    bucket = parts.netloc
    if not bucket:
        raise StorageError(f"{text}: no bucket (expected {scheme}://BUCKET/PREFIX)")
    prefix = parts.path.strip("/")
    path = f"{bucket}/{prefix}" if prefix else bucket
    uri = f"{scheme}://{path}"
    fs = _s3(cfg, text) if scheme == "s3" else _gcs(text)
    _check_bucket(fs, bucket, uri, scheme)
    return Location(fs, path, uri, scheme)


def check_credentials(what: str) -> None:
    """A :class:`StorageError` naming the first S3 credential variable that is not set."""
    for var in CREDENTIAL_VARS:
        if not os.environ.get(var):
            raise StorageError(
                f"{what}: environment variable {var} is not set (object storage credentials "
                "come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN)"
            )


def _s3(cfg: StorageConfig, uri: str) -> pafs.FileSystem:
    check_credentials(uri)
    endpoint = cfg.endpoint or os.environ.get("AWS_ENDPOINT_URL", "")
    kwargs: dict[str, object] = {}
    if endpoint:
        ep = urlsplit(endpoint)
        if ep.scheme not in ("http", "https") or not ep.netloc:
            raise StorageError(f"[storage] endpoint {endpoint!r}: expected http(s)://HOST[:PORT]")
        kwargs["endpoint_override"] = ep.netloc
        kwargs["scheme"] = ep.scheme
    try:
        return pafs.S3FileSystem(
            access_key=os.environ["AWS_ACCESS_KEY_ID"],
            secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            session_token=os.environ.get("AWS_SESSION_TOKEN") or None,
            region=cfg.region,
            connect_timeout=cfg.connect_timeout_s,
            request_timeout=cfg.request_timeout_s,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=cfg.retries),
            **kwargs,
        )
    except (OSError, ValueError) as e:
        raise storage_error(uri, e) from None


def _gcs(uri: str) -> pafs.FileSystem:
    try:
        return pafs.GcsFileSystem()
    except (OSError, ValueError) as e:
        raise storage_error(uri, e) from None


def _check_bucket(fs: pafs.FileSystem, bucket: str, uri: str, scheme: str) -> None:
    try:
        info = fs.get_file_info(bucket)
    except OSError as e:
        raise storage_error(uri, e) from None
    if info.type == pafs.FileType.NotFound:
        raise StorageError(f"{uri}: bucket {bucket!r} does not exist ({scheme})")
