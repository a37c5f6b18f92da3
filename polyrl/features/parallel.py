"""Day caches built in parallel: local worker processes or Ray tasks, one day per task.

The days of a recording are independent, so :func:`build_days` builds the missing entries of
several days at once and leaves them where :func:`~polyrl.features.cache.load_or_build`
finds them; loading them afterwards (``replay.load_days``) is then a read. Every task calls
the same per-day function as a sequential build (:func:`build_one`, which is
``load_or_build_latencies``), so an entry is byte for byte the one a sequential build writes.

- ``workers=N`` (``ray_address=None``): a pool of N processes started with ``spawn`` (a fresh
  interpreter, no inherited locks or threads), each limited to one BLAS/OpenMP/polars thread
  (:data:`WORKER_ENV`) so N workers use N cores.
- ``ray_address="local"``: a Ray started here with ``num_cpus=workers`` and shut down at the
  end; any other address (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``) joins that cluster,
  whose workers must see ``root`` at the same path (a shared file system), and leaves it
  running. An already initialised Ray is used as it is and left running.

Two builders of the same day (two commands at once) take the day's lock
(``.cache/locks/<day>.lock``, an advisory ``flock``): the second waits and then finds the
entry built, so neither rebuilds over the other's files.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import socket
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from polyrl.envvars import environ_set
from polyrl.errors import ConfigError
from polyrl.features.cache import (
    CACHE_DIR,
    ReplaySpec,
    cache_key,
    load_or_build_latencies,
)

WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "POLARS_MAX_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
    "POLYRL_BLAS_THREADS": "1",
}
"""Set in every worker before it imports numpy or polars: one thread each."""

LOCAL = "local"
_ADDRESS = re.compile(r"^(auto|ray://[^\s:/]+:\d+|[^\s:/]+:\d+)$")

DayProgress = Callable[[str, int, int], None]
"""``progress(day, days_done, days_total)``: called once per day as it finishes."""


def check_options(workers: int, ray_address: str | None) -> None:
    """Refuse a bad ``--workers``/``--ray`` before any work (a ConfigError of one line)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers: {workers!r} is not a whole number >= 1")
    if ray_address is not None and ray_address != LOCAL and not _ADDRESS.match(ray_address):
        raise ConfigError(
            f"--ray: {ray_address!r} is not `local`, `auto`, HOST:PORT or ray://HOST:PORT"
        )


def _lock_path(root: Path, day: str) -> Path:
    return Path(root) / CACHE_DIR / "locks" / f"{day}.lock"


@contextlib.contextmanager
def day_lock(root: Path, day: str) -> Iterator[None]:
    """Hold the day's build lock (blocks while another process holds it)."""
    path = _lock_path(root, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_one(root: Path, day: str, spec: ReplaySpec, latencies_ns: Sequence[int]) -> bool:
    """Build (or find) one day's entry and its latency sidecars under the day's lock; True
    when this call built something (False: another builder had, while this one waited).
    What every worker and Ray task runs."""
    with day_lock(root, day):
        missing = bool(missing_days(root, [day], spec, latencies_ns))
        load_or_build_latencies(Path(root), day, spec, [0, *latencies_ns])
    return missing


def missing_days(
    root: Path, days: Sequence[str], spec: ReplaySpec, latencies_ns: Sequence[int] = ()
) -> list[str]:
    """The days whose entry (or a latency's fill sidecar) is not built yet."""
    out = []
    for day in days:
        key, _ = cache_key(root, day, spec)
        path = Path(root) / CACHE_DIR / "features" / day / key
        lats = {int(x) for x in latencies_ns if int(x) != 0}
        if not (path / "meta.json").exists() or any(
            not (path / f"fills-{lat}" / "done").exists() for lat in lats
        ):
            out.append(day)
    return out


def build_days(
    root: Path,
    days: Sequence[str],
    spec: ReplaySpec,
    *,
    latencies_ns: Sequence[int] | None = None,
    workers: int = 1,
    ray_address: str | None = None,
    progress: DayProgress | None = None,
) -> list[str]:
    """Build the missing cache entries of ``days`` under ``root`` (with the fill books of
    each of ``latencies_ns``, default ``spec.fill_latency_ns``) with ``workers`` processes,
    or as Ray tasks on ``ray_address`` (see the module doc); returns the days this call
    built, in the order they finished (not those another builder did meanwhile).
    ``progress(day, done, total)`` follows the days as they finish."""
    check_options(workers, ray_address)
    want = [spec.fill_latency_ns] if latencies_ns is None else latencies_ns
    lats = sorted({int(x) for x in want} - {0})
    todo = missing_days(root, days, spec, lats)
    if not todo:
        return []
    if ray_address is not None:
        return _build_ray(root, todo, spec, lats, workers, ray_address, progress)
    if workers == 1 or len(todo) == 1:
        built = []
        for k, day in enumerate(todo, 1):
            if build_one(root, day, spec, lats):
                built.append(day)
            if progress is not None:
                progress(day, k, len(todo))
        return built
    return _build_local(root, todo, spec, lats, workers, progress)


def _build_local(
    root: Path,
    todo: list[str],
    spec: ReplaySpec,
    lats: list[int],
    workers: int,
    progress: DayProgress | None,
) -> list[str]:
    done: list[str] = []
    built: list[str] = []
    n = min(workers, len(todo))
    with environ_set(WORKER_ENV), ProcessPoolExecutor(n, mp_context=get_context("spawn")) as pool:
        # Every process is started while the environment holds the limits.
        futs: dict[Future[bool], str] = {
            pool.submit(build_one, root, day, spec, lats): day for day in todo
        }
        pending = set(futs)
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in sorted(finished, key=lambda f: todo.index(futs[f])):
                    if f.result():  # a worker's error is raised here, as raised there
                        built.append(futs[f])
                    done.append(futs[f])
                    if progress is not None:
                        progress(futs[f], len(done), len(todo))
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    return built


def import_ray(what: str = "--ray") -> Any:
    """The ray module, or a one-line ConfigError naming ``what`` needs it and the extra."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"{what}: the ray package is not installed (pip install 'polyrl[ray]')"
        ) from None
    return ray


def check_reachable(address: str) -> None:
    """Refuse at once a HOST:PORT nothing listens on (Ray itself waits ~35 s to say so)."""
    if address in (LOCAL, "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise ConfigError(f"--ray {address}: no Ray cluster answers there ({e})") from None


def _build_ray(
    root: Path,
    todo: list[str],
    spec: ReplaySpec,
    lats: list[int],
    workers: int,
    address: str,
    progress: DayProgress | None,
) -> list[str]:
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        check_reachable(address)
        env = {"env_vars": dict(WORKER_ENV)}
        try:
            if address == LOCAL:
                ray.init(
                    num_cpus=workers,
                    include_dashboard=False,
                    runtime_env=env,
                    logging_level="ERROR",
                    log_to_driver=False,
                )
            else:
                ray.init(address=address, runtime_env=env, logging_level="ERROR")
        except Exception as e:  # ray raises ConnectionError, RuntimeError, ValueError, ...
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ConfigError(f"--ray {address}: could not start or join Ray: {first}") from None
        started = True
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(build_one)
        refs = {task.remote(str(root), day, spec, lats): day for day in todo}
        pending = list(refs)
        done: list[str] = []
        built: list[str] = []
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            for ref in finished:
                try:
                    if ray.get(ref):
                        built.append(refs[ref])
                except ray.exceptions.RayTaskError as e:
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, Exception):
                        raise cause from None
                    raise
                done.append(refs[ref])
                if progress is not None:
                    progress(refs[ref], len(done), len(todo))
        return built
    finally:
        if started:
            ray.shutdown()
