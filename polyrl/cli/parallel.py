"""``--workers N`` and ``--ray ADDRESS``: the options that build missing day caches in
parallel (``backtest``, ``train``), and the line printed as each day finishes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from polyrl.cli.common import err_console
from polyrl.errors import ConfigError

WorkersOpt = Annotated[
    int,
    typer.Option(
        "--workers",
        help="Build the missing day caches with N local processes, one day each (1: one by "
        "one in this process). The cache files are byte for byte those of a one-by-one "
        "build; a line per finished day says how many are done.",
    ),
]
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        help="Build the missing day caches as Ray tasks: `local` starts a Ray on this "
        "machine (one CPU per core, shut down at the end); auto, HOST:PORT or "
        "ray://HOST:PORT joins a running cluster, whose workers must see the recording "
        "root at the same path. Needs the ray extra (pip install 'polyrl[ray]'). Not with "
        "--workers.",
    ),
]


def parallel_options(workers: int, ray: str | None) -> tuple[int, str | None]:
    """Check ``--workers``/``--ray`` (one-line ConfigErrors) -> (workers, ray address); a
    local Ray gets one CPU per core."""
    import os

    from polyrl.features.parallel import check_options

    check_options(workers, ray)
    if ray is not None and workers != 1:
        raise ConfigError("--workers and --ray: give one or the other")
    if ray == "local":
        return os.cpu_count() or 1, ray
    return workers, ray


def day_done_line(workers: int, ray: str | None) -> Callable[[str, int, int], None]:
    """``days_progress`` for the loaders: one line on stderr per finished day."""
    how = f"Ray {ray}" if ray is not None else f"{workers} workers"

    def line(day: str, done: int, total: int) -> None:
        err_console.print(
            f"cache {day}: built ({done}/{total} days, {how})", markup=False, highlight=False
        )

    return line
