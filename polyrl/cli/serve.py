"""``polyrl simulate --serve``: the simulated venues on 127.0.0.1 until Ctrl-C.

Starts every loopback venue server (:mod:`polyrl.sim.serve`) on the simulation, writes a
TOML config whose ``[sources]`` points polyrl at them (so ``polyrl record --config FILE``
can run against them from another terminal) and prints the endpoints, the config path and
the clock (speed and start) the recorder must share.

When the simulated span ends the venues are gone, and say so: it prints
``simulated span ended at <time>; serving stopped ...``, every open WebSocket is closed
with code 1001 and that reason, and every new handshake or REST request is answered
``410 Gone`` with it, until Ctrl-C. A recorder started then never connects, alerts, and
exits non-zero naming the channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from pathlib import Path

from polyrl.clock import LiveClock
from polyrl.config import Config
from polyrl.errors import ConfigError
from polyrl.events import NS_PER_S, ns_to_iso
from polyrl.sim.serve import ServeConfig, SimContent, VenueServers
from polyrl.sim.serve.configfile import serve_toml


def span_end_reason(end_ns: int) -> str:
    """What clients are told once the simulated span is over."""
    return f"simulated span ended at {ns_to_iso(end_ns)[:19]}Z"


def serve_simulation(
    *,
    config: Config,
    start_ns: int,
    end_ns: int,
    seed: int,
    speed: float,
    port: int,
    config_out: Path | None,
) -> None:
    """Serve the simulation of ``[start_ns, end_ns)`` until SIGINT/SIGTERM."""
    if speed <= 0:
        raise ConfigError("--speed must be > 0")
    if not 0 <= port <= 65_530:
        raise ConfigError("--port must be within [0, 65530]")
    path = (
        config_out
        if config_out is not None
        else Path(tempfile.gettempdir()) / f"polyrl-serve-{os.getpid()}.toml"
    )
    content = SimContent(config, start_ns=start_ns, end_ns=end_ns, seed=seed)
    clock = LiveClock(speed=speed, start_ns=start_ns)
    anchor_ns = clock.anchor_real_ns  # the wall time at which `clock` read start_ns
    # A server that runs for hours keeps no per-frame log.
    servers = VenueServers(
        content, clock=clock, config=ServeConfig(base_port=port, log_frames=False)
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _serve(
                servers,
                config,
                path,
                speed=speed,
                start_ns=start_ns,
                end_ns=end_ns,
                anchor_ns=anchor_ns,
            )
        )
    print("stopped", flush=True)


async def _serve(
    servers: VenueServers,
    config: Config,
    path: Path,
    *,
    speed: float,
    start_ns: int,
    end_ns: int,
    anchor_ns: int,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await servers.start()
    except OSError as e:
        raise ConfigError(f"--port: cannot bind the venue servers: {e}") from None
    try:
        sources = servers.sources_config(config.sources)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                serve_toml(config, sources, speed=speed, start_ns=start_ns, anchor_ns=anchor_ns)
            )
        except OSError as e:
            raise ConfigError(f"--config-out: cannot write {path}: {e}") from None
        out = sys.stdout
        for key, url in servers.urls().items():
            print(f"{key:<22} {url}", file=out)
        print(f"config: {path}", file=out)
        print(
            f"clock: speed {speed:g}, read {ns_to_iso(start_ns)} at wall time "
            f"{ns_to_iso(anchor_ns)}; simulation until {ns_to_iso(end_ns)} "
            f"({(end_ns - start_ns) / NS_PER_S / speed:.0f} s real); the venue time now is "
            "GET <binance_spot_rest>/api/v3/time",
            file=out,
        )
        print(
            f"serving until the simulated span ends at {ns_to_iso(end_ns)[:19]}Z, then answering "
            "410 Gone until Ctrl-C",
            file=out,
            flush=True,
        )
        waiter = asyncio.create_task(stop.wait())
        delay = (end_ns - servers.clock.now_ns()) / NS_PER_S / speed
        ended = asyncio.create_task(asyncio.sleep(max(0.0, delay)))
        done, _ = await asyncio.wait({waiter, ended}, return_when=asyncio.FIRST_COMPLETED)
        ended.cancel()
        if waiter not in done:
            reason = span_end_reason(end_ns)
            servers.end_span(reason)
            print(
                f"{reason}; serving stopped: open connections were closed (1001) and every "
                "new connection or request is answered 410 Gone with that reason; Ctrl-C to "
                "exit",
                file=out,
                flush=True,
            )
            await waiter
    finally:
        await servers.stop()
