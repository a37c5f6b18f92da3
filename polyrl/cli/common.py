"""Options and helpers shared by several commands."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from polyrl.errors import ConfigError
from polyrl.events import ASSETS
from polyrl.sections import Config, load_config

if TYPE_CHECKING:
    from polyrl.sources.polymarket.polybolt import ClobCredentials
    from polyrl.storage import Location

err_console = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML config file (default: configs/default.toml); CLI options override it.",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]
BlockOpt = Annotated[
    str,
    typer.Option(
        "--block",
        help="Clusters the intervals resample: start (every window of one start time, all "
        "assets together) or day (every window of one UTC day).",
    ),
]


def parse_assets(text: str | None) -> tuple[str, ...] | None:
    """``btc,eth`` -> ('btc', 'eth'); an unknown asset is an error naming the option."""
    if text is None:
        return None
    items = tuple(a.strip().lower() for a in text.split(",") if a.strip())
    bad = [a for a in items if a not in ASSETS]
    if bad or not items:
        raise ConfigError(f"--assets: {', '.join(bad) or 'empty'} not in {', '.join(ASSETS)}")
    return items


def resolve_config(path: Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Load the config file (or the default) with CLI overrides applied."""
    return load_config(path, {k: v for k, v in (overrides or {}).items() if v is not None})


@contextmanager
def progress_bar(description: str, total: float | None, unit: str = "") -> Iterator[Any]:
    """A rich progress bar on stderr; yields ``advance_to(value)``."""
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn()
        if unit == ""
        else TextColumn("{task.completed:.0f}/{task.total:.0f} " + unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    ]
    with Progress(*columns, console=err_console, transient=False) as prog:
        task = prog.add_task(description, total=total, status="")

        def advance_to(value: float, status: str = "") -> None:
            prog.update(task, completed=value, status=status)

        yield advance_to


def polybolt_credentials() -> ClobCredentials | None:
    """The PolyBolt credentials from the environment; without them, the one line saying
    PolyBolt is not recorded (a half-set triple is a ConfigError naming what is missing)."""
    from polyrl.sources.polymarket.polybolt import credentials_from_env, no_credentials_note

    creds = credentials_from_env(os.environ)
    if creds is None:
        err_console.print(no_credentials_note(), markup=False, highlight=False, soft_wrap=True)
    return creds


def print_alert(kind: str, line: str) -> None:
    """A recorder ``alert`` or ``recovered``: one plain-text line on stderr (venue messages
    hold brackets, such as ``[Errno 111]``, that are not console markup)."""
    err_console.print(f"{kind.upper()}: {line}", markup=False, highlight=False)


def ran_text(started_ns: int | None, stopped_ns: int | None, speed: float) -> str:
    """How long a recorder ran on its clock (what --duration counts): ``90.0 s``, or
    ``90.0 s of venue time (9.0 s wall at 10x)`` on a clock faster than real time."""
    if started_ns is None or stopped_ns is None:
        return "0 s"
    ran = (stopped_ns - started_ns) / 1e9
    if speed == 1.0:
        return f"{ran:.1f} s"
    return f"{ran:.1f} s of venue time ({ran / speed:.1f} s wall at {speed:g}x)"


DURATION_HELP = (
    "Counted on the clock: wall time against the real venues; venue time when a [clock] "
    "speed runs it faster (against `polyrl simulate --serve --speed 10`, 90s takes 9 s)."
)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str | None, option: str = "--duration") -> float | None:
    """``90s``, ``10m``, ``1.5h``, ``2d`` or plain seconds -> seconds; errors name the option."""
    if text is None:
        return None
    t = text.strip().lower()
    try:
        if t and t[-1] in _UNITS:
            value = float(t[:-1]) * _UNITS[t[-1]]
        else:
            value = float(t)
    except ValueError:
        raise ConfigError(f"{option}: {text!r} is not a duration like 90s, 10m, 1h or 2d") from None
    if value <= 0:
        raise ConfigError(f"{option}: must be > 0, got {text!r}")
    return value


_LATENCY_UNITS = {"ms": 1.0, "s": 1000.0}


def parse_latencies(text: str, option: str = "--latency") -> list[int]:
    """``0,100,250ms`` or ``0,0.5,1s`` or ``100ms,1s`` -> whole milliseconds, ascending and
    unique. An item without a unit takes the unit the list ends with (ms if none); errors
    name the option."""
    items = [i.strip().lower() for i in text.split(",")]
    if not text.strip() or any(not i for i in items):
        raise ConfigError(f"{option}: {text!r} is not a list of latencies like 0,100,250ms")

    def unit_of(item: str) -> str | None:
        return next((u for u in ("ms", "s") if item.endswith(u)), None)

    default = unit_of(items[-1]) or "ms"
    out = []
    for item in items:
        unit = unit_of(item)
        num = item[: -len(unit)].strip() if unit else item
        try:
            value = float(num) * _LATENCY_UNITS[unit or default]
        except ValueError:
            raise ConfigError(
                f"{option}: {item!r} is not a latency like 250ms or 0.5s (units: ms, s)"
            ) from None
        if not value >= 0 or value == float("inf"):
            raise ConfigError(f"{option}: latency {item!r} must be >= 0 and finite")
        if value != round(value):
            raise ConfigError(f"{option}: latency {item!r} is not a whole number of milliseconds")
        out.append(int(round(value)))
    return sorted(set(out))


def recording_root(arg: str | Path, config: Config) -> Path:
    """A recording root option -> a path; ``sample`` builds the embedded sample on first use
    (with a progress bar)."""
    from polyrl.sim.sample import SAMPLE_HOURS, SAMPLE_NAME, resolve_root, sample_root

    if str(arg) != SAMPLE_NAME or (sample_root(config) / "SAMPLE.json").exists():
        return resolve_root(arg, config)
    total = SAMPLE_HOURS * 3600
    with progress_bar("building the sample recording", total=total, unit="sim s") as advance:
        first: list[int] = []

        def tick(t_ns: int) -> None:
            if not first:
                first.append(t_ns)
            advance((t_ns - first[0]) / 1e9)

        return resolve_root(arg, config, progress=tick)


def recording_location(arg: str | Path, config: Config) -> Path | Location:
    """A recording root option that may also be a URI (``s3://bucket/prefix``, ``gs://``,
    ``file://``): a URI becomes a :class:`~polyrl.storage.Location` on its store (endpoint and
    timeouts from ``[storage]``, credentials from the environment), anything else goes
    through :func:`recording_root`."""
    from polyrl.storage import is_uri, locate

    if is_uri(str(arg)):
        return locate(str(arg), config.storage)
    return recording_root(arg, config)


def refuse_root_with_sample(replay: str, root: str | Path | None) -> None:
    """``--root`` names the recording ``--replay`` globs; the sample has its own (under the
    configured ``[recording] root``), so giving both is an error rather than ignored."""
    if root is not None and replay == "sample":
        raise ConfigError(
            f"--root {root}: not used with --replay sample (the sample lives under the "
            "config's [recording] root); drop --root, or give --replay a date glob of the "
            "recording under it"
        )


def run_taken(run_dir: Path) -> Path | None:
    """The directory under ``run_dir`` that already holds a run (a finished one, the
    siblings of ``backtest --strategy all``, a latency sweep, or a training run with a
    checkpoint), if any."""
    markers = ("summary.json", "comparison.json", "sweep.json", "checkpoints/last/meta.json")
    for marker in markers:
        if (run_dir / marker).exists():
            return run_dir
    return None


def cli_prefix() -> str:
    """How this process was started, as a shell command prefix: ``.venv/bin/polyrl`` when run
    through the console script, ``<python> -m polyrl`` when run as a module, else ``polyrl``
    (so printed commands can be pasted as they are)."""
    import shlex
    import sys

    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name == "polyrl":
        return shlex.quote(argv0)
    if Path(argv0).name == "__main__.py" and Path(argv0).parent.name == "polyrl":
        return f"{shlex.quote(sys.executable)} -m polyrl"
    return "polyrl"


SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override any config key: --set ppo.ent_coef=0.05 (repeatable; TOML values).",
    ),
]


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``["ppo.ent_coef=0.05", "train.envs=16"]`` -> nested overrides; errors name the item."""
    import tomllib

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()  # a bare word: take it as a string
        node = out
        parts = [p.strip() for p in key.split(".")]
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {p} is not a section")
        node[parts[-1]] = value
    return out
