"""Fast MLX matmuls on Linux CPUs: load an optimised BLAS before ``mlx`` is first imported.

The ``mlx[cpu]`` wheel links the reference netlib BLAS (about 8 GFLOP/s for a 1024x1024
float32 matmul on a 2-core x86-64 box; 230-250 GFLOP/s with OpenBLAS on one thread). MLX
calls ``cblas_sgemm`` through the dynamic linker, and libraries opened with ``RTLD_GLOBAL``
sit in the global lookup scope, which the linker searches before MLX's own (local)
dependencies. So an OpenBLAS opened that way before
``import mlx.core`` serves every MLX matmul (about 30x faster here). Once ``mlx.core`` has
been imported its symbols are bound (Python opens extensions with ``RTLD_NOW``) and loading a
BLAS no longer helps; :func:`blas_status` says so and a RuntimeWarning tells how to fix it.

The global scope has a cost: any library loaded later that calls an unprefixed BLAS or
OpenBLAS-internal name binds it to this library. numpy's bundled OpenBLAS exports such
internals (``blas_thread_init``, ``blas_memory_alloc``, ...), so numpy is imported here
first, binding it to its own copy. Another OpenBLAS-based extension imported after
``polyrl.rl`` (scipy, say) would be exposed the same way: import it first.

Where the library comes from, first found wins:

1. ``POLYRL_BLAS=/path/to/libblas.so`` (``POLYRL_BLAS=off`` disables all of this);
2. PyPI's ``cmeel-openblas`` (``cmeel.prefix/lib/libopenblas.so.0`` in site-packages);
3. the system's ``libopenblas.so.0`` (e.g. Debian's ``libopenblas0-pthread``).

``cmeel-openblas`` needs the GNU Fortran runtime ``libgfortran.so.5``, which a bare Linux
install may lack. When the system has none, the copy that ``mlx[cpu]`` (or numpy) already
bundles is used: those copies carry a hashed SONAME (``libgfortran-<hash>.so.5.0.0``) that
cannot satisfy OpenBLAS's ``NEEDED libgfortran.so.5``, so an in-memory copy (``memfd``, no
file is written) whose ``DT_SONAME`` points at the library's own ``libgfortran.so.5`` version
string is opened instead. Installing the system package (``apt-get install libgfortran5``)
makes this step unnecessary.

Thread count. OpenBLAS is pinned to ``POLYRL_BLAS_THREADS`` threads (default 1), set through
``OPENBLAS_NUM_THREADS`` only while the library initialises (so numpy's own OpenBLAS is not
affected) and again through ``openblas_set_num_threads``. One thread because: PPO's matmuls
are small (at most a few thousand rows by 128), where thread hand-off costs more than it
saves on 2 shared cores; the environment and Python run beside it; and a fixed count keeps
results independent of the machine's core count (bit-identical runs need that).

Nothing here ever raises: when no library can be loaded MLX keeps its bundled BLAS, correct
but slow, and :func:`blas_status` says what happened. On macOS MLX uses Accelerate and Metal
and this module does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import importlib.metadata
import os
import shutil
import struct
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from polyrl.envvars import environ_set

ENV_LIBRARY = "POLYRL_BLAS"
"""Environment variable: path of a BLAS library to load, or ``off`` to load none."""
ENV_THREADS = "POLYRL_BLAS_THREADS"
"""Environment variable: OpenBLAS thread count (default :data:`DEFAULT_THREADS`)."""
DEFAULT_THREADS = 1

_GFORTRAN = "libgfortran.so.5"


@dataclass(frozen=True, slots=True)
class BlasStatus:
    """What :mod:`polyrl.rl.mlx_setup` did and found at import."""

    loaded: bool
    """True when an optimised BLAS is in the global symbol scope ahead of MLX's bundled one."""
    source: str
    """``env``, ``cmeel-openblas``, ``system``, or why none: ``off``, ``not-linux``,
    ``too-late`` (mlx was imported first), ``not-found``, ``failed``."""
    path: str | None
    """File the BLAS was loaded from (``None`` when nothing was loaded)."""
    threads: int | None
    """OpenBLAS thread count after loading, as the library reports it."""
    detail: str
    """One human-readable line: library config, fallbacks taken, or the error met."""
    cpu_compiler: str | None = None
    """Path of ``g++``, which MLX's CPU backend runs to build the fused kernels of
    ``mx.compile`` (cached under ``$TMPDIR/mlx/``). ``None`` on Linux means none was found:
    MLX then runs compiled functions unfused, correct but several times slower."""


def blas_status() -> BlasStatus:
    """What BLAS MLX uses in this process (decided once, when this module was imported)."""
    return _STATUS


def _wanted_threads() -> int:
    raw = os.environ.get(ENV_THREADS, "")
    try:
        n = int(raw) if raw else DEFAULT_THREADS
    except ValueError:
        n = DEFAULT_THREADS
    return max(1, n)


def _dist_files(dist_name: str) -> list[Path]:
    """Absolute paths of the files an installed distribution recorded (empty if absent)."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return []
    return [Path(str(dist.locate_file(f))) for f in (dist.files or [])]


def _site_dirs() -> list[Path]:
    return [Path(p) for p in sys.path if p and Path(p).is_dir()]


def _cmeel_openblas() -> Path | None:
    """``cmeel.prefix/lib/libopenblas.so.0`` of the installed ``cmeel-openblas``, if any."""
    for f in _dist_files("cmeel-openblas"):
        if f.name == "libopenblas.so.0" and f.exists():
            return f
    # Metadata can be missing (e.g. an unpacked wheel on sys.path): look where pip puts it.
    for d in _site_dirs():
        f = d / "cmeel.prefix" / "lib" / "libopenblas.so.0"
        if f.exists():
            return f
    return None


def _bundled_gfortran() -> list[Path]:
    """GNU Fortran runtimes that wheels bundle under hashed names (mlx-cpu, numpy, scipy)."""
    found: list[Path] = []
    for dist in ("mlx-cpu", "numpy", "scipy"):
        found += [
            f
            for f in _dist_files(dist)
            if f.name.startswith("libgfortran") and ".so.5" in f.name and f.exists()
        ]
    return found


def _relabel_soname(data: bytes, soname: str) -> bytes | None:
    """A copy of ELF shared object ``data`` whose ``DT_SONAME`` reads ``soname``.

    Only re-points the SONAME entry at a string already in ``.dynstr`` (GNU libraries name
    their base version after their real SONAME), so no section moves. ``None`` when ``data``
    is not a little-endian ELF64 object holding that string.
    """
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    buf = bytearray(data)
    shoff = struct.unpack_from("<Q", buf, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", buf, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", buf, shoff + i * shentsize) for i in range(shnum)]
    dynamic = [s for s in sections if s[1] == 6]  # SHT_DYNAMIC
    if len(dynamic) != 1:
        return None
    _, _, _, _, dyn_off, dyn_size, link, _, _, _ = dynamic[0]
    str_off, str_size = sections[link][4], sections[link][5]
    strtab = bytes(buf[str_off : str_off + str_size])
    at = strtab.find(b"\0" + soname.encode() + b"\0")
    if at < 0:
        return None
    for k in range(dyn_size // 16):
        tag = struct.unpack_from("<q", buf, dyn_off + 16 * k)[0]
        if tag == 14:  # DT_SONAME
            struct.pack_into("<Q", buf, dyn_off + 16 * k + 8, at + 1)
            return bytes(buf)
    return None


def _open_global(path: str) -> ctypes.CDLL:
    return ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)


_KEEP: list[object] = []  # handles and memfds that must outlive this module's functions


def _provide_gfortran() -> str:
    """Load a library with SONAME ``libgfortran.so.5`` (locally: it only has to satisfy
    OpenBLAS's NEEDED entry, which the loader matches by SONAME); say which."""
    for lib in _bundled_gfortran():
        patched = _relabel_soname(lib.read_bytes(), _GFORTRAN)
        if patched is None:
            continue
        # Its own hashed dependencies (libquadmath-<hash>) live beside it; open them by path
        # first so the loader finds them by their SONAME.
        for dep in sorted(lib.parent.glob("libquadmath*.so*")):
            with contextlib.suppress(OSError):
                _KEEP.append(ctypes.CDLL(str(dep)))
        fd = os.memfd_create(_GFORTRAN) if hasattr(os, "memfd_create") else -1
        if fd < 0:
            continue
        os.write(fd, patched)
        try:
            _KEEP.append(ctypes.CDLL(f"/proc/self/fd/{fd}"))
        except OSError:
            os.close(fd)
            continue
        _KEEP.append(fd)
        return f"{_GFORTRAN} from {lib.name} (relabelled in memory)"
    raise OSError(f"no {_GFORTRAN} on the system and none bundled by mlx-cpu/numpy/scipy")


def _load(path: str, threads: int) -> tuple[ctypes.CDLL, str]:
    """Open ``path`` globally with its thread count pinned; fix a missing libgfortran once."""
    note = ""
    with environ_set({"OPENBLAS_NUM_THREADS": str(threads), "GOTO_NUM_THREADS": str(threads)}):
        try:
            lib = _open_global(path)
        except OSError as e:
            if _GFORTRAN not in str(e):
                raise
            note = _provide_gfortran()
            lib = _open_global(path)
    return lib, note


def _describe(lib: ctypes.CDLL, threads: int) -> tuple[int | None, str]:
    """Pin and read back the thread count; the library's own config line."""
    got: int | None = None
    config = ""
    if hasattr(lib, "openblas_set_num_threads"):
        lib.openblas_set_num_threads(ctypes.c_int(threads))
        lib.openblas_get_num_threads.restype = ctypes.c_int
        got = int(lib.openblas_get_num_threads())
    if hasattr(lib, "openblas_get_config"):
        lib.openblas_get_config.restype = ctypes.c_char_p
        config = (lib.openblas_get_config() or b"").decode(errors="replace").strip()
    return got, config


def _setup() -> BlasStatus:
    if sys.platform != "linux":
        return BlasStatus(False, "not-linux", None, None, f"{sys.platform}: MLX uses its own")
    choice = os.environ.get(ENV_LIBRARY, "").strip()
    if choice.lower() in ("off", "0", "none", "false"):
        return BlasStatus(False, "off", None, None, f"{ENV_LIBRARY}={choice}")
    if "mlx.core" in sys.modules:
        return BlasStatus(
            False, "too-late", None, None, "mlx.core was imported before polyrl.rl.mlx_setup"
        )
    # numpy's bundled OpenBLAS exports unprefixed internals (blas_thread_init,
    # blas_memory_alloc, ...) with the same names as the library loaded here. Whatever is
    # loaded after a global OpenBLAS binds those names to it, so numpy would run half on its
    # own OpenBLAS and half on this one (seen: 0.6 s stalls in a 128x128 QR). Importing numpy
    # first binds its symbols to itself (extensions load with RTLD_NOW).
    import numpy  # noqa: F401

    threads = _wanted_threads()
    candidates: list[tuple[str, str]] = []
    if choice:
        candidates.append(("env", choice))
    cmeel = _cmeel_openblas()
    if cmeel is not None:
        candidates.append(("cmeel-openblas", str(cmeel)))
    system = ctypes.util.find_library("openblas")
    if system:
        candidates.append(("system", system))
    if not candidates:
        return BlasStatus(
            False, "not-found", None, None, "no cmeel-openblas and no system libopenblas"
        )
    errors: list[str] = []
    for source, path in candidates:
        try:
            lib, note = _load(path, threads)
        except OSError as e:
            errors.append(f"{source} {path}: {e}")
            continue
        _KEEP.append(lib)
        got, config = _describe(lib, threads)
        detail = "; ".join(x for x in (config, note, *errors) if x)
        return BlasStatus(True, source, path, got, detail)
    return BlasStatus(False, "failed", None, None, "; ".join(errors))


def _with_compiler(status: BlasStatus) -> BlasStatus:
    if sys.platform != "linux":
        return status
    return dataclasses.replace(status, cpu_compiler=shutil.which("g++"))


_STATUS = _with_compiler(_setup())
if _STATUS.source == "too-late":
    # Silent 30-40x slower matmuls are worse than a warning: say how to fix it.
    warnings.warn(
        "mlx was imported before polyrl.rl, so MLX keeps its bundled reference BLAS (slow "
        "matmuls on Linux); import polyrl.rl (or any polyrl.rl module) before mlx",
        RuntimeWarning,
        stacklevel=2,
    )
