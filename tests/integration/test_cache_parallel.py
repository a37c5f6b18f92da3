"""Day caches built by worker processes are byte for byte those of a sequential build; two
builders of the same day never corrupt its entry; bad options are refused in one line."""

from __future__ import annotations

import hashlib
import multiprocessing
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from polyrl.errors import ConfigError
from polyrl.features.cache import CACHE_DIR, recording_days
from polyrl.features.parallel import build_days, check_options
from polyrl.replay import load_days, load_days_latencies, replay_spec
from polyrl.sections import Config

pytestmark = pytest.mark.integration


def entry_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file of every feature-cache entry under ``root`` (path -> digest)."""
    base = root / CACHE_DIR / "features"
    out = {}
    for f in sorted(base.rglob("*")):
        if f.is_file():
            out[str(f.relative_to(base))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def fresh(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".cache"))
    return dst


def test_two_workers_write_the_sequential_bytes(three_day_recording: Path, tmp_path: Path) -> None:
    cfg = Config()
    seq = fresh(three_day_recording, tmp_path / "seq")
    par = fresh(three_day_recording, tmp_path / "par")
    a = load_days(seq, "*", cfg)
    seen: list[tuple[str, int, int]] = []
    b = load_days(par, "*", cfg, workers=2, days_progress=lambda d, k, n: seen.append((d, k, n)))
    want = entry_hashes(seq)
    assert len({k.split("/")[0] for k in want}) == 3 and any(k.endswith(".npy") for k in want)
    assert entry_hashes(par) == want
    assert [c.key for c in a] == [c.key for c in b]
    # One line per day, counting days done across the workers.
    assert sorted(d for d, _, _ in seen) == recording_days(par, "*")
    assert [(k, n) for _, k, n in seen] == [(1, 3), (2, 3), (3, 3)]
    # Built once: a second call finds every day and builds nothing.
    assert build_days(par, recording_days(par, "*"), replay_spec(cfg), workers=2) == []


def test_latency_sidecars_built_in_parallel_are_identical(
    three_day_recording: Path, tmp_path: Path
) -> None:
    cfg = Config()
    seq = fresh(three_day_recording, tmp_path / "seq")
    par = fresh(three_day_recording, tmp_path / "par")
    a = load_days_latencies(seq, "2024-06-0[12]", cfg, [0, 250])
    b = load_days_latencies(par, "2024-06-0[12]", cfg, [0, 250], workers=2)
    assert entry_hashes(par) == entry_hashes(seq)
    assert any("fills-250000000" in k for k in entry_hashes(par))
    assert [c.key for c in a[250]] == [c.key for c in b[250]]


def _race(root: str, day: str, go, built) -> None:  # type: ignore[no-untyped-def]
    spec = replay_spec(Config())
    go.wait()  # both past the imports: they race from here
    built.put(build_days(Path(root), [day], spec))


def test_two_builders_of_one_day_leave_one_sound_entry(
    three_day_recording: Path, tmp_path: Path
) -> None:
    ref = fresh(three_day_recording, tmp_path / "ref")
    load_days(ref, "2024-06-01", Config())
    root = fresh(three_day_recording, tmp_path / "race")
    ctx = multiprocessing.get_context("spawn")
    go, built = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(root), "2024-06-01", go, built)) for _ in range(2)]
    for p in procs:
        p.start()
    got = sorted(built.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    # One built the day; the other waited on the day's lock and found it built.
    assert got == [[], ["2024-06-01"]]
    assert entry_hashes(root) == entry_hashes(ref)
    leftovers = [p.name for p in (root / CACHE_DIR).rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_day_without_recording_is_refused_before_any_worker(
    three_day_recording: Path, tmp_path: Path
) -> None:
    from polyrl.errors import RecordingError

    root = fresh(three_day_recording, tmp_path / "rec")
    with pytest.raises(RecordingError, match="no recording for 2024-06-09"):
        build_days(root, ["2024-06-01", "2024-06-09"], replay_spec(Config()), workers=2)


@pytest.mark.parametrize(
    ("workers", "ray", "match"),
    [
        (0, None, "--workers: 0 is not a whole number >= 1"),
        (-2, None, "--workers: -2"),
        (1, "not an address", "--ray: 'not an address' is not `local`"),
        (1, "http://h:1", "--ray: 'http://h:1'"),
    ],
)
def test_bad_options_are_refused(workers: int, ray: str | None, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_options(workers, ray)


def test_good_addresses_pass() -> None:
    for a in (None, "local", "auto", "10.0.0.5:6379", "ray://head:10001"):
        check_options(2, a)


@pytest.mark.slow
def test_ray_tasks_write_the_sequential_bytes(three_day_recording: Path, tmp_path: Path) -> None:
    """One local Ray (2 CPUs), started and shut down by the build."""
    ray = pytest.importorskip("ray")
    cfg = Config()
    seq = fresh(three_day_recording, tmp_path / "seq")
    par = fresh(three_day_recording, tmp_path / "ray")
    load_days(seq, "*", cfg)
    seen: list[tuple[int, int]] = []
    b = load_days(par, "*", cfg, workers=2, ray_address="local",
                  days_progress=lambda d, k, n: seen.append((k, n)))  # fmt: skip
    assert entry_hashes(par) == entry_hashes(seq)
    assert seen == [(1, 3), (2, 3), (3, 3)] and len(b) == 3
    assert not ray.is_initialized()  # the Ray it started is shut down


def test_ray_errors_are_one_line(three_day_recording: Path, tmp_path: Path) -> None:
    spec = replay_spec(Config())
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError, match=rf"--ray 127.0.0.1:{port}: no Ray cluster answers"):
        build_days(three_day_recording, ["2024-06-01"], spec, ray_address=f"127.0.0.1:{port}")
    # Without the ray package: the message names the extra that brings it.
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from polyrl.features.parallel import import_ray\n"
        "try:\n    import_ray()\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        "ConfigError --ray: the ray package is not installed (pip install 'polyrl[ray]')"
    )
