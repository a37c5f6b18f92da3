"""The ``polyrl`` command line: thin typer commands over library functions.

One module per command. User errors (:class:`~polyrl.errors.PolyrlError`) are printed to
stderr as one line naming the file, field or option, with exit code 1 — never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import typer

from polyrl.cli.apps import app, bench_app, import_app
from polyrl.errors import PolyrlError

__all__ = ["app", "bench_app", "import_app", "main", "run"]


def _register() -> None:
    # Imported for their side effect of adding commands to `app` / `bench_app`.
    from polyrl.cli import (  # noqa: F401
        backtest,
        bench,
        bench_sweep,
        dashboard,
        features,
        import_binance,
        import_polymarket,
        inspect,
        live,
        record,
        report,
        schema,
        simulate,
        sweep,
        train,
    )


RETAIN_ENV = "_RJEM_MALLOC_CONF"
RETAIN_MEMORY = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
"""polars' allocator (jemalloc) keeps freed pages instead of returning them after 500 ms."""
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def _retain_memory(argv: Sequence[str]) -> None:
    """For the batch commands (``polyrl import ...``, ``polyrl bench import``) only, let the
    allocators keep the memory they free: an import frees and reallocates hundreds of MB per
    unit, and pages handed back are zeroed by the kernel again when faulted in. polars'
    jemalloc is told through the environment before polars is first loaded (a value the
    user set is kept); glibc's malloc (Arrow's system pool, numpy) serves large blocks from
    its heap instead of fresh mappings and stops trimming it (where glibc is the C library).
    A long-running command (record, live, train) returns memory as before."""
    words = [a for a in argv if not a.startswith("-")][:2]
    if not (words[:1] == ["import"] or words == ["bench", "import"]):
        return
    if RETAIN_ENV not in os.environ and "polars" not in sys.modules:
        os.environ[RETAIN_ENV] = RETAIN_MEMORY
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)
    except (OSError, AttributeError):  # not glibc: its allocator keeps its own policy
        pass


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    _retain_memory(sys.argv[1:] if argv is None else argv)
    _register()
    try:
        # Without standalone mode, click hands back typer.Exit's code instead of raising it.
        code = app(args=list(argv) if argv is not None else None, standalone_mode=False)
    except PolyrlError as e:
        print(f"polyrl: error: {e}", file=sys.stderr)
        return 1
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("polyrl: aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("polyrl: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        # Usage errors (bad option, missing argument) from the click typer is built on (a
        # vendored copy in recent typer): anything that can show itself with an exit code.
        show, code = getattr(e, "show", None), getattr(e, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show(file=sys.stderr)
            return code
        raise
    return code if isinstance(code, int) else 0


def main() -> None:
    """Console entry point."""
    sys.exit(run())
