"""The BLAS loader: status, fallbacks, the SONAME relabel, and that matmuls stay correct."""

from __future__ import annotations

import importlib.metadata
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from polyrl.rl import mlx_setup

LINUX = sys.platform == "linux"


def _has(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, check=True
    )


def _status_in_subprocess(code: str, **env: str) -> dict:
    """Run ``code`` (which must print json of blas_status) in a fresh interpreter."""
    return json.loads(_run(code, **env).stdout.strip().splitlines()[-1])


_PRINT_STATUS = (
    "import dataclasses, json; import polyrl.rl as r; "
    "print(json.dumps(dataclasses.asdict(r.blas_status())))"
)


@pytest.mark.skipif(not (LINUX and _has("cmeel-openblas")), reason="needs cmeel-openblas")
def test_openblas_loaded_with_pinned_threads() -> None:
    status = mlx_setup.blas_status()
    assert status.loaded, status.detail
    assert status.source in ("cmeel-openblas", "system", "env")
    assert status.threads == mlx_setup.DEFAULT_THREADS
    assert Path(status.path or "").name.startswith("libopenblas")
    assert status.cpu_compiler is None or Path(status.cpu_compiler).name == "g++"


def test_matmul_is_correct_whatever_blas() -> None:
    import mlx.core as mx

    rng = np.random.default_rng(0)
    a = rng.standard_normal((257, 130)).astype(np.float32)
    b = rng.standard_normal((130, 65)).astype(np.float32)
    got = np.array(mx.array(a) @ mx.array(b))
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not LINUX, reason="Linux only")
def test_off_switch_and_bad_path_fall_back_without_failing() -> None:
    off = _status_in_subprocess(_PRINT_STATUS, POLYRL_BLAS="off")
    assert off["loaded"] is False and off["source"] == "off"
    bad = _status_in_subprocess(_PRINT_STATUS, POLYRL_BLAS="/nonexistent/libblas.so")
    assert "/nonexistent/libblas.so" in bad["detail"]  # the failure is reported...
    if _has("cmeel-openblas"):
        assert bad["loaded"] is True and bad["source"] == "cmeel-openblas"  # ...and skipped


@pytest.mark.skipif(not LINUX, reason="Linux only")
def test_too_late_when_mlx_was_imported_first_warns() -> None:
    out = _run("import mlx.core; " + _PRINT_STATUS)
    status = json.loads(out.stdout.strip().splitlines()[-1])
    assert status["loaded"] is False and status["source"] == "too-late"
    assert "RuntimeWarning" in out.stderr and "import polyrl.rl" in out.stderr
    quiet = _run(_PRINT_STATUS)
    assert "RuntimeWarning" not in quiet.stderr


@pytest.mark.skipif(not LINUX, reason="Linux only")
def test_thread_count_is_configurable() -> None:
    if not _has("cmeel-openblas"):
        pytest.skip("needs cmeel-openblas")
    status = _status_in_subprocess(_PRINT_STATUS, POLYRL_BLAS_THREADS="2")
    assert status["threads"] == 2


def _soname(data: bytes) -> bytes:
    """DT_SONAME string of an ELF64 little-endian shared object (test-side parser)."""
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    secs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    dyn = next(s for s in secs if s[1] == 6)
    strtab = secs[dyn[6]]
    for k in range(dyn[5] // 16):
        tag, val = struct.unpack_from("<qQ", data, dyn[4] + 16 * k)
        if tag == 14:
            start = strtab[4] + val
            return data[start : data.index(b"\0", start)]
    raise AssertionError("no DT_SONAME")


def test_relabel_soname_on_a_bundled_gfortran() -> None:
    libs = mlx_setup._bundled_gfortran()
    if not libs:
        pytest.skip("no wheel-bundled libgfortran here")
    data = libs[0].read_bytes()
    assert _soname(data) != b"libgfortran.so.5"
    patched = mlx_setup._relabel_soname(data, "libgfortran.so.5")
    assert patched is not None and len(patched) == len(data)
    assert _soname(patched) == b"libgfortran.so.5"
    # Only the 8-byte DT_SONAME value may differ.
    diff = [i for i in range(len(data)) if data[i] != patched[i]]
    assert 0 < len(diff) <= 8 and diff[-1] - diff[0] < 8


def test_relabel_soname_refuses_non_elf_and_missing_string() -> None:
    assert mlx_setup._relabel_soname(b"not an elf file at all" * 10, "libx.so") is None
    libs = mlx_setup._bundled_gfortran()
    if libs:
        data = libs[0].read_bytes()
        assert mlx_setup._relabel_soname(data, "libnothere.so.9") is None


@pytest.mark.skipif(not LINUX, reason="Linux only")
def test_numpy_is_bound_before_the_global_blas_and_still_correct() -> None:
    # numpy's OpenBLAS shares internal symbol names with the global one; mlx_setup imports
    # numpy first so numpy binds to its own copy. Check the import happens and numpy's LAPACK
    # and BLAS still give right answers next to the global library.
    code = (
        "import sys; assert 'numpy' not in sys.modules; import polyrl.rl; "
        "assert 'numpy' in sys.modules; import numpy as np; "
        "rng = np.random.default_rng(0); a = rng.standard_normal((300, 200)); "
        "q, r = np.linalg.qr(a); assert np.allclose(q @ r, a); "
        "m = rng.standard_normal((200, 200)) + 200 * np.eye(200); b = rng.standard_normal(200); "
        "assert np.allclose(m @ np.linalg.solve(m, b), b); print('ok')"
    )
    assert _run(code).stdout.strip().endswith("ok")
