"""``polyrl dashboard RUN``: the dashboard of a run directory (finished, or live elsewhere)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer

from polyrl.cli.apps import app
from polyrl.cli.common import err_console


@app.command("dashboard")
def dashboard_cmd(
    run: Annotated[
        Path,
        typer.Argument(
            help="A run directory (runs/<run>): a live or backtest run, a training run, or a "
            "sweep's folder (it holds sweep.toml).",
            exists=True,
            file_okay=False,
        ),
    ],
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: any free).")] = 8050,
) -> None:
    """Serve the dashboard of a run on 127.0.0.1, pushed to the browser as the run's files
    change (a running run rewrites them as it goes). A live or backtest run: market cards,
    positions, the PnL chart, RL metrics and the trade feed. A training run: learning curves
    per update (losses, entropy, KL, clip fraction, explained variance, rollout PnL) and
    validation PnL as it is scored. A sweep: one line per trial and a table of trials.
    Until Ctrl-C."""
    from polyrl.dashboard.server import DashboardServer

    async def main() -> None:
        server = DashboardServer.for_run(run, port=port)
        await server.start()
        err_console.print(f"dashboard of {run}: http://127.0.0.1:{server.port}/")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop()

    asyncio.run(main())
