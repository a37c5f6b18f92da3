"""The optimizer of :mod:`polyrl.rl.ppo`: Adam with per-network gradient clipping over the
stacked actor-critic parameters ``theta`` [2, P] (row 0 the actor, row 1 the critic), and
the names its state has in a checkpoint.

The update is PyTorch's (CleanRL's, SB3's) bias-corrected Adam after a global-norm clip of
each network's gradient, with each network's own learning rate. It works on whole [2, P]
arrays, so clipping and both updates are a handful of MLX primitives; the bias corrections
are computed on the host (see :func:`adam_corrections`).
"""

from __future__ import annotations

import math

# Importing this module runs polyrl/rl/__init__.py first, which loads the BLAS (mlx_setup)
# before the first `import mlx`.
import mlx.core as mx
import numpy as np

from polyrl.rl.network import Layout

ADAM_BETAS = (0.9, 0.999)


def adam_corrections(step: int) -> tuple[float, float]:
    """Bias corrections ``1 / (1 - beta1^t)`` and ``1 / sqrt(1 - beta2^t)`` for step t >= 1.

    Computed on the host (float64) and passed in as scalars: a scalar expression inside the
    compiled step would be fused into the per-element Adam kernel and recomputed (``pow``)
    for every parameter.
    """
    b1, b2 = ADAM_BETAS
    return 1.0 / (1.0 - b1**step), 1.0 / math.sqrt(1.0 - b2**step)


def adam_update(
    theta: mx.array,
    m: mx.array,
    v: mx.array,
    grad: mx.array,
    *,
    lr: mx.array,
    c1: mx.array,
    c2: mx.array,
    max_grad_norm: float,
    eps: float,
) -> tuple[mx.array, mx.array, mx.array]:
    """One bias-corrected Adam step (PyTorch/CleanRL/SB3's) on [2, P] arrays (row 0 the
    actor, row 1 the critic), after clipping each row's gradient to global norm
    ``max_grad_norm``.

    ``lr`` [2, 1] is each network's learning rate, ``c1``/``c2`` the scalar bias corrections
    of this step. Clipping follows ``mlx.optimizers.clip_grad_norm``:
    scale = min(max_norm / (norm + 1e-6), 1).
    """
    norm = mx.sqrt((grad * grad).sum(axis=1, keepdims=True))  # [2, 1]
    # The primitive after the [2, 1] scale keeps its few operations out of the per-element
    # kernel below (fused there, they would run once per parameter).
    scale = mx.contiguous(mx.minimum(max_grad_norm / (norm + 1e-6), 1.0))
    g = grad * scale
    b1, b2 = ADAM_BETAS
    m = b1 * m + (1.0 - b1) * g
    v = b2 * v + (1.0 - b2) * (g * g)
    theta = theta - (lr * c1) * m / (mx.sqrt(v) * c2 + eps)
    return theta, m, v


# ---------------------------------------------------------------------------------------------
# Checkpoint names


def optimizer_tensors(
    layout: Layout,
    m: np.ndarray,
    v: np.ndarray,
    *,
    step: int,
    lrs: tuple[float, float],
) -> dict[str, np.ndarray]:
    """Adam's state as the tensors of two separate optimizers (checkpoint format 1's names).

    ``opt_<net>.layers.<i>.<weight|bias>.<m|v>`` (the moments, shaped like the weights of
    :meth:`Layout.named`), ``opt_<net>.step`` (uint64) and ``opt_<net>.learning_rate``
    (float32), net ``actor`` or ``critic``; ``m``, ``v`` [2, P].
    """
    out: dict[str, np.ndarray] = {}
    for moment, theta in (("m", m), ("v", v)):
        named = layout.named(theta)
        for k, val in named.items():
            net, rest = k.split(".", 1)
            out[f"opt_{net}.{rest}.{moment}"] = val
    for net, lr in zip(("actor", "critic"), lrs, strict=True):
        out[f"opt_{net}.step"] = np.array(step, dtype=np.uint64)
        out[f"opt_{net}.learning_rate"] = np.array(lr, dtype=np.float32)
    return out


def load_optimizer_tensors(
    layout: Layout, given: dict[str, np.ndarray], names: list[str]
) -> tuple[np.ndarray, np.ndarray, int, tuple[float, float]]:
    """Inverse of :func:`optimizer_tensors`: (m [2, P], v [2, P], step, (lr actor, lr
    critic)) from the tensors ``given`` under ``names`` (already checked to be present and
    shaped). Raises ValueError when the two networks' steps differ."""
    moments = {}
    for moment in ("m", "v"):
        named = {}
        for net in ("actor", "critic"):
            prefix, suffix = f"opt_{net}.", f".{moment}"
            for k in names:
                if k.startswith(prefix) and k.endswith(suffix):
                    named[f"{net}.{k[len(prefix) : -len(suffix)]}"] = given[k]
        moments[moment] = layout.flatten(named, moments=True)
    steps = {int(np.asarray(given[f"opt_{net}.step"])) for net in ("actor", "critic")}
    if len(steps) != 1:
        raise ValueError(f"actor and critic optimizers are at different steps {sorted(steps)}")
    lr_a, lr_c = (float(np.asarray(given[f"opt_{n}.learning_rate"])) for n in ("actor", "critic"))
    return moments["m"], moments["v"], steps.pop(), (lr_a, lr_c)
