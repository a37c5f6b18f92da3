"""``polyrl bench ...``: benchmarks whose figures the README's performance section quotes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from polyrl.cli.apps import bench_app
from polyrl.cli.common import ConfigOpt, err_console, resolve_config


@bench_app.command("store")
def bench_store_cmd(
    hours: Annotated[
        float, typer.Option("--hours", help="Simulated hours to measure over (a day: 24).", min=0.1)
    ] = 24.0,
    seed: Annotated[int, typer.Option("--seed", help="Simulation seed.")] = 1,
    work: Annotated[
        Path,
        typer.Option("--work", help="Scratch directory; the simulated input is kept and reused."),
    ] = Path("recordings/bench-store"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Store write and read-and-merge throughput (events/s) and bytes on disk per simulated
    hour per stream, over a simulated recording of --hours for all four assets."""
    from polyrl.recording.bench import bench_store

    cfg = resolve_config(config)
    res = bench_store(
        work, hours=hours, seed=seed, config=cfg, progress=lambda m: err_console.print(m)
    )
    if as_json:
        typer.echo(res.to_json())
        return
    typer.echo(f"machine: {res.machine}")
    typer.echo(f"events: {res.events:,} over {res.hours:g} simulated hours")
    typer.echo(f"write:                 {res.write_events_per_s:>12,.0f} events/s")
    typer.echo(f"read+merge (batches):  {res.read_merge_events_per_s:>12,.0f} events/s")
    typer.echo(f"read+merge with raw:   {res.read_merge_raw_events_per_s:>12,.0f} events/s")
    typer.echo(f"per-event view:        {res.event_view_events_per_s:>12,.0f} events/s")
    typer.echo(f"disk: {res.bytes_total / 1e6:,.1f} MB; per simulated hour by stream:")
    for stream, b in res.bytes_per_hour_by_stream.items():
        typer.echo(f"  {stream:<32} {b / 1e6:>8.2f} MB/h")


@bench_app.command("replay")
def bench_replay_cmd(
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            help="Recording to measure on (default: simulate --hours into "
            "--work, once, and reuse it).",
        ),
    ] = None,
    hours: Annotated[
        float, typer.Option("--hours", help="Simulated hours when no --root is given.", min=0.1)
    ] = 24.0,
    seed: Annotated[int, typer.Option("--seed", help="Simulation seed.")] = 1,
    work: Annotated[
        Path, typer.Option("--work", help="Scratch directory (shared with bench store).")
    ] = Path("recordings/bench-store"),
    day: Annotated[
        str | None, typer.Option("--day", help="Recording day to measure (default: the first).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Replay throughput for one day of four markets: cold (FeatureEngine -> cache) in events/s
    and ticks/s, warm (load the cached observations) in seconds, and the Engine stepping
    every tick with a baseline in ticks/s."""
    from polyrl.features.bench import bench_replay
    from polyrl.recording.bench import ensure_bench_recording

    cfg = resolve_config(config)
    rec = (
        root
        if root is not None
        else ensure_bench_recording(
            work, hours=hours, seed=seed, config=cfg, progress=lambda m: err_console.print(m)
        )
    )
    res = bench_replay(rec, cfg, day=day)
    if as_json:
        typer.echo(res.to_json())
        return
    typer.echo(f"machine: {res.machine}")
    typer.echo(f"day {res.day}: {res.events:,} events, {res.ticks:,} decision ticks (4 markets)")
    typer.echo(
        f"cold (FeatureEngine -> cache): {res.cold_seconds:8.1f} s  "
        f"{res.cold_events_per_s:>12,.0f} events/s  {res.cold_ticks_per_s:>9,.0f} ticks/s"
    )
    typer.echo(f"warm (load the cached day):    {res.warm_seconds:8.2f} s")
    typer.echo(f"Engine from the cache:          {res.engine_ticks_per_s:>12,.0f} ticks/s")


@bench_app.command("record")
def bench_record_cmd(
    speed: Annotated[
        float,
        typer.Option(
            "--speed",
            help="Simulated seconds per real second the loopback "
            "venues push (about 290 frames/s of four assets per unit).",
            min=1,
        ),
    ] = 100.0,
    seconds: Annotated[
        float, typer.Option("--seconds", help="Real seconds to record for.", min=5)
    ] = 36.0,
    work: Annotated[
        Path, typer.Option("--work", help="Scratch directory for the recording.")
    ] = Path("recordings/bench-record"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Sustained recording throughput: the loopback venues push simulated markets for four
    assets at --speed x real time; `polyrl record` (a child process, one core) records them
    for --seconds. Reports frames/s recorded, CPU per 1,000 frames/s, and memory every second
    (flat memory = bounded). --speed 100 for 36 s is one simulated hour."""
    from polyrl.recording.bench import bench_record

    cfg = resolve_config(config)
    res = bench_record(
        work, speed=speed, seconds=seconds, config=cfg, progress=lambda m: err_console.print(m)
    )
    if as_json:
        typer.echo(res.to_json())
        return
    typer.echo(f"machine: {res.machine}")
    typer.echo(
        f"{res.simulated_s / 3600:.2f} simulated hours at {res.speed:g}x in {res.seconds:g} s"
    )
    typer.echo(
        f"recorded: {res.frames:,} frames ({res.rows:,} rows): {res.frames_per_s:,.0f} frames/s"
    )
    typer.echo(
        f"recorder CPU: {res.cpu_fraction:.0%} of one core; "
        f"{res.cpu_per_1000_fps:.3f} cores per 1,000 frames/s; "
        f"{res.frames_per_cpu_s:,.0f} frames per CPU-second"
    )
    typer.echo(
        f"memory: peak {res.peak_rss_mb:.0f} MB; RSS every second: "
        f"{', '.join(f'{x:.0f}' for x in res.rss_mb_samples)}"
    )


@bench_app.command("train")
def bench_train_cmd(
    replay: Annotated[
        str, typer.Option("--replay", help="Recording to train on: `sample` or a date glob.")
    ] = "sample",
    root: Annotated[
        Path | None, typer.Option("--root", help="Recording root for a date glob.")
    ] = None,
    updates: Annotated[
        int, typer.Option("--updates", help="Timed updates per setting.", min=1)
    ] = 3,
    big_envs: Annotated[int, typer.Option("--big-envs", help="Envs of setting (b).", min=1)] = 128,
    big_minibatch: Annotated[
        int, typer.Option("--big-minibatch", help="Minibatch of setting (b).", min=64)
    ] = 2048,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            help="`sb3`: also run stable-baselines3 PPO (same network "
            "and settings, on a trivial 18-dim env) in this run; needs the `bench` "
            "extra: pip install -e '.[bench]'.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """End-to-end PPO training speed (environment + updates, env-steps/s) for (a) the seed's
    settings (4 markets, buffer 512, minibatch 64, 10 epochs) and (b) many envs with large
    minibatches (10 epochs): on the real replay environment, on a trivial 18-dim env, and
    (--against sb3) stable-baselines3 on that trivial env; the speed-up over real time (the
    seed stepped 4 markets at 2 Hz: 8 steps/s) and the fraction of the compute ceiling."""
    import json as _json

    from polyrl.cli.backtest import replay_source
    from polyrl.errors import ConfigError
    from polyrl.features.sets import feature_set
    from polyrl.replay import load_days
    from polyrl.rl.bench import bench_ppo, bench_replay_train, bench_sb3
    from polyrl.rl.episodes import EpisodeStore

    if against not in (None, "sb3"):
        raise ConfigError(f"--against: {against!r} is not `sb3`")
    cfg = resolve_config(config)
    rec, dates = replay_source(replay, root, cfg)
    store = EpisodeStore.build(load_days(rec, dates, cfg))
    fset = feature_set(cfg.features.feature_set)
    settings = {"a": (4, 512, 64), "b": (big_envs, 512, big_minibatch)}
    rows: list[dict[str, Any]] = []
    for name, (n, buf, mb) in settings.items():
        err_console.print(f"setting ({name}): {n} envs, buffer {buf}, minibatch {mb}, 10 epochs")
        rep = bench_replay_train(
            store,
            fset,
            cfg.broker,
            n_envs=n,
            buffer_steps=buf,
            minibatch_size=mb,
            n_epochs=10,
            updates=updates,
        )
        toy = bench_ppo(n, buf, mb, 10, updates)
        row = {"setting": name, "replay": rep, "toy": toy}
        if against == "sb3":
            try:
                row["sb3"] = bench_sb3(n, buf, mb, 10, updates)
            except ImportError as e:
                raise ConfigError(f"--against sb3: {e}") from None
        rows.append(row)
    if as_json:
        typer.echo(_json.dumps(rows, indent=2))
        return
    sb3_a = rows[0].get("sb3", {}).get("steps_per_s")
    typer.echo(
        f"{'setting':<8} {'replay env':>12} {'real-time x':>12} {'toy env':>10} "
        f"{'ceiling':>8} {'SB3 toy':>9} {'vs SB3 same':>12} {'vs SB3 (a)':>11}"
    )
    for r in rows:
        rep, toy, sb3 = r["replay"]["steps_per_s"], r["toy"], r.get("sb3")
        same = f"{rep / sb3['steps_per_s']:.1f}x" if sb3 else "-"
        vs_a = f"{rep / sb3_a:.1f}x" if sb3_a else "-"
        s3 = f"{sb3['steps_per_s']:,.0f}" if sb3 else "-"
        typer.echo(
            f"({r['setting']})      {rep:>12,.0f} {rep / 8:>12,.0f} "
            f"{toy['steps_per_s']:>10,.0f} {toy['ceiling_fraction']:>8.0%} {s3:>9} "
            f"{same:>12} {vs_a:>11}"
        )
    typer.echo(
        f"matmul: {rows[0]['toy']['matmul_gflops']:.0f} GFLOP/s float32 ({rows[0]['toy']['blas']})"
    )


@bench_app.command("live")
def bench_live_cmd(
    load: Annotated[
        Path | None,
        typer.Option(
            "--load",
            help="PPO checkpoint to trade with (default: a fresh agent's, written into --work).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    seconds: Annotated[float, typer.Option("--seconds", help="Real seconds to run.", min=10)] = 180,
    speed: Annotated[
        float, typer.Option("--speed", help="Venue clock speed (1 = real load).", min=0.1)
    ] = 1.0,
    work: Annotated[Path, typer.Option("--work", help="Scratch directory.")] = Path(
        "recordings/bench-live"
    ),
    config: ConfigOpt = None,
) -> None:
    """Tick-to-decision latency (p50/p99) of `polyrl live` with the PPO policy on four
    markets, and its CPU use, against the loopback venues at real load (--speed 1)."""
    import dataclasses
    import json
    import shutil
    import signal
    import subprocess
    import sys
    import time

    from polyrl.clock import LiveClock
    from polyrl.events import NS_PER_S, iso_to_ns
    from polyrl.recording.bench import _machine, _proc_cpu_s, _proc_rss_mb
    from polyrl.sim.serve import ServeConfig, ServersThread, SimContent, VenueServers
    from polyrl.sim.serve.configfile import serve_toml

    cfg = resolve_config(config)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    if load is None:
        from polyrl.features.sets import feature_set
        from polyrl.rl.checkpoint import save_checkpoint
        from polyrl.rl.ppo import PPO

        fset = feature_set(cfg.features.feature_set)
        load = work / "fresh-agent"
        meta = {"feature_set": fset.name, "feature_set_version": fset.version}
        save_checkpoint(load, PPO(fset.dim, 3, cfg.ppo, seed=0), meta)
    start = iso_to_ns("2024-06-01T00:00:00Z")
    clock = LiveClock(speed=speed, start_ns=start)
    span = int((seconds + 120) * speed) * NS_PER_S
    content = SimContent(cfg, start_ns=start, end_ns=start + span, seed=1)
    servers = VenueServers(content, clock=clock, config=ServeConfig(log_frames=False))
    with ServersThread(servers) as v:
        sources = dataclasses.replace(v.sources_config(cfg.sources))
        cfg_path = work / "bench-live.toml"
        cfg_path.write_text(serve_toml(cfg, sources, speed=speed, start_ns=start,
                                       anchor_ns=clock.anchor_real_ns))  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "polyrl", "live", "--load", str(load), "--config",
             str(cfg_path), "--out", str(work / "rec"), "--runs", str(work), "--name", "run"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(5.0)  # start-up
        cpu0, t0 = _proc_cpu_s(proc.pid), time.perf_counter()
        time.sleep(seconds)
        cpu = _proc_cpu_s(proc.pid) - cpu0
        elapsed = time.perf_counter() - t0
        rss = _proc_rss_mb(proc.pid, "VmHWM")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            typer.echo(err, err=True, nl=False)
            raise typer.Exit(proc.returncode if proc.returncode > 0 else 1)
    summary = json.loads((work / "run" / "summary.json").read_text())
    typer.echo(f"machine: {_machine()}")
    typer.echo(
        f"{summary['ticks']:,} ticks of 4 markets over the session at {speed:g}x "
        f"(start-up included); CPU measured over {elapsed:.0f} s of it"
    )
    typer.echo(
        f"tick-to-decision: p50 {summary['latency_ms_p50']:.2f} ms, "
        f"p99 {summary['latency_ms_p99']:.2f} ms"
    )
    typer.echo(
        f"CPU: {cpu / elapsed:.1%} of one core (recording and trading); peak RSS {rss:.0f} MB"
    )


@bench_app.command("import")
def bench_import_cmd(
    hours: Annotated[
        int,
        typer.Option(
            "--hours",
            help="PMXT hours to import (the day figure scales them to 24).",
            min=1,
            max=24,
        ),
    ] = 2,
    pmxt_rows_per_hour: Annotated[
        int,
        typer.Option(
            "--pmxt-rows-per-hour",
            help="PMXT rows an hour of the four assets' markets together.",
            min=100,
        ),
    ] = 1_000_000,
    other_markets: Annotated[
        int, typer.Option("--other-markets", help="Other markets in each hour file.", min=0)
    ] = 400,
    other_rows: Annotated[
        int, typer.Option("--other-rows", help="Rows of each other market per hour.", min=1)
    ] = 10_000,
    row_group_rows: Annotated[
        int,
        typer.Option(
            "--row-group-rows",
            help="Rows per row group of the PMXT files (the archive's: 1,048,576).",
            min=1000,
        ),
    ] = 1_048_576,
    spot_trades: Annotated[
        int,
        typer.Option("--spot-trades", help="Binance spot aggTrades per asset and day.", min=10),
    ] = 1_500_000,
    futures_trades: Annotated[
        int,
        typer.Option("--futures-trades", help="Binance USD-M aggTrades per asset and day.", min=10),
    ] = 1_000_000,
    workdir: Annotated[
        Path,
        typer.Option(
            "--workdir", help="Scratch directory; the generated archive files are kept and reused."
        ),
    ] = Path("recordings/bench-import"),
    remote: Annotated[
        bool,
        typer.Option(
            "--remote",
            help="Also import the PMXT hours through a loopback HTTP "
            "archive with range reads, and report the bytes fetched.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Import speed from local archive files: PMXT hours of the four assets' markets among
    many others (the archive's layout) and a Binance day of the four assets, each stage
    (read, convert, store write) in rows per CPU-second, and the CPU seconds a day of the
    four assets takes; with --remote, bytes fetched by range reads against the file sizes."""
    from polyrl.importers.bench import bench_import  # fmt: skip

    res = bench_import(
        workdir, hours=hours, pmxt_rows_per_hour=pmxt_rows_per_hour,
        other_markets=other_markets, other_rows=other_rows, spot_trades=spot_trades,
        futures_trades=futures_trades, row_group_rows=row_group_rows, remote=remote,
        progress=lambda m: err_console.print(m),
    )  # fmt: skip
    if as_json:
        typer.echo(res.to_json())
        return
    typer.echo(f"machine: {res.machine}; load average {', '.join(map(str, res.load_avg))}")
    typer.echo(res.assumption)
    typer.echo(
        f"PMXT: {res.hours} hours, {res.pmxt_rows_in_files:,} rows in "
        f"{res.pmxt_files_bytes / 1e6:,.0f} MB of files; {res.pmxt_rows_out:,} rows imported "
        f"in {res.pmxt_cpu_s:.1f} CPU s ({res.pmxt_wall_s:.1f} s wall)"
    )
    for name, st in res.pmxt.items():
        typer.echo(f"  {name:<8} {st['rows']:>12,} rows {st['cpu_s']:7.2f} CPU s "
                   f"{st['rows_per_cpu_s']:>12,.0f} rows/s")  # fmt: skip
    typer.echo(
        f"Binance: a day, {res.binance_files_bytes / 1e6:,.0f} MB of zips; "
        f"{res.binance_rows_out:,} rows imported in {res.binance_cpu_s:.1f} CPU s "
        f"({res.binance_wall_s:.1f} s wall)"
    )
    for name, st in res.binance.items():
        typer.echo(f"  {name:<8} {st['rows']:>12,} rows {st['cpu_s']:7.2f} CPU s "
                   f"{st['rows_per_cpu_s']:>12,.0f} rows/s")  # fmt: skip
    d, ph = res.day_cpu_s, res.pmxt_hour_cpu_s
    typer.echo("  hours  " + ", ".join(f"{c:.2f}" for c in ph) + " CPU s")
    how = (f"first hour {ph[0]:.2f} + 23 x later hours' mean {sum(ph[1:]) / (len(ph) - 1):.2f}"
           if len(ph) > 1 else f"{res.hours} hours x {24 / res.hours:g}")  # fmt: skip
    typer.echo(
        f"a day of the four assets: {d['total']:.1f} CPU s (Polymarket {d['polymarket']:.1f} "
        f"= {how} + Gamma, Binance {d['binance']:.1f}); target < 30 s"
    )
    if res.remote is not None:
        r = res.remote
        typer.echo(
            f"remote PMXT: fetched {r['bytes_fetched']:,} of {r['bytes_total']:,} bytes "
            f"({r['pct']:.1f}%), {r['bytes_per_market_hour'] / 1e6:.2f} MB per market-hour, "
            f"{r['cpu_s']:.1f} CPU s ({r['wall_s']:.1f} s wall)"
        )
        for h in r["per_hour"]:
            typer.echo(f"  {h['hour']}: {h['bytes_fetched']:,} of {h['size']:,} bytes "
                       f"({h['pct']:.1f}%), row groups {h['row_groups']}")  # fmt: skip
        typer.echo(f"  {r['real_file_note']}: ~{r['real_file_share_estimate_pct']:.0f}%")


@bench_app.command("cache")
def bench_cache_cmd(
    workers: Annotated[
        str,
        typer.Option("--workers", help="Worker counts to compare, comma-separated (first: base)."),
    ] = "1,2",
    ray: Annotated[
        bool, typer.Option("--ray", help="Also a local Ray with the largest worker count.")
    ] = False,
    days: Annotated[int, typer.Option("--days", help="Simulated days.", min=1)] = 4,
    hours: Annotated[
        float, typer.Option("--hours", help="Simulated hours of each day.", min=0.01)
    ] = 1.0,
    repeat: Annotated[int, typer.Option("--repeat", help="Cold builds per setting.", min=1)] = 3,
    seed: Annotated[int, typer.Option("--seed", help="Simulation seed of the first day.")] = 1,
    root: Annotated[
        Path | None,
        typer.Option("--root", help="Recording to measure on (default: simulate into --work)."),
    ] = None,
    work: Annotated[
        Path, typer.Option("--work", help="Scratch directory; the simulated days are reused.")
    ] = Path("recordings/bench-cache"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Cold day-cache builds of every day, one by one and with --workers processes (and a
    local Ray with --ray): seconds per build of all the days (median of --repeat, each from
    no cache, worker start-up included) and the speed-up over the first worker count. The
    recording's .cache/ is removed before each build. CPU seconds (this process and its
    workers) show the work done whatever else shares the cores."""
    import statistics

    from polyrl.errors import ConfigError
    from polyrl.features.cache_bench import bench_cache, ensure_days

    try:
        counts = [int(x) for x in workers.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--workers: {workers!r} is not a list of whole numbers") from None
    if not counts or min(counts) < 1:
        raise ConfigError(f"--workers: {workers!r} needs whole numbers >= 1")
    cfg = resolve_config(config)
    say = lambda m: err_console.print(m, markup=False)  # noqa: E731
    rec = root or ensure_days(work, days=days, hours=hours, seed=seed, config=cfg, progress=say)
    res = bench_cache(rec, cfg, workers=counts, ray=ray, repeat=repeat, progress=say)
    if as_json:
        typer.echo(res.to_json())
        return
    typer.echo(f"machine: {res.machine}")
    typer.echo(f"{res.days} days, {res.events:,} events; cold build of all days, {repeat} runs:")
    for label, secs in res.seconds.items():
        runs = ", ".join(f"{s:.2f}" for s in secs)
        cpu = res.cpu_seconds.get(label)
        typer.echo(
            f"  {label:<14} median {statistics.median(secs):7.2f} s  "
            f"({runs})  speed-up {res.speedup[label]:.2f}x"
            + (f"  CPU {statistics.median(cpu):.2f} s" if cpu else "")
        )


@bench_app.command("s3")
def bench_s3_cmd(
    hours: Annotated[
        float,
        typer.Option("--hours", help="Simulated hours of the recording (a day: 24).", min=0.1),
    ] = 24.0,
    seed: Annotated[int, typer.Option("--seed", help="Simulation seed.")] = 1,
    work: Annotated[
        Path,
        typer.Option("--work", help="Scratch directory; the simulated input is kept and reused."),
    ] = Path("recordings/bench-store"),
    endpoint: Annotated[
        str,
        typer.Option(
            "--endpoint",
            help="S3 endpoint of a running server (credentials from AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY); default: start moto's server on a free 127.0.0.1 port.",
        ),
    ] = "",
    repeat: Annotated[int, typer.Option("--repeat", help="Reads of each; best kept.", min=1)] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Reading the first day of the simulated bench recording (every typed column but raw,
    merged) from an S3 server on loopback against reading it from local disk."""
    from polyrl.recording.s3bench import bench_s3

    cfg = resolve_config(config)
    res = bench_s3(
        work, hours=hours, seed=seed, config=cfg, endpoint=endpoint, repeat=repeat,
        progress=lambda m: err_console.print(m),
    )  # fmt: skip
    if as_json:
        typer.echo(res.to_json())
        return
    typer.echo(f"machine: {res.machine}")
    typer.echo(f"server: {res.server}")
    typer.echo(f"day {res.day}: {res.events:,} events, {res.bytes / 1e6:,.1f} MB of Parquet")
    typer.echo(f"local disk: {res.local_s:8.2f} s  {res.local_events_per_s:>12,.0f} events/s")
    typer.echo(f"S3:         {res.s3_s:8.2f} s  {res.s3_events_per_s:>12,.0f} events/s")
    typer.echo(f"S3 / local: {res.ratio:.2f}x")
