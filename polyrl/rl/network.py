"""The actor-critic network of :mod:`polyrl.rl.ppo`: one stacked MLP pair in MLX, its
parameter layout, the fast tanh it runs on, its initialisation, and the same forward in
numpy for small batches (:func:`forward_numpy`, :func:`greedy_numpy`).

Why it is shaped this way (one [2, P] parameter array, biases inside the matmuls, a
rational tanh) is the speed story told in :mod:`polyrl.rl.ppo` (and measured in the README's
Performance section); the numpy forward reads the same layout (:meth:`Layout.stacked`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

# Importing this module runs polyrl/rl/__init__.py first, which loads the BLAS (mlx_setup)
# before the first `import mlx`.
import mlx.core as mx
import mlx.nn as nn
import numpy as np

# ---------------------------------------------------------------------------------------------
# Actor-critic

# Coefficients of a [13/6] rational approximation of tanh on [-7.9, 7.9] (outside it tanh is
# +-1 to float32 precision): tanh(x) ~ x p(x^2) / q(x^2), p of degree 6 (P[0] the highest
# power) and q of degree 3. Max abs error against tanh is a few float32 ulp.
_TANH_CLAMP = 7.90531110763549805
_TANH_P = (
    -2.76076847742355e-16,
    2.00018790482477e-13,
    -8.60467152213735e-11,
    5.12229709037114e-08,
    1.48572235717979e-05,
    6.37261928875436e-04,
    4.89352455891786e-03,
)
_TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)


def _tanh_rational(x: mx.array) -> mx.array:
    """x p(x^2) / q(x^2), valid for |x| <= _TANH_CLAMP (it grows without bound outside).

    Estrin's scheme rather than Horner's: the graph is 8 operations deep, so ``mx.compile``
    fuses it into one kernel (MLX splits chains deeper than 11, and Horner's is 17).
    """
    p0, p1, p2, p3, p4, p5, p6 = _TANH_P
    q0, q1, q2, q3 = _TANH_Q
    y = x * x
    y2 = y * y
    y4 = y2 * y2
    p = (p5 * y + p6) + (p3 * y + p4) * y2 + ((p1 * y + p2) + p0 * y2) * y4
    q = (q2 * y + q3) + (q0 * y + q1) * y2
    return x * p / q


@mx.custom_function
def fast_tanh(x: mx.array) -> mx.array:
    """tanh from multiplies, adds, one divide and a final select, elementwise; any shape.

    MLX's own ``tanh`` kernel is the bottleneck of a small-MLP training step on x86-64 CPUs
    (about 70M elements/s); this form runs as two vectorised kernels (about 9x faster at
    [2, 4096, 128]) and agrees with tanh to a few float32 ulp. Beyond +-_TANH_CLAMP it is
    exactly +-1 (the bias unit of :class:`Layout` relies on that); NaN stays NaN.
    """
    # A primitive between the rational and the select keeps them in separate kernels: a
    # select inside the rational's kernel would stop g++ vectorising it (measured 2x slower
    # from minibatch 64 up). ``contiguous`` of a contiguous array copies nothing.
    r = mx.contiguous(_tanh_rational(x))
    return mx.where(mx.abs(x) > _TANH_CLAMP, mx.sign(x), r)


@fast_tanh.vjp
def _fast_tanh_vjp(primals: Any, cotangent: mx.array, output: mx.array) -> mx.array:
    # tanh' = 1 - tanh^2 from the saved output: a third of the work of differentiating the
    # rational function (halves an MLP's forward+backward time at batch 4096).
    return cotangent * (1.0 - output * output)


BIAS_UNIT_INPUT = 16.0
"""Pre-activation of the bias unit (see :class:`Layout`): past the tanh clamp, so the unit's
output is exactly 1 and its gradient exactly 0."""


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each tensor of the actor-critic sits in the parameter array ``theta`` [2, P].

    Row 0 of ``theta`` is the actor's parameters, row 1 the critic's, each the concatenation
    of ``w1`` [F + 1, H + 1], ``w2`` [H + 1, H], ``w3`` [H, A] and ``b3`` [1, A] (weights
    stored [in, out]: ``x @ w``); tensor i occupies columns ``[offset_i, offset_i + size_i)``.
    :meth:`unpack` stacks the two networks' tensors ([2, ...] views), so each layer runs as
    one batched matmul.

    The hidden biases ride inside the matmuls instead of being added: the observation gets a
    constant 1 as feature F (:func:`augment`), so row F of ``w1`` is the first layer's bias;
    and column H of ``w1`` is a *bias unit* (weights 0 but ``BIAS_UNIT_INPUT`` from that
    constant), whose tanh is exactly 1, so row H of ``w2`` is the second layer's bias. That
    spares a bias broadcast into each layer's output and a reduction of its gradient (about
    4% of a minibatch-64 step; at 4096 it matches spreading the bias with a K = 1 matmul).
    The bias unit's entries get exactly zero gradient (tanh' = 0 there), so Adam never moves
    them (its moments stay 0 and its step is 0 / eps). The critic's head has A
    columns like the actor's so the two stack; only column 0 (the value) is read, the others
    stay 0 (they never receive a gradient). :meth:`named` and :meth:`flatten` convert to and
    from the plain tensors of two separate MLPs.
    """

    obs_dim: int
    hidden: int
    n_actions: int

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        """Per-network shape of each tensor."""
        f, h, a = self.obs_dim, self.hidden, self.n_actions
        return ((f + 1, h + 1), (h + 1, h), (h, a), (1, a))

    @property
    def offsets(self) -> tuple[int, ...]:
        """Start column of each tensor, then the total P (len 5)."""
        out = [0]
        for s in self.shapes:
            out.append(out[-1] + math.prod(s))
        return tuple(out)

    @property
    def size(self) -> int:
        """P, the parameters of one network (including the fixed bias-unit entries)."""
        return self.offsets[-1]

    def unpack(self, theta: mx.array) -> list[mx.array]:
        """The four tensors, stacked over the two networks ([2, ...] views of ``theta``)."""
        o = self.offsets
        return [theta[:, o[i] : o[i + 1]].reshape(2, *s) for i, s in enumerate(self.shapes)]

    def _unpack_numpy(self, theta: np.ndarray) -> list[np.ndarray]:
        o = self.offsets
        return [theta[:, o[i] : o[i + 1]].reshape(2, *s) for i, s in enumerate(self.shapes)]

    def layers(self, theta: np.ndarray) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """Per network (actor, critic), its three layers as (w [in, out], b [out]) float32
        arrays of the plain MLP (the critic's head has one output)."""
        f, h = self.obs_dim, self.hidden
        w1, w2, w3, b3 = self._unpack_numpy(theta)
        nets = []
        for n in (0, 1):
            head = slice(None) if n == 0 else slice(0, 1)
            nets.append(
                [
                    (w1[n, :f, :h], w1[n, f, :h]),
                    (w2[n, :h, :], w2[n, h, :]),
                    (w3[n][:, head], b3[n, 0, head]),
                ]
            )
        return nets

    def stacked(self, theta: np.ndarray) -> tuple[np.ndarray, ...]:
        """Both networks' layers stacked over a leading axis of 2, as contiguous float32
        arrays: w1 [2, F, H], b1 [2, 1, H], w2 [2, H, H], b2 [2, 1, H], w3 [2, H, A], b3
        [2, 1, A] (the critic's head keeps its A columns; only column 0 is the value)."""
        f, h = self.obs_dim, self.hidden
        w1, w2, w3, b3 = self._unpack_numpy(theta)
        parts = (w1[:, :f, :h], w1[:, f:, :h], w2[:, :h], w2[:, h:], w3, b3)
        return tuple(np.ascontiguousarray(a) for a in parts)

    def named(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """``actor.layers.<i>.weight`` [out, in] / ``.bias`` [out] (and ``critic...``, whose
        head has one output) from ``theta`` [2, P]: the names of two separate MLPs."""
        out: dict[str, np.ndarray] = {}
        for net, layers in zip(("actor", "critic"), self.layers(theta), strict=True):
            for i, (w, b) in enumerate(layers):
                out[f"{net}.layers.{i}.weight"] = np.ascontiguousarray(w.T)
                out[f"{net}.layers.{i}.bias"] = np.ascontiguousarray(b)
        return out

    def flatten(self, named: dict[str, np.ndarray], *, moments: bool = False) -> np.ndarray:
        """Inverse of :meth:`named`: float32 [2, P] (the critic head's unused columns 0).

        With ``moments`` (Adam's m or v) the bias unit's entries are 0 rather than its
        constant input.
        """
        f, h = self.obs_dim, self.hidden
        theta = np.zeros((2, self.size), dtype=np.float32)
        w1, w2, w3, b3 = self._unpack_numpy(theta)  # views into theta
        for n, net in enumerate(("actor", "critic")):
            get = {
                k: np.asarray(named[f"{net}.layers.{k}"], dtype=np.float32)
                for k in ("0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias")
            }
            w1[n, :f, :h] = get["0.weight"].T
            w1[n, f, :h] = get["0.bias"]
            w1[n, f, h] = 0.0 if moments else BIAS_UNIT_INPUT
            w2[n, :h, :] = get["1.weight"].T
            w2[n, h, :] = get["1.bias"]
            out = get["2.bias"].shape[0]
            w3[n, :, :out] = get["2.weight"].T
            b3[n, 0, :out] = get["2.bias"]
        return theta


def augment(obs: np.ndarray) -> np.ndarray:
    """obs [B, F] -> float32 [B, F + 1] with a constant 1 appended (see :class:`Layout`)."""
    out = np.empty((obs.shape[0], obs.shape[1] + 1), dtype=np.float32)
    out[:, :-1] = obs
    out[:, -1] = 1.0
    return out


class ActorCritic(nn.Module):
    """Actor (obs -> logits [B, A]) and critic (obs -> value [B]) as one stacked network.

    The seed's shapes: obs_dim -> hidden -> hidden -> n_actions (softmax applied by the
    caller) and obs_dim -> hidden -> hidden -> 1, tanh activations, separate weights. Both
    networks' parameters are one array ``theta`` [2, P] (see :class:`Layout`); each layer is
    one batched matmul over the stacked pair.
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden: int) -> None:
        super().__init__()
        self.layout = Layout(obs_dim, hidden, n_actions)
        self.theta = mx.zeros((2, self.layout.size), dtype=mx.float32)

    @staticmethod
    def forward(params: list[mx.array], obs: mx.array) -> tuple[mx.array, mx.array]:
        """Forward of augmented obs [B, F + 1] (:func:`augment`) with unpacked ``params`` ->
        (logits [B, A], value [B])."""
        w1, w2, w3, b3 = params
        # mlx's stub says a custom_function call returns `object`; it returns what the wrapped
        # function does, an array.
        h = cast(mx.array, fast_tanh(obs @ w1))  # [2, B, H + 1]; column H: bias unit, exactly 1
        h = cast(mx.array, fast_tanh(h @ w2))  # [2, B, H]
        out = mx.addmm(b3, h, w3)  # [2, B, A]
        return out[0], out[1, :, 0]

    def __call__(self, obs: mx.array) -> tuple[mx.array, mx.array]:
        """Forward of augmented obs [B, F + 1] -> (logits [B, A], value [B])."""
        return self.forward(self.layout.unpack(self.theta), obs)


def _orthogonal(rng: np.random.Generator, rows: int, cols: int, gain: float) -> np.ndarray:
    """A [rows, cols] matrix with orthonormal rows or columns, times ``gain`` (float32).

    The QR runs in MLX on the CPU stream (single-threaded pinned BLAS): numpy's LAPACK runs a
    2-thread pool that stalls for 10-600 ms at a time on a busy 2-core machine.
    """
    a = rng.standard_normal((max(rows, cols), min(rows, cols))).astype(np.float32)
    q_mx, r_mx = mx.linalg.qr(mx.array(a), stream=mx.cpu)
    q, r = np.array(q_mx), np.array(r_mx)
    q *= np.sign(np.diag(r))  # makes the factorisation unique, so the draw is uniform
    q = q if rows >= cols else q.T
    return (gain * q[:rows, :cols]).astype(np.float32)


def init_weights(model: ActorCritic, rng: np.random.Generator) -> None:
    """CleanRL's initialisation: orthogonal weights (gain sqrt 2 hidden, 0.01 for the policy
    head so the first policy is near uniform, 1 for the value head), zero biases.

    Drawn in numpy (actor layers first, then critic, each [out, in]) so that the initial
    weights are the same on every MLX device.
    """
    lay = model.layout
    f, h = lay.obs_dim, lay.hidden
    named: dict[str, np.ndarray] = {}
    for net, head_gain, n_out in (("actor", 0.01, lay.n_actions), ("critic", 1.0, 1)):
        for i, (out_dim, in_dim) in enumerate(((h, f), (h, h), (n_out, h))):
            gain = head_gain if i == 2 else math.sqrt(2.0)
            named[f"{net}.layers.{i}.weight"] = _orthogonal(rng, out_dim, in_dim, gain)
            named[f"{net}.layers.{i}.bias"] = np.zeros(out_dim, dtype=np.float32)
    model.theta = mx.array(lay.flatten(named))


# ---------------------------------------------------------------------------------------------
# The same forward in numpy, for small batches

NUMPY_CHUNK = 16
"""Rows per numpy matmul. numpy's OpenBLAS runs a matmul on one thread while
m * n * k <= 262144 (16 x 128 x 128); above that it wakes a thread pool, which jitters on a
busy 2-core machine, so larger batches run as a stack of 16-row matmuls."""


def forward_numpy(stacked: tuple[np.ndarray, ...], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`ActorCritic.forward` in plain numpy float32 (no MLX hand-off): normalised obs
    x [N, F] (not augmented) with :meth:`Layout.stacked` weights -> (logits [N, A], value
    [N]).

    Agrees with the MLX forward to float32 rounding (tanh differs in the last few ulp).
    Actor and critic run stacked, as in MLX: each layer is one batched matmul and one
    in-place bias add and tanh. Batches above :data:`NUMPY_CHUNK` rows are zero-padded to
    whole chunks and run as a stack of chunk-row matmuls.
    """
    n = x.shape[0]
    w1, b1, w2, b2, w3, b3 = stacked
    c = NUMPY_CHUNK
    if n > c:  # [N, F] -> [K, c, F], weights [2, 1, ...]: one matmul per chunk and net
        k = -(-n // c)
        x = np.concatenate([x, np.zeros((k * c - n, x.shape[1]), x.dtype)]).reshape(k, c, -1)
        w1, b1, w2, b2, w3, b3 = (a[:, None] for a in (w1, b1, w2, b2, w3, b3))
    h = x @ w1  # [2, N, H] (or [2, K, c, H])
    np.tanh(np.add(h, b1, out=h), out=h)
    h = h @ w2
    np.tanh(np.add(h, b2, out=h), out=h)
    out = h @ w3  # [2, N, A]
    out += b3
    if n > c:
        out = out.reshape(2, -1, out.shape[-1])[:, :n]
    return out[0], out[1, :, 0]


def greedy_numpy(actor: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """Argmax actions [N] int64 of the actor alone (its :meth:`Layout.layers`) on normalised
    obs x [N, F]; about 10 us for the live tick's 4 rows, against about 85 us through MLX."""
    (w1, b1), (w2, b2), (w3, b3) = actor
    h = np.tanh(x @ w1 + b1)
    h = np.tanh(h @ w2 + b2)
    return np.argmax(h @ w3 + b3, axis=-1).astype(np.int64)
