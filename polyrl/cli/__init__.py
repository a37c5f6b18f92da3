"""The ``polyrl`` command line: thin typer commands over library functions.

One module per command. User errors (:class:`~polyrl.errors.PolyrlError`) are printed to
stderr as one line naming the file, field or option, with exit code 1 — never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from polyrl.errors import PolyrlError

app = typer.Typer(
    name="polyrl",
    help="Record, replay, train and paper-trade on Polymarket's 15-minute crypto Up/Down "
    "markets (BTC, ETH, SOL, XRP). Paper trading only: nothing is ever sent to a venue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

bench_app = typer.Typer(
    help="Benchmarks anyone can run; their figures go in the README's performance section.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")

import_app = typer.Typer(
    help="Bring in public history (Polymarket CLOB events from the PMXT archive, markets and "
    "outcomes from Gamma, Binance's data archive) as recordings marked as imported.",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")


def package_version() -> str:
    """The installed package's version (its metadata), else the source tree's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("polyrl")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from polyrl import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"polyrl {package_version()}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the package version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Record, replay, train and paper-trade on Polymarket's 15-minute crypto Up/Down
    markets (BTC, ETH, SOL, XRP). Paper trading only: nothing is ever sent to a venue."""


def _register() -> None:
    # Imported for their side effect of adding commands to `app` / `bench_app`.
    from polyrl.cli import (  # noqa: F401
        backtest,
        bench,
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
        train,
    )


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
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
