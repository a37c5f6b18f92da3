"""``polyrl live`` and ``polyrl parity``: paper-trade live on the shared Engine; prove it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from polyrl.cli.apps import app
from polyrl.cli.common import (
    DURATION_HELP,
    ConfigOpt,
    SetOpt,
    err_console,
    parse_assets,
    parse_duration,
    parse_sets,
    polybolt_credentials,
    print_alert,
    ran_text,
    resolve_config,
)
from polyrl.config import merge
from polyrl.errors import ConfigError

if TYPE_CHECKING:
    from polyrl.policies.base import Policy


@app.command("live")
def live_cmd(
    load: Annotated[
        Path | None,
        typer.Option(
            "--load",
            help="PPO checkpoint to trade with (runs/<run>/checkpoints/last).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            "--strategy",
            help="Or a baseline (momentum, mean_revert, fade_spike, random, gating, hold, "
            "fair_gap), or your own class: package.module:Name (imported from PYTHONPATH, then "
            "the current directory) or path/to/file.py:Name. The class follows the Policy "
            "protocol (polyrl/policies/base.py; the baselines are examples): a str attribute "
            "`name` and act(obs float32 [markets, features], tradable bool [markets]) -> int "
            "actions [markets] (0 HOLD, 1 BUY Up, 2 SELL = buy Down); its __init__ gets the "
            "keyword arguments it declares among feature_set (the run's FeatureSet: names, "
            "index(name)) and seed. A bad spec is refused with what is wrong before anything "
            "connects. The run is named live-<its class name> unless --name is given.",
        ),
    ] = None,
    size: Annotated[
        float | None,
        typer.Option(
            "--size", help="USDC per order (default: capital x [broker] size_fraction).", min=0.0
        ),
    ] = None,
    capital: Annotated[
        float | None, typer.Option("--capital", help="USDC of capital per market slot.", min=0.0)
    ] = None,
    dashboard: Annotated[
        int | None, typer.Option("--dashboard", help="Serve the dashboard on 127.0.0.1:PORT.")
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration",
            help="Stop after this long (90s, 10m, 1h); default: until Ctrl-C / SIGTERM. "
            + DURATION_HELP,
        ),
    ] = None,
    assets: Annotated[
        str | None, typer.Option("--assets", help="Comma-separated subset of btc,eth,sol,xrp.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Recording root (default: [recording] root).")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Run name.")] = None,
    runs: Annotated[Path, typer.Option("--runs", help="Where run directories go.")] = Path("runs"),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random baseline.")] = 0,
    train: Annotated[
        bool,
        typer.Option(
            "--train",
            help="Keep training the PPO agent online as it trades "
            "(buffer, then update; checkpoints in runs/<name>/checkpoints/). "
            "With --load, continues that checkpoint; alone, starts fresh.",
        ),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue the run --name left off: its positions, trades and episodes."
        ),
    ] = False,
    sets: SetOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Paper-trade the four markets live with a checkpoint, a baseline or your own strategy
    class (--strategy module:Name), or train online with --train, on the same Engine,
    FeatureEngine and PaperBroker as replay, recording everything it sees (same guarantees as
    `polyrl record`) and writing runs/<name>/ as it goes. Nothing is ever sent to a venue.
    A status line shows fills, PnL and tick-to-decision latency p50/p99.
    PolyBolt is recorded as with `polyrl record` when POLYRL_CLOB_API_KEY,
    POLYRL_CLOB_API_SECRET and POLYRL_CLOB_API_PASSPHRASE are set (never stored)."""
    from polyrl.clock import LiveClock
    from polyrl.features.sets import feature_set
    from polyrl.live import LatencyStats, LiveSession, check_live_streams
    from polyrl.sources.adapters import default_adapters

    if load is not None and strategy is not None:
        raise ConfigError("give one of --load CKPT and --strategy NAME, not both")
    if load is None and strategy is None and not train:
        raise ConfigError("give --load CKPT or --strategy NAME (or --train for a fresh agent)")
    if train and strategy is not None:
        raise ConfigError("--train trains the PPO agent: use it with --load or alone")
    overrides: dict[str, Any] = parse_sets(sets)
    broker: dict[str, Any] = {}
    if capital is not None:
        broker["capital"] = capital
    if broker:
        overrides = merge(overrides, {"broker": broker})
    if assets is not None:
        overrides["assets"] = list(parse_assets(assets) or ())
    cfg = resolve_config(config, overrides)
    if size is not None:
        frac = size / cfg.broker.capital
        if not 0 < frac <= 1:
            raise ConfigError(f"--size {size}: must be in (0, capital = {cfg.broker.capital}]")
        cfg = resolve_config(config, merge(overrides, {"broker": {"size_fraction": frac}}))
    fset = feature_set(cfg.features.feature_set)
    check_live_streams(cfg)  # a set needing a stream live does not subscribe: refused now
    run_cfg: dict[str, Any] = {"kind": "live", "seed": seed}
    policy: Policy
    if train:
        from polyrl.rl.checkpoint import load_checkpoint
        from polyrl.rl.online import OnlineTrainer
        from polyrl.rl.ppo import PPO

        if load is not None:
            ppo, _ = load_checkpoint(load, expect_obs_dim=fset.dim,
                                     expect_feature_set=(fset.name, fset.version))  # fmt: skip
        else:
            ppo = PPO(fset.dim, 3, cfg.ppo, seed=seed)
        policy = OnlineTrainer(ppo, fset, len(cfg.assets))
        run_cfg["train_online"] = True
        label = "ppo-online"
    elif load is not None:
        from polyrl.policies.ppo import PPOPolicy

        policy = PPOPolicy.load(load, fset)  # a mismatched feature set refuses to start
        run_cfg["checkpoint"] = str(load.resolve())
        label = f"ppo-{load.parent.parent.name}"
    else:
        from polyrl.policies import plugin

        assert strategy is not None
        spec = plugin.resolve_spec(strategy) if plugin.is_spec(strategy) else strategy
        policy = plugin.make_strategy(spec, fset, cfg.baselines, seed=seed)
        run_cfg["strategy"] = spec
        if isinstance(policy, plugin.PluginPolicy):
            run_cfg["strategy_source"] = policy.source
        label = plugin.label(spec)
    run_dir = runs / (name or f"live-{label}")
    if (run_dir / "summary.json").exists() and not resume:
        raise ConfigError(
            f"run directory {run_dir} already holds a run; use another --name or --resume"
        )
    if resume and not (run_dir / "state.json").is_file():
        raise ConfigError(
            f"--resume: {run_dir / 'state.json'} not found: no stopped run to continue"
        )
    polybolt = polybolt_credentials()
    clock = LiveClock.from_config(cfg.clock)
    root = out if out is not None else Path(cfg.recording.root)
    session = LiveSession(
        config=cfg, policy=policy, run_dir=run_dir, recording_root=root, clock=clock,
        adapters=default_adapters(cfg, polybolt=polybolt, on_alert=print_alert),
        run_config={**run_cfg, "config": None},
    )  # fmt: skip
    session.recorder.on_alert = print_alert
    if resume:
        session.resume_from(run_dir)
    seconds = parse_duration(duration)
    if clock.speed != 1.0 and seconds is not None:
        err_console.print(
            f"clock: {clock.speed:g}x real time; --duration {duration} is venue time "
            f"(about {seconds / clock.speed:.1f} s of wall time)",
            markup=False,
        )
    last_print = [0.0]

    def status(s: LiveSession) -> None:
        import time

        now = time.monotonic()
        if now - last_print[0] < 5.0:
            return
        last_print[0] = now
        tot = s.engine.totals
        err_console.print(
            f"ticks {s.ticks:,}  fills {tot.fills:,}  PnL {tot.realized:+.2f}  fees "
            f"{tot.fees:.2f}  latency p50 "
            f"{1e3 * LatencyStats.pct(s.latency.recent, 0.5):.2f} ms  p99 "
            f"{1e3 * LatencyStats.pct(s.latency.recent, 0.99):.2f} ms"
        )

    session.on_tick = status

    async def main() -> None:
        server = None
        if dashboard is not None:
            from polyrl.dashboard.server import DashboardServer

            server = DashboardServer.live(session, port=dashboard)
            await server.start()
            err_console.print(f"dashboard: http://127.0.0.1:{server.port}/")
        try:
            await session.run(duration_s=seconds)
        finally:
            if server is not None:
                await server.stop()

    asyncio.run(main())
    tot = session.engine.totals
    rec = session.recorder
    err_console.print(
        f"stopped after {ran_text(rec.started_ns, rec.stopped_ns, clock.speed)}: "
        f"{session.ticks:,} ticks, {tot.fills:,} fills, realized PnL "
        f"{tot.realized:+.2f}; run in {run_dir}",
        markup=False,
    )


@app.command("parity")
def parity_cmd(
    run: Annotated[
        Path,
        typer.Argument(help="A live run directory (runs/<run>).", exists=True, file_okay=False),
    ],
) -> None:
    """Replay the recording a live run made over its span and diff every decision, fill and
    PnL against the live run's log; print the first divergence (tick, market, what differed)
    and exit 1 on any."""
    from polyrl.parity import replay_live_run

    _, report = replay_live_run(run)
    rows = ", ".join(f"{n:,} {t}" for t, n in report.rows.items())
    if report.divergence is not None:
        err_console.print(f"parity: DIVERGED: {report.divergence}")
        raise typer.Exit(1)
    typer.echo(f"parity: identical ({report.ticks:,} ticks, {report.events:,} events; {rows})")
