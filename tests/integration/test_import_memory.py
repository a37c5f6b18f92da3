"""The batch commands (``polyrl import ...``, ``polyrl bench import``) let polars' allocator
keep freed memory; the others (record, live, train, ...) leave it returning memory, and a
value the user set is never replaced. Each case is a fresh interpreter running the real
command line entry point on real argv (an import of a small archive day); it reports the
allocator setting the command ran under, and whether polars was loaded before the CLI
decided (a setting made after polars is loaded would do nothing), and whether a freed
64 MB block went back to the system at once (glibc's malloc) or was kept. polars itself prepends its
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

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, glibc"),
]

_PROBE = (
    "import os, sys\n"
    "import numpy as np\n"
    "from polyrl.cli import run\n"
    "early = 'polars' in sys.modules\n"
    "code = run(sys.argv[1:])\n"
    "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGESIZE')\n"
    "a = np.ones(64 << 20, dtype=np.uint8)\n"  # 64 MB touched, then freed
    "r = rss()\n"
    "del a\n"
    "back = (r - rss()) >> 20\n"
    "env = os.environ.get('_RJEM_MALLOC_CONF')\n"
    "print(f'probe early={early} back={back} env={env}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _effective(probe: str) -> dict[str, str]:
    """``probe early=False back=0 env=a:1,b:2,a:3`` -> ``{"early": "False", "back": "0",
    "a": "3", "b": "2"}`` (``back``: MB of a freed 64 MB block glibc gave back at once)."""
    head, env = probe.removeprefix("probe ").split(" env=")
    out = dict(kv.split("=", 1) for kv in head.split())
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
    assert got == {"early": "False", "back": "0", **RETAINED}
    assert RETAIN_MEMORY == "dirty_decay_ms:-1,muzzy_decay_ms:-1"

    got = _run(["bench", "import", "--help"], tmp_path)
    assert got == {"early": "False", "back": "0", **RETAINED}
    for other in (["record", "--help"], ["live", "--help"], ["train", "--help"],
                  ["bench", "record", "--help"], ["--version"]):  # fmt: skip
        got = _run(other, tmp_path)
        assert got["early"] == "False", other
        assert int(got["back"]) >= 60, other  # the freed block went back to the system
        assert got.get("dirty_decay_ms") != "-1" and got.get("muzzy_decay_ms") != "-1", other


def test_a_user_setting_is_kept(tmp_path: Path) -> None:
    got = _run(["import", "binance", "--help"], tmp_path, user="narenas:1")
    assert got["narenas"] == "1"
    assert got.get("dirty_decay_ms") != "-1"
