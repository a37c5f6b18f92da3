"""``polyrl backtest``: the baselines on recordings, through the same Engine as live."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from polyrl.cli.apps import app
from polyrl.cli.common import (
    BlockOpt,
    ConfigOpt,
    err_console,
    parse_latencies,
    progress_bar,
    recording_location,
    recording_root,
    refuse_root_with_sample,
    resolve_config,
    run_taken,
)
from polyrl.cli.parallel import RayOpt, WorkersOpt, parallel_options
from polyrl.config import Config
from polyrl.errors import ConfigError

if TYPE_CHECKING:
    from polyrl.features.cache import DayCache
    from polyrl.storage import Location

RunsOpt = Annotated[
    Path, typer.Option("--runs", help="Directory the run directories are written under.")
]


def replay_source(replay: str, root: str | Path | None, cfg: Config) -> tuple[Path | Location, str]:
    """``--replay``/``--root`` -> (recording root, date glob). ``sample`` is the sample (and
    ``--root`` beside it an error); a URI root is read from its object store."""
    refuse_root_with_sample(replay, root)
    if replay == "sample":
        return recording_root("sample", cfg), "*"
    base = root if root is not None else Path(cfg.recording.root)
    return recording_location(base, cfg), replay


def load_caches(
    root: Path | Location, dates: str, cfg: Config, latencies_ms: list[int] | None = None,
    workers: int = 1, ray: str | None = None,
):  # fmt: skip
    """Load/build the selected days' feature caches with a progress bar; with
    ``latencies_ms``, ``{latency_ms: caches}`` from one feature entry per day (the fill books
    of each latency beside it), never one build per latency. ``workers``/``ray``: the
    missing days built in parallel first, a line per finished day."""
    from polyrl.cli.parallel import day_done_line
    from polyrl.features.cache import recording_days
    from polyrl.replay import check_streams, load_days, load_days_latencies

    globs = [g.strip() for g in dates.split(",") if g.strip()]
    days = recording_days(root, globs)
    check_streams(root, days, cfg)  # days lacking a needed stream: refused before any build
    with progress_bar("features (cache)", total=len(days) * 24, unit="day-hours") as advance:
        done: dict[str, int] = {}

        def prog(day: str, h: int, n: int) -> None:
            done[day] = h
            advance(sum(done.values()), day)

        caches: list[DayCache] | dict[int, list[DayCache]]
        line = day_done_line(workers, ray)
        if latencies_ms is None:
            caches = load_days(root, globs, cfg, progress=prog, workers=workers,
                               ray_address=ray, days_progress=line)  # fmt: skip
        else:
            caches = load_days_latencies(root, globs, cfg, latencies_ms, progress=prog,
                                         workers=workers, ray_address=ray,
                                         days_progress=line)  # fmt: skip
        advance(len(days) * 24)
    return caches


def run_baseline(
    name: str, caches, cfg: Config, run_dir: Path, seed: int, block: str = "start",
    data: dict | None = None,
) -> dict:  # fmt: skip
    """One strategy (a baseline's name or a ``module:Name`` spec) over the caches; writes its
    run directory; returns the summary. ``data``: what made the days
    (:func:`polyrl.recording.provenance.data_section`); a spec's summary also names the class
    that ran and its source file's sha256 (``strategy_source``)."""
    from polyrl.analysis.stats import summarize
    from polyrl.features.sets import feature_set
    from polyrl.policies.plugin import label, make_strategy
    from polyrl.replay import config_dict, events_digest, replay_engine
    from polyrl.runlog import RunLog

    fset = feature_set(cfg.features.feature_set)
    policy = make_strategy(name, fset, cfg.baselines, seed=seed)
    log = RunLog(run_dir, config=config_dict(cfg, {"strategy": name, "seed": seed}))
    total = sum(int(c.arrays["ticks"].shape[0]) for c in caches)
    with progress_bar(f"backtest {label(name)}", total=total, unit="ticks") as advance:
        result = replay_engine(caches, policy, cfg, log, progress=lambda d, n: advance(d))
    stats = summarize(
        log.frame("trades"),
        log.frame("episodes"),
        assets=tuple(cfg.assets),
        capital_per_slot=cfg.broker.capital,
        seed=seed,
        block=block,
    )
    return log.finish(
        {
            "kind": "backtest",
            "strategy": name,
            "fill_latency_ms": cfg.engine.fill_latency_ms,
            "days": result.days,
            "ticks": result.ticks,
            "events": result.events,
            "recording_digests": result.recording_digests,
            "events_digest": events_digest(result),
            "stats": stats,
            "data": data,
            **({"strategy_source": policy.source} if hasattr(policy, "source") else {}),
        }
    )


STRATEGY_HELP = (
    "What to run: a baseline (momentum, mean_revert, fade_spike, random, gating, hold: never "
    "trades, fair_gap: needs a feature set with fair_gap, e.g. --feature-set full), all (the "
    "five rule baselines momentum..gating side by side; hold and fair_gap run only by name), "
    "or your own class: package.module:Name (imported from PYTHONPATH, then the current "
    "directory) or path/to/file.py:Name. The class follows the Policy protocol "
    "(polyrl/policies/base.py; the baselines are examples): a str attribute `name` and "
    "act(obs float32 [markets, features], tradable bool [markets]) -> int actions [markets] "
    "(0 HOLD, 1 BUY Up, 2 SELL = buy Down); its __init__ gets the keyword arguments it "
    "declares among feature_set (the run's FeatureSet: names, index(name)) and seed. A "
    "comma-separated list runs several on the same replay, side by side (all,mymod:Mine). "
    "A bad spec is refused with what is wrong before any day is loaded."
)


@app.command("backtest")
def backtest_cmd(
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            help=STRATEGY_HELP,
        ),
    ],
    replay: Annotated[
        str,
        typer.Option(
            "--replay",
            help="Date glob(s) of the recording (2024-06-*), or `sample` for the embedded sample.",
        ),
    ],
    root: Annotated[
        str | None,
        typer.Option(
            "--root",
            help="Recording root (default: [recording] root of the config): a directory or a "
            "URI (s3://bucket/prefix, gs://, file://; see [storage]); not with --replay "
            "sample, which has its own.",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Run name (default: backtest-<strategy>, a class's name for a spec, "
            "several joined by +). A name that already holds a run "
            "is refused, never overwritten.",
        ),
    ] = None,
    runs: RunsOpt = Path("runs"),
    feature_set: Annotated[
        str | None,
        typer.Option(
            "--feature-set",
            help="Feature set: seed18, full or history (days lacking a stream it needs are "
            "refused).",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the random baseline and the bootstrap.")
    ] = 0,
    block: BlockOpt = "start",
    latency: Annotated[
        str | None,
        typer.Option(
            "--latency",
            help="Fill latency: one value (250ms, 0.5s) replaces [engine] fill_latency_ms "
            "(default 300 ms); several (0,100,250,500,1000ms: an item without a unit takes "
            "the unit the list ends with, ms if none) sweep it: each day's feature cache is "
            "built once for all of them, every strategy runs once per latency into "
            "runs/<name>/latency-<ms>ms/, and a table of PnL per window against latency is "
            "printed and written to runs/<name>/sweep.json.",
        ),
    ] = None,
    workers: WorkersOpt = 1,
    ray: RayOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run baselines or your own strategy (--strategy module:Name) over recorded days
    through the Engine (the same feature, policy and paper-execution code as live) and print
    PnL, ROI, fills, win rate, average win and loss, fees, max drawdown, and PnL per window
    over every eligible window (untraded ones count 0) and per traded window, each with a
    cluster-bootstrap 95% interval and its number of clusters, per asset and in total.
    Writes runs/<name>/ (config, decisions, trades, episodes, summary with digests of the
    events consumed and of the outputs, and for your own class its spec, file and the file's
    sha256); with --strategy all or a list, one run per strategy in runs/<name>/<strategy>/
    and comparison.json beside them. With --latency A,B,... (a sweep) one such run per
    latency and the PnL per window of every strategy against latency. An existing run is
    never overwritten: its name is refused."""
    from polyrl.analysis.bootstrap import BLOCKS
    from polyrl.analysis.stats import format_table
    from polyrl.features.sets import feature_set as fset_named
    from polyrl.policies.baselines import BASELINES, KNOWN
    from polyrl.policies.plugin import is_spec, label, make_strategy, resolve_spec
    from polyrl.recording.provenance import data_section

    if block not in BLOCKS:
        raise ConfigError(f"--block: {block!r} is not one of {', '.join(BLOCKS)}")

    workers, ray = parallel_options(workers, ray)
    lat_ms = parse_latencies(latency) if latency is not None else None
    overrides: dict[str, dict[str, object]] = {}
    if feature_set:
        overrides["features"] = {"feature_set": feature_set}
    if lat_ms is not None and len(lat_ms) == 1:
        overrides["engine"] = {"fill_latency_ms": lat_ms[0]}
    cfg = resolve_config(config, overrides)
    items = [s.strip() for s in strategy.split(",") if s.strip()]
    if not items:
        raise ConfigError("--strategy: empty (a baseline, all, or package.module:Name)")
    specs = [resolve_spec(s) if is_spec(s) else s for s in items]
    names = [n for s in specs for n in (BASELINES if s == "all" else [s])]
    labels = {n: label(n) for n in names}
    if len(set(labels.values())) < len(labels) or len(set(names)) < len(names):
        raise ConfigError(f"--strategy {strategy}: two strategies share the name of a run")
    for n in names:
        if not is_spec(n) and n not in KNOWN:
            raise ConfigError(
                f"--strategy: unknown strategy {n!r} (baselines: {', '.join(KNOWN)}, all, "
                "or your own class: package.module:Name or path/to/file.py:Name)"
            )
        # A strategy the feature set cannot feed, or a spec that does not load, is refused
        # before any day is loaded.
        try:
            make_strategy(n, fset_named(cfg.features.feature_set), cfg.baselines, seed=seed)
        except ConfigError as e:
            if is_spec(n):
                raise
            raise ConfigError(f"--strategy {n}: {e} (choose one with --feature-set)") from None
    default = "+".join(label(s) for s in specs)
    base = runs / (name or f"backtest-{default}")
    sweep = lat_ms if lat_ms is not None and len(lat_ms) > 1 else None
    tops = [base / f"latency-{ms}ms" for ms in sweep] if sweep else [base]
    dirs = [base, *tops, *(t / labels[n] for t in tops for n in names)]
    taken = [d for d in dirs if run_taken(d)]
    if taken:
        hint = "use another --name" if name else "pass --name NAME to write a new run"
        raise ConfigError(f"run directory {taken[0]} already holds a run; {hint}")
    rec_root, dates = replay_source(replay, root, cfg)
    if sweep:
        by_latency = load_caches(rec_root, dates, cfg, sweep, workers, ray)
        first = next(iter(by_latency.values()))
        data = data_section(rec_root, [c.date for c in first], sim_class=type(cfg.sim))
        run_sweep(base, names, by_latency, cfg, seed, block, data)
        return
    caches = load_caches(rec_root, dates, cfg, None, workers, ray)
    data = data_section(rec_root, [c.date for c in caches], sim_class=type(cfg.sim))
    summaries = {}
    for n in names:
        run_dir = base / labels[n] if len(names) > 1 else base
        summaries[labels[n]] = run_baseline(n, caches, cfg, run_dir, seed, block, data)
        err_console.print(f"{labels[n]}: wrote {run_dir}", markup=False)
    typer.echo(f"data: {data['text']}")
    typer.echo(format_table({n: s["stats"] for n, s in summaries.items()}))
    print_notes(summaries, caches)
    if len(names) > 1:
        write_comparison(base, summaries)


def write_comparison(base: Path, summaries: dict) -> None:
    """``comparison.json`` beside the runs of ``--strategy all``: each one's total."""
    (base / "comparison.json").write_text(
        json.dumps({n: s["stats"]["total"] for n, s in summaries.items()}, indent=2, sort_keys=True)
    )


def run_sweep(
    base: Path, names: list[str], by_latency, cfg: Config, seed: int, block: str,
    data: dict | None = None,
) -> None:  # fmt: skip
    """Every strategy once per latency (``by_latency``: ``{ms: caches}``, one feature entry
    per day), each a run in ``base/latency-<ms>ms/``; prints PnL per window against latency
    and writes ``base/sweep.json`` (one entry per latency and strategy); ``data``: what made
    the days, in every run's summary and the sweep's."""
    import dataclasses

    from polyrl.analysis.stats import format_latency_table
    from polyrl.policies.plugin import label

    rows: list[tuple[str, int, dict[str, Any]]] = []
    entries: list[dict[str, Any]] = []
    summaries: dict[str, dict[str, Any]] = {}
    for ms, caches in sorted(by_latency.items()):
        cfg_l = dataclasses.replace(cfg, engine=dataclasses.replace(cfg.engine, fill_latency_ms=ms))
        top = base / f"latency-{ms}ms"
        summaries = {}
        for n in names:
            lab = label(n)
            run_dir = top / lab if len(names) > 1 else top
            summaries[lab] = run_baseline(n, caches, cfg_l, run_dir, seed, block, data)
            err_console.print(f"{lab} at {ms} ms: wrote {run_dir}", markup=False)
            total = summaries[lab]["stats"]["total"]
            rows.append((lab, ms, total))
            entries.append({"latency_ms": ms, "strategy": n,
                            "run": str(run_dir.relative_to(base)), "total": total})  # fmt: skip
        if len(names) > 1:
            write_comparison(top, summaries)
    if data is not None:
        typer.echo(f"data: {data['text']}")
    typer.echo(format_latency_table(rows))
    print_notes(summaries, next(iter(by_latency.values())))
    (base / "sweep.json").write_text(
        json.dumps(
            {"kind": "latency_sweep", "latencies_ms": sorted(by_latency), "strategies": names,
             "entries": entries, "data": data},
            indent=2, sort_keys=True,
        )
    )  # fmt: skip


def print_notes(summaries: dict, caches) -> None:
    """The notes under a table: windows settled from the reference feed, without an
    outcome, charged an assumed fee schedule, or overlapping a recording gap."""
    flagged = {n: s["stats"]["total"] for n, s in summaries.items()}
    first = next(iter(flagged.values()))
    notes = []
    if first["settled_from_reference"]:
        notes.append(
            f"{first['settled_from_reference']} window(s) had no recorded resolution "
            "and were settled from the reference feed"
        )
    if first["missing_resolution"]:
        notes.append(
            f"{first['missing_resolution']} window(s) had no outcome and are left out of "
            "the PnL statistics"
        )
    assumed = sum(
        int(c.windows["fee_schedule_assumed"].fill_null(False).sum())
        for c in caches
        if "fee_schedule_assumed" in c.windows.columns
    )
    if assumed:
        notes.append(
            f"{assumed} market(s) had fees enabled but no fee schedule and were charged the "
            "published crypto schedule (windows table: fee_schedule_assumed)"
        )
    for flag, text in (
        (
            "reference_mismatch",
            "had no recorded resolution and only reference ticks of another feed than the "
            "one the market settles on: refused, left without an outcome",
        ),
        (
            "reference_stale",
            "were settled from the reference feed with a boundary tick older than "
            "[features] reference_max_age_s",
        ),
    ):
        n = sum(
            int(c.windows[flag].fill_null(False).sum()) for c in caches if flag in c.windows.columns
        )
        if n:
            notes.append(f"{n} window(s) {text} (windows table: {flag})")
    if first["flagged_gap"]:
        notes.append(f"{first['flagged_gap']} window(s) overlapped a recording gap")
    for note in notes:
        err_console.print(f"note: {note}")
