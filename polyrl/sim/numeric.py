"""Numerical and text helpers of the simulator (pure, vectorised where it matters).

* :func:`rng` gives an independent, reproducible generator per purpose: every random draw
  of the simulator comes from a generator keyed by ``(seed, tag, ...)``, never from a shared
  stream, so one part of the output never shifts when another part changes.
* :func:`ar1` runs the linear recurrence ``x[t] = a * x[t-1] + u[t]`` over the last axis
  without a Python loop per step (blocked prefix sums, exact to ~1e-10 relative).
* :func:`fixed` and friends turn integer fixed-point values into the decimal strings the
  venues send (``"61828.02000000"``, ``"0.301"``), exactly, with no float rounding.
"""

from __future__ import annotations

import math

import numpy as np

# Tags that key the generators (never reuse one for another purpose).
TAG_SKELETON = 1
TAG_COUNTS = 2
TAG_TRADES = 3
TAG_QUOTES = 4
TAG_FUTURES = 5
TAG_LIQUIDATIONS = 6
TAG_OPEN_INTEREST = 7
TAG_KLINES = 8
TAG_REFERENCE = 9
TAG_MARKET = 10
TAG_RESOLUTION = 11
TAG_FAULTS = 12
TAG_DEPTH = 13


def rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator determined by ``seed`` and the integer ``keys`` (all >= 0).

    The key count is appended because SeedSequence ignores trailing zero words: without it
    ``(seed, 3, 0)`` and ``(seed, 3)`` would give the same stream.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, *keys, 1 + len(keys)]))


def ar1(u: np.ndarray, a: float, x0: np.ndarray | float = 0.0) -> np.ndarray:
    """``x[..., t] = a * x[..., t-1] + u[..., t]`` with ``x[..., -1] = x0``; returns ``x``.

    ``u`` is ``[rows, n]`` (or ``[n]``), ``0 <= a < 1``. Works in blocks of length ``B`` with
    ``a**-B <= 1e6`` so the prefix-sum form stays accurate; for ``a`` so small that blocks
    would be tiny it sums the (truncated, < 1e-12) impulse response directly.
    """
    u = np.asarray(u, dtype=np.float64)
    flat = u.ndim == 1
    u2 = u[None, :] if flat else u
    rows, n = u2.shape
    x = np.broadcast_to(np.asarray(x0, dtype=np.float64), (rows,)).copy()
    out = np.empty_like(u2)
    if n == 0:
        return out[0] if flat else out
    if a <= 0.0:
        out[:] = u2
        return out[0] if flat else out
    lna = math.log(a)
    block = int(13.8 / -lna)
    if block < 32:
        k = max(1, int(math.ceil(-27.7 / lna)))  # a**k < 1e-12
        out[:] = u2
        for j in range(1, min(k, n)):
            out[:, j:] += (a**j) * u2[:, :-j]
        out += x[:, None] * (a ** np.arange(1, n + 1))[None, :]
        return out[0] if flat else out
    block = min(block, n)
    pw = a ** np.arange(block, dtype=np.float64)
    ipw = 1.0 / pw
    for s in range(0, n, block):
        b = min(block, n - s)
        c = np.cumsum(u2[:, s : s + b] * ipw[:b], axis=1)
        y = pw[:b] * (c + a * x[:, None])
        out[:, s : s + b] = y
        x = y[:, -1]
    return out[0] if flat else out


def ou(noise: np.ndarray, tau_steps: float, sd: float, x0: np.ndarray | float = 0.0) -> np.ndarray:
    """A stationary Ornstein-Uhlenbeck path on a grid from standard normal ``noise``.

    ``tau_steps`` is the mean-reversion time in grid steps, ``sd`` the stationary sd.
    """
    a = math.exp(-1.0 / tau_steps)
    return ar1(noise * (sd * math.sqrt(1.0 - a * a)), a, x0)


_ERF = np.frompyfunc(math.erf, 1, 1)


def norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF, elementwise (math.erf, so it is exact and platform-stable); a 0-d
    input gives a 0-d array (the object ufunc returns a bare float for it)."""
    erf = _ERF(np.asarray(x, dtype=np.float64) / math.sqrt(2.0))
    return 0.5 * (1.0 + np.asarray(erf, dtype=np.float64))


def logistic(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))``, elementwise, clipped against overflow."""
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50.0, 50.0)))


def fixed(value: int, decimals: int) -> str:
    """A non-negative integer in units of ``10**-decimals`` -> its decimal text, all digits.

    ``fixed(6182802000000, 8) == "61828.02000000"``; ``fixed(6, 3) == "0.006"``.
    """
    if decimals == 0:
        return str(value)
    q, r = divmod(value, 10**decimals)
    return f"{q}.{r:0{decimals}d}"


def fixed_fmt(decimals: int) -> str:
    """The %-format of two integers (whole, fraction) giving ``fixed`` text."""
    return "%d" if decimals == 0 else f"%d.%0{decimals}d"


def split_fixed(values: np.ndarray, decimals: int) -> list[np.ndarray]:
    """The integer columns that ``fixed_fmt(decimals)`` formats: [whole, fraction] or [whole]."""
    v = np.asarray(values, dtype=np.int64)
    if decimals == 0:
        return [v]
    q, r = np.divmod(v, 10**decimals)
    return [q, r]


def trim_decimal(value: int, decimals: int) -> str:
    """Integer fixed-point -> shortest decimal text (``500, 3 -> "0.5"``, ``330000, 2 -> "3300"``).

    This is how Polymarket writes prices and sizes.
    """
    q, r = divmod(value, 10**decimals)
    if r == 0:
        return str(q)
    frac = f"{r:0{decimals}d}".rstrip("0")
    return f"{q}.{frac}"


def hex_strings(gen: np.random.Generator, count: int, nbytes: int = 20) -> list[str]:
    """``count`` random lowercase hex strings of ``nbytes`` bytes each."""
    text = gen.bytes(nbytes * count).hex()
    w = 2 * nbytes
    return [text[i : i + w] for i in range(0, w * count, w)]
