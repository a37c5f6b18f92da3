"""The batch commands (``polyrl import ...``, ``polyrl bench import``) let polars' allocator
keep freed memory; the others (record, live, train, ...) leave it returning memory, and a
value the user set is never replaced. Each case is a fresh interpreter running the real
command line entry point on real argv (an import of a small archive day); it reports the
allocator setting the command ran under, and whether polars was loaded before the CLI
decided (a setting made after polars is loaded would do nothing). polars itself prepends its
defaults when it loads and jemalloc takes the last value of each key, so the effective
setting is read that way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from polyrl.cli import RETAIN_ENV, RETAIN_MEMORY
from polyrl.testing.binance_archive import synthetic_day

pytestmark = pytest.mark.integration

_PROBE = (
    "import os, sys\n"
    "from polyrl.cli import run\n"
    "early = 'polars' in sys.modules\n"
    "code = run(sys.argv[1:])\n"
    "print(f'probe early={early} env={os.environ.get(\"_RJEM_MALLOC_CONF\")}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _effective(probe: str) -> dict[str, str]:
    """``probe early=False env=a:1,b:2,a:3`` -> ``{"early": "False", "a": "3", "b": "2"}``."""
    early, env = probe.removeprefix("probe early=").split(" env=")
    out = {"early": early}
    if env != "None":
        out.update(kv.split(":", 1) for kv in env.split(","))
    return out


RETAINED = {"dirty_decay_ms": "-1", "muzzy_decay_ms": "-1"}


def _run(args: list[str], cwd: Path, user: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != RETAIN_ENV}
    if user is not None:
        env[RETAIN_ENV] = user
    p = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    probe = [ln for ln in p.stderr.splitlines() if ln.startswith("probe ")]
    assert probe, p.stderr
    assert p.returncode == 0, (args, p.stderr)
    return _effective(probe[-1])


def test_import_retains_memory_and_other_commands_do_not(tmp_path: Path) -> None:
    arch = tmp_path / "archive"
    synthetic_day(arch, "2026-05-01", assets=("btc",), spot_trades=50, futures_trades=50)
    imp = ["import", "binance", "--from", "2026-05-01", "--to", "2026-05-01", "--assets", "btc",
           "--archive", str(arch), "--out", str(tmp_path / "rec")]  # fmt: skip
    got = _run(imp, tmp_path)
    assert (tmp_path / "rec" / ".import" / "binance").is_dir()  # it did import
    assert got == {"early": "False", **RETAINED}
    assert RETAIN_MEMORY == "dirty_decay_ms:-1,muzzy_decay_ms:-1"

    assert _run(["bench", "import", "--help"], tmp_path) == {"early": "False", **RETAINED}
    for other in (["record", "--help"], ["live", "--help"], ["train", "--help"],
                  ["bench", "record", "--help"], ["--version"]):  # fmt: skip
        got = _run(other, tmp_path)
        assert got["early"] == "False", other
        assert got.get("dirty_decay_ms") != "-1" and got.get("muzzy_decay_ms") != "-1", other


def test_a_user_setting_is_kept(tmp_path: Path) -> None:
    got = _run(["import", "binance", "--help"], tmp_path, user="narenas:1")
    assert got["narenas"] == "1"
    assert got.get("dirty_decay_ms") != "-1"
