"""The typer apps the commands register on: ``polyrl`` itself and its ``bench`` and
``import`` groups. Each command module imports its app from here; :mod:`polyrl.cli` imports
the command modules (so the commands exist) and runs the app.
"""

from __future__ import annotations

from typing import Annotated

import typer

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
