"""Proximal Policy Optimisation in MLX, top to bottom: config, actor-critic, observation
normaliser, GAE, loss, Adam, update.

The agent sees ``N`` parallel copies of an environment (markets, or replayed episodes) and
collects ``T = buffer_steps`` steps from each before an update::

    ppo = PPO(obs_dim=18, n_actions=3, config=PPOConfig(), seed=0)
    for t in range(T):
        actions, logp, value = ppo.act(obs)                # obs [N, F] -> [N], [N], [N]
        next_obs, reward, done = env.step(actions)         # done: episode ended with step t
        ...store obs, actions, logp, value, reward, done at t...
        obs = next_obs
    metrics = ppo.update(Rollout(..., last_value=ppo.value(obs)))

Conventions (CleanRL's, with the paper's names): ``dones[t]`` is true when the episode ended
with step ``t``, so ``values[t+1]`` (or ``last_value``) is not bootstrapped across it.
Observations are stored raw; the running normaliser's statistics stay frozen while a rollout
is collected and are updated from its observations at the end of :meth:`PPO.update`, so
every gradient step sees observations normalised exactly as they were when the actions were
sampled (the probability ratio starts at 1, to float32 rounding).

Speed. On a CPU, MLX runs every primitive of a graph as a task on its stream thread (a few
microseconds each, whatever its size), and ``mx.compile`` fuses element-wise chains into
kernels that ``g++ -O3`` builds: such a kernel is vectorised only when its inputs are
contiguous (or scalars) and no select, min/max or libm call (``sqrt``, ``exp``) feeds further
operations in it; chains deeper than 11 operations are cut into several kernels; and scalar
expressions fused into a per-element kernel are recomputed for every element. At minibatch 64
the step's cost is its primitive count; at 4096 it is its matmuls and its full passes over
the [2, B, H] activations. So (measured on a 2-core x86-64 box; each item is worth 3-30%):

- actor and critic are one stacked network (:mod:`polyrl.rl.network`): each layer is one
  batched matmul over a leading axis of 2, so the graph has half the primitives;
- their parameters are one [2, P] array, and so are Adam's moments: clipping and both Adam
  updates (per-network learning rates and clip norms) are a handful of primitives;
- the hidden biases ride inside the matmuls (a constant input feature and a bias unit, see
  ``network.Layout``) rather than being broadcast into each layer's output and reduced out
  of its gradient;
- ``network.fast_tanh`` is a depth-8 rational function and a clamp, two vectorised kernels;
- the loss reads the output by split and one-hot products, not indexing (no scatters in
  the backward pass), and takes one softmax's exponentials for everything;
- Adam's bias corrections are computed on the host, and each minibatch is gathered and its
  advantages normalised on the host, so the compiled step gets ready arrays;
- the update never waits for a step: every step is evaluated asynchronously (minibatch 4096
  included), minibatches are gathered only when the loop reaches them (a generator, so the
  gathering overlaps the kernels of the steps already queued), the steps' statistics are
  read once at the end of the update rather than after each epoch (unless ``target_kl``
  needs them), and the normaliser update runs while the last steps do. Against waiting
  after every epoch and for every step at 4096: update 5-7% faster at minibatch 4096,
  0-5% at 64 (bit-identical weights and metrics);
- :meth:`PPO.act` and :meth:`PPO.value` run in numpy for up to :attr:`PPO.NUMPY_MAX_BATCH`
  rows and sample actions from a numpy generator seeded from the run seed; larger batches
  run the compiled MLX forward and sample the same way. The numpy forward is stacked like
  the MLX one (one batched matmul, bias add and tanh per layer for both networks: ``act``
  for 4 rows 33 -> 28 us, against about 150 us through MLX), and batches above
  :attr:`PPO.NUMPY_CHUNK` rows run as a stack of 16-row matmuls, which keeps numpy's
  OpenBLAS on one thread (at 128 envs the rollout went from 310 to 265 ms per update: the
  MLX forward pays a thread hand-off per call);
- the replay environment's step (:mod:`polyrl.rl.env`, :mod:`polyrl.broker.broker`) builds
  its fill rows leg by leg from the filled markets only, checks orders with three masks and
  writes reject codes only when one fails, and reads the position side from a lookup
  table: env step at 128 envs 304 -> 290 us, at 4 envs 140 -> 137 us (same rows, bit for
  bit).

Measured and dropped: several minibatch steps per compiled call (no faster); a hand-written
backward pass (within noise of autograd once the graph is lean); a bit-trick ``rsqrt`` in
Adam (no faster); glibc malloc tunables (no effect); vectorising Adam's kernels (per-row
clip scale and learning rate blended from scalars by a 0/1 row mask instead of broadcast
from [2, 1], and m, v and sqrt(v) materialised as separate kernels): 15% faster in an Adam
microbenchmark, but no gain at minibatch 64 and 4% slower at 4096 in the whole update, where
the extra primitives cost more than the vectorised arithmetic saves (at minibatch 64 the
host thread, building and scheduling about a hundred primitives a step, is as busy as the
stream thread).

Nothing here is Linux-specific: on Apple Silicon the same code runs on Metal/Accelerate.
Determinism: every random draw comes from the run seed (numpy generators for initial weights,
minibatch order and action sampling), so two runs with one seed give bit-identical weights on
one machine.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

# Importing this module runs polyrl/rl/__init__.py first, which loads the BLAS (mlx_setup)
# before the first `import mlx`.
import mlx.core as mx
import numpy as np

from polyrl.rl.network import ActorCritic, augment, init_weights

# ---------------------------------------------------------------------------------------------
# Config


@dataclass(frozen=True, slots=True, kw_only=True)
class PPOConfig:
    """PPO hyperparameters; defaults are the seed's (the seed system's "PPO Hyperparameters")."""

    lr_actor: float = 1e-4
    """Adam learning rate of the actor (policy) network."""
    lr_critic: float = 3e-4
    """Adam learning rate of the critic (value) network."""
    gamma: float = 0.99
    """Discount factor per environment step."""
    gae_lambda: float = 0.95
    """GAE lambda: 0 is one-step TD advantages, 1 is Monte Carlo returns minus the value."""
    clip_coef: float = 0.2
    """PPO surrogate clipping range: the ratio is clipped to [1 - clip_coef, 1 + clip_coef]."""
    ent_coef: float = 0.10
    """Weight of the entropy bonus in the loss (the seed doubled it from 0.05)."""
    vf_coef: float = 0.5
    """Weight of the value loss in the loss."""
    n_epochs: int = 10
    """Passes over each rollout per update."""
    minibatch_size: int = 64
    """Samples per gradient step; must not exceed buffer_steps * n_envs."""
    buffer_steps: int = 512
    """Environment steps collected per env (per market) before each update."""
    hidden: int = 128
    """Width of both hidden layers of actor and critic."""
    max_grad_norm: float = 0.5
    """Global-norm gradient clip, applied to actor and critic gradients separately."""
    norm_adv: bool = True
    """Normalise advantages to zero mean, unit std within each minibatch."""
    norm_obs: bool = True
    """Normalise observations with running mean/variance statistics, then clip to +-obs_clip."""
    obs_clip: float = 10.0
    """Clip for normalised observations (in standard deviations)."""
    anneal_lr: bool = False
    """Decay both learning rates linearly to 0 over anneal_updates updates."""
    anneal_updates: int = 0
    """Updates over which the learning rates anneal (required > 0 when anneal_lr)."""
    target_kl: float | None = None
    """Stop an update's epochs early once an epoch's mean approx KL exceeds this (None: never)."""
    clip_vloss: bool = False
    """Clip the value loss around the rollout's values, as in the PPO paper's code."""
    adam_eps: float = 1e-8
    """Adam epsilon (MLX's default)."""

    def __post_init__(self) -> None:
        positive = ("lr_actor", "lr_critic", "n_epochs", "minibatch_size", "buffer_steps")
        for name in (*positive, "hidden", "max_grad_norm", "obs_clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not 0.0 < self.clip_coef < 1.0:
            raise ValueError(f"clip_coef must be in (0, 1), got {self.clip_coef!r}")
        for name in ("ent_coef", "vf_coef", "adam_eps", "anneal_updates"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.anneal_lr and self.anneal_updates <= 0:
            raise ValueError("anneal_updates must be > 0 when anneal_lr is true")
        if self.target_kl is not None and not self.target_kl > 0:
            raise ValueError(f"target_kl must be > 0 or None, got {self.target_kl!r}")


# ---------------------------------------------------------------------------------------------
# Observation normaliser


class RunningNorm:
    """Running mean and variance of observations [B, F] (float64, parallel-merge formula).

    ``normalise`` maps raw obs to float32 ``(obs - mean) / sqrt(var + eps)`` clipped to
    ``+-clip``. With no data seen yet mean is 0 and var 1, so raw obs pass through (clipped).
    """

    def __init__(self, dim: int, *, clip: float = 10.0, eps: float = 1e-8) -> None:
        self.dim = dim
        self.clip = clip
        self.eps = eps
        self.mean = np.zeros(dim, dtype=np.float64)
        self.var = np.ones(dim, dtype=np.float64)
        self.count = 0.0

    def update(self, x: np.ndarray) -> None:
        """Fold a batch x [B, F] into the statistics."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.dim)
        n = float(x.shape[0])
        if n == 0:
            return
        b_mean = x.mean(axis=0)
        b_var = x.var(axis=0)
        total = self.count + n
        delta = b_mean - self.mean
        m2 = self.var * self.count + b_var * n + delta**2 * self.count * n / total
        self.mean = self.mean + delta * n / total
        self.var = m2 / total
        self.count = total

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """Raw obs [..., F] -> normalised float32 obs [..., F]."""
        z = (np.asarray(x, dtype=np.float64) - self.mean) / np.sqrt(self.var + self.eps)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """Statistics as JSON-ready values (floats round-trip exactly through JSON)."""
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mean = np.asarray(state["mean"], dtype=np.float64)
        var = np.asarray(state["var"], dtype=np.float64)
        if mean.shape != (self.dim,) or var.shape != (self.dim,):
            raise ValueError(
                f"normaliser statistics have shape {mean.shape}/{var.shape}, expected ({self.dim},)"
            )
        self.mean, self.var, self.count = mean, var, float(state["count"])


# ---------------------------------------------------------------------------------------------
# Generalised advantage estimation


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    dones: np.ndarray,
    last_value: np.ndarray,
    *,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """GAE advantages and returns, vectorised over the N envs (float64 [T, N] each).

    ``rewards``, ``values``, ``dones`` are [T, N] (``dones[t]``: the episode ended with step
    t, so nothing after it is bootstrapped); ``last_value`` [N] is V of the observation that
    follows step T-1. ``returns = advantages + values`` are the critic's targets.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    nonterminal = 1.0 - np.asarray(dones, dtype=np.float64)
    advantages = np.empty_like(rewards)
    next_value = np.asarray(last_value, dtype=np.float64)
    next_adv = np.zeros_like(next_value)
    for t in range(rewards.shape[0] - 1, -1, -1):
        delta = rewards[t] + gamma * next_value * nonterminal[t] - values[t]
        next_adv = delta + gamma * gae_lambda * nonterminal[t] * next_adv
        advantages[t] = next_adv
        next_value = values[t]
    return advantages, advantages + values


def compute_gae_loop(
    rewards: np.ndarray,
    values: np.ndarray,
    dones: np.ndarray,
    last_value: np.ndarray,
    *,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Reference GAE, one env and one step at a time in plain Python (tests only)."""
    n_steps, n_envs = np.shape(rewards)
    advantages = np.zeros((n_steps, n_envs))
    for n in range(n_envs):
        gae = 0.0
        for t in reversed(range(n_steps)):
            next_v = float(last_value[n]) if t == n_steps - 1 else float(values[t + 1][n])
            keep = 0.0 if dones[t][n] else 1.0
            delta = float(rewards[t][n]) + gamma * next_v * keep - float(values[t][n])
            gae = delta + gamma * gae_lambda * keep * gae
            advantages[t, n] = gae
    return advantages, advantages + np.asarray(values, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Loss

METRIC_NAMES = ("policy", "value", "entropy", "approx_kl", "clip_frac")


def ppo_loss(
    params: list[mx.array],
    obs: mx.array,
    actions: mx.array,
    old_logp: mx.array,
    advantages: mx.array,
    returns: mx.array,
    old_values: mx.array,
    *,
    clip_coef: float,
    ent_coef: float,
    vf_coef: float,
    clip_vloss: bool,
) -> tuple[mx.array, mx.array]:
    """The PPO objective for one minibatch; shapes obs [B, F + 1] (:func:`augment`), actions
    [B, A] one-hot (float32), everything else [B]; ``params`` as :meth:`Layout.unpack` gives
    them.

    Returns ``(loss, stats)`` with stats [5] = policy loss, value loss, entropy, approx KL
    (the ``(ratio - 1) - log ratio`` estimator, unbiased and non-negative) and the fraction of
    samples whose ratio was clipped. Pure: a function of its arguments only, so it can be
    passed to ``mx.value_and_grad`` and compiled.
    """
    logits, value = ActorCritic.apply(params, obs)
    # The softmax by hand: one exp per logit, shared by the log-probabilities, the entropy
    # and (through autograd's saved outputs) the backward pass. The max is a constant shift.
    z = logits - mx.stop_gradient(logits.max(axis=-1, keepdims=True))
    e = mx.exp(z)
    total = e.sum(axis=-1, keepdims=True)
    log_probs = z - mx.log(total)
    probs = e / total
    # A one-hot product rather than take_along_axis: no gather, and no scatter in backward.
    logp = (log_probs * actions).sum(axis=-1)
    log_ratio = logp - old_logp
    ratio = mx.exp(log_ratio)
    pg = mx.maximum(-advantages * ratio, -advantages * mx.clip(ratio, 1 - clip_coef, 1 + clip_coef))
    if clip_vloss:
        v_clipped = old_values + mx.clip(value - old_values, -clip_coef, clip_coef)
        v = 0.5 * mx.maximum((value - returns) ** 2, (v_clipped - returns) ** 2)
    else:
        v = 0.5 * (value - returns) ** 2
    entropy = -(probs * log_probs).sum(axis=-1)
    kl = (ratio - 1.0) - log_ratio
    clipped = (mx.abs(ratio - 1.0) > clip_coef).astype(mx.float32)
    # The loss as one mean of per-sample terms (one reduction for the gradient to flow back
    # through, no indexing); the five statistics in one reduction that is not differentiated.
    loss = (pg - ent_coef * entropy + vf_coef * v).mean()
    b = logits.shape[0]
    stats = mx.stop_gradient(mx.concatenate([pg, v, entropy, kl, clipped])).reshape(5, b)
    return loss, stats.mean(axis=1)


# ---------------------------------------------------------------------------------------------
# Adam with per-network clipping over the [2, P] parameters

ADAM_BETAS = (0.9, 0.999)


def _epoch_sum(stats: mx.array) -> np.ndarray:
    """An epoch's step statistics [S, 5] summed step after step in float32, as float64."""
    return np.array(stats).sum(axis=0, dtype=np.float32).astype(np.float64)


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
# Rollout and the PPO agent


@dataclass(frozen=True, slots=True, kw_only=True)
class Rollout:
    """One update's experience from N envs over T steps (numpy arrays).

    obs [T, N, F] raw observations; actions [T, N] int; logp [T, N] log-probability of the
    action when sampled; values [T, N] critic values then; rewards [T, N]; dones [T, N] bool,
    true when the episode ended with step t; last_value [N] = V(observation after step T-1).
    (No ``last_done`` is needed: ``dones[T-1]`` already says whether to bootstrap.)
    """

    obs: np.ndarray
    actions: np.ndarray
    logp: np.ndarray
    values: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    last_value: np.ndarray

    def __post_init__(self) -> None:
        if np.ndim(self.obs) != 3:
            raise ValueError(f"obs must be [T, N, F], got shape {np.shape(self.obs)}")
        t_n = np.shape(self.obs)[:2]
        for name in ("actions", "logp", "values", "rewards", "dones"):
            if np.shape(getattr(self, name)) != t_n:
                raise ValueError(
                    f"{name} must have shape {t_n}, got {np.shape(getattr(self, name))}"
                )
        if np.shape(self.last_value) != t_n[1:]:
            raise ValueError(
                f"last_value must have shape {t_n[1:]}, got {np.shape(self.last_value)}"
            )


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """float64 log-probabilities of logits [N, A]."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class PPO:
    """PPO agent: acting, value estimates, updates and complete state for exact resume.

    ``compile=False`` runs the same functions eagerly (the tests hold the two equal).
    """

    NUMPY_CHUNK = 16
    """Rows per numpy matmul. numpy's OpenBLAS runs a matmul on one thread while
    m * n * k <= 262144 (16 x 128 x 128); above that it wakes a thread pool, which jitters
    on a busy 2-core machine, so larger batches run as a stack of 16-row matmuls."""
    NUMPY_MAX_BATCH = 128
    """Largest batch the forward runs in numpy rather than MLX. In the rollout loop at 128
    envs the chunked numpy forward took 15% less of the rollout than MLX's (which pays a
    thread hand-off per call); in isolation they are level at 128 and MLX wins beyond."""

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        config: PPOConfig | None = None,
        *,
        seed: int = 0,
        compile: bool = True,
    ) -> None:
        if obs_dim < 1 or n_actions < 2:
            raise ValueError(f"need obs_dim >= 1 and n_actions >= 2, got {obs_dim}, {n_actions}")
        self.config = config if config is not None else PPOConfig()
        self.obs_dim = obs_dim
        self.n_actions = n_actions
        self.seed = seed
        self.compiled = compile
        self.updates = 0
        # Independent streams for weights, minibatch order and action sampling, all from seed.
        init_seq, perm_seq, sample_seq = np.random.SeedSequence(seed).spawn(3)
        self.model = ActorCritic(obs_dim, n_actions, self.config.hidden)
        init_weights(self.model, np.random.default_rng(init_seq))
        self.layout = self.model.layout
        self.normaliser = RunningNorm(obs_dim, clip=self.config.obs_clip)
        self.perm_rng = np.random.default_rng(perm_seq)
        self.sample_rng = np.random.default_rng(sample_seq)
        # Adam: first and second moments shaped like theta [2, P], and the step count (the
        # same for actor and critic: they always step together).
        size = (2, self.layout.size)
        self.opt_state = {"m": mx.zeros(size), "v": mx.zeros(size)}
        self.adam_step = 0
        self._lrs = (self.config.lr_actor, self.config.lr_critic)
        mx.eval(self.model.parameters(), self.opt_state)
        self._np_layers: list[list[tuple[np.ndarray, np.ndarray]]] | None = None
        self._np_stacked: tuple[np.ndarray, ...] | None = None
        self._mx_params: list[mx.array] | None = None
        self._build_functions()

    # -- compiled functions ------------------------------------------------------------------

    def _build_functions(self) -> None:
        """(Re)build the forward and train functions over the current model and optimizer.

        ``mx.compile`` keeps references to the state trees declared as inputs/outputs, so this
        runs again whenever those trees are replaced (:meth:`load_state_dict`).
        """
        cfg = self.config
        model, opt, layout = self.model, self.opt_state, self.layout
        loss_and_grad = mx.value_and_grad(ppo_loss)

        def forward_fn(params: list[mx.array], obs: mx.array) -> tuple[mx.array, mx.array]:
            return ActorCritic.apply(params, obs)

        def train_fn(
            obs: mx.array,
            actions: mx.array,
            logp: mx.array,
            advantages: mx.array,
            returns: mx.array,
            values: mx.array,
            lr: mx.array,
            c1: mx.array,
            c2: mx.array,
        ) -> mx.array:
            """One gradient step on a ready minibatch (obs [M, F + 1] augmented, actions
            [M, A] one-hot, the rest [M]); lr [2, 1]; c1, c2 scalars. Returns the loss
            statistics [5]."""
            (_, stats), grads = loss_and_grad(
                layout.unpack(model.theta),
                obs,
                actions,
                logp,
                advantages,
                returns,
                values,
                clip_coef=cfg.clip_coef,
                ent_coef=cfg.ent_coef,
                vf_coef=cfg.vf_coef,
                clip_vloss=cfg.clip_vloss,
            )
            grad = mx.concatenate([g.reshape(2, -1) for g in grads], axis=1)
            model.theta, opt["m"], opt["v"] = adam_update(
                model.theta,
                opt["m"],
                opt["v"],
                grad,
                lr=lr,
                c1=c1,
                c2=c2,
                max_grad_norm=cfg.max_grad_norm,
                eps=cfg.adam_eps,
            )
            return stats

        if self.compiled:
            state = [model.state, opt]
            self._forward_fn: Callable[..., Any] = mx.compile(forward_fn)
            self._train_fn: Callable[..., Any] = mx.compile(train_fn, inputs=state, outputs=state)
        else:
            self._forward_fn, self._train_fn = forward_fn, train_fn

    # -- acting ------------------------------------------------------------------------------

    def _prepare(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(f"obs must be [N, {self.obs_dim}], got shape {obs.shape}")
        if self.config.norm_obs:
            return self.normaliser.normalise(obs)
        return obs.astype(np.float32, copy=False)

    def _logits_values(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward of raw obs [N, F]: numpy for small N, compiled MLX otherwise."""
        if len(obs) <= self.NUMPY_MAX_BATCH:
            return self.forward_numpy(obs)
        return self.forward(obs)

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample actions for raw obs [N, F] -> (actions [N] int64, logp [N], value [N]).

        Draws from the agent's own numpy generator (advanced on every call), so a run is
        reproducible from its seed and resumes exactly from a checkpoint. Sampling is by
        inverse CDF of the float64 softmax, one uniform per row.
        """
        logits, value = self._logits_values(obs)
        log_probs = _log_softmax(logits)
        cdf = np.cumsum(np.exp(log_probs), axis=-1)
        u = self.sample_rng.random(len(obs))
        actions = np.minimum((u[:, None] >= cdf).sum(axis=-1), self.n_actions - 1)
        logp = log_probs[np.arange(len(obs)), actions].astype(np.float32)
        return actions.astype(np.int64), logp, value.astype(np.float32, copy=False)

    def forward(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """MLX forward of raw obs [N, F] -> (logits [N, A], value [N]) as numpy float32."""
        x = mx.array(augment(self._prepare(obs)))
        logits, value = self._forward_fn(self._mlx_params(), x)
        mx.eval(logits, value)
        return np.array(logits), np.array(value)

    def _mlx_params(self) -> list[mx.array]:
        """The stacked tensors as materialised MLX arrays, cached until the next update (the
        acting forward then skips the slicing of ``theta``)."""
        if self._mx_params is None:
            self._mx_params = [mx.contiguous(t) for t in self.layout.unpack(self.model.theta)]
            mx.eval(self._mx_params)
        return self._mx_params

    def value(self, obs: np.ndarray) -> np.ndarray:
        """Critic values of raw obs [N, F] -> [N] float32 (the same path as :meth:`act`)."""
        return self._logits_values(obs)[1]

    def _numpy_layers(self) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """Per network, its layers as numpy (w [in, out], b [out]), cached until the next
        update."""
        if self._np_layers is None:
            nets = self.layout.layers(np.array(self.model.theta))
            self._np_layers = [
                [(np.ascontiguousarray(w), np.ascontiguousarray(b)) for w, b in net] for net in nets
            ]
        return self._np_layers

    def _numpy_stacked(self) -> tuple[np.ndarray, ...]:
        """:meth:`Layout.stacked` of the current weights, cached until the next update."""
        if self._np_stacked is None:
            self._np_stacked = self.layout.stacked(np.array(self.model.theta))
        return self._np_stacked

    def forward_numpy(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The same forward as :meth:`forward` in plain numpy float32 (no MLX hand-off).

        For small batches (the live tick's 4 markets, the rollout's envs) this is cheaper
        than a round trip through MLX; agrees with it to float32 rounding (tanh differs in
        the last few ulp). Actor and critic run stacked, as in MLX: each layer is one
        batched matmul and one in-place bias add and tanh, half the numpy calls of running
        the two networks one after the other. Batches above :attr:`NUMPY_CHUNK` rows are
        zero-padded to whole chunks and run as a stack of chunk-row matmuls.
        """
        x = self._prepare(obs)
        n = x.shape[0]
        w1, b1, w2, b2, w3, b3 = self._numpy_stacked()
        c = self.NUMPY_CHUNK
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

    def act_deterministic(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions for raw obs [N, F] -> [N] int64 (argmax of the policy; eval/live).

        Batches of up to :attr:`NUMPY_CHUNK` rows (the live tick's 4 markets) run the
        actor alone in numpy: about 10 us against about 85 us through MLX for N = 4. Larger
        batches take the path of :meth:`act`.
        """
        if len(obs) > self.NUMPY_CHUNK:
            logits, _ = self._logits_values(obs)
            return np.argmax(logits, axis=-1).astype(np.int64)
        h = self._prepare(obs)
        (w1, b1), (w2, b2), (w3, b3) = self._numpy_layers()[0]
        h = np.tanh(h @ w1 + b1)
        h = np.tanh(h @ w2 + b2)
        return np.argmax(h @ w3 + b3, axis=-1).astype(np.int64)

    # -- learning ----------------------------------------------------------------------------

    def learning_rates(self) -> tuple[float, float]:
        """(actor, critic) learning rates for the next update (annealed when configured)."""
        cfg = self.config
        frac = 1.0
        if cfg.anneal_lr:
            frac = max(0.0, 1.0 - self.updates / cfg.anneal_updates)
        return cfg.lr_actor * frac, cfg.lr_critic * frac

    def _minibatches(
        self,
        x: np.ndarray,
        onehot: np.ndarray,
        columns: tuple[np.ndarray, ...],
        advantages: np.ndarray,
    ) -> Iterator[tuple[mx.array, ...]]:
        """One epoch's minibatches, in a fresh random order, ready for the compiled step.

        ``x`` [B, F + 1] float32 normalised, augmented obs, ``onehot`` [B, A], ``columns``
        (logp, returns, values) [B] float32, ``advantages`` [B] float64. Samples beyond a
        whole number of minibatches sit out the epoch (a different few each epoch); keeping
        every step the same shape means one compiled graph. Advantages are normalised per
        minibatch here (float64), which takes a gather and two reductions out of every step.
        A generator: the epoch's permutation is drawn when iteration starts, and each
        minibatch is gathered only when the loop asks for it, while the previous steps'
        kernels run.
        """
        m = self.config.minibatch_size
        n_mb = x.shape[0] // m
        perm = self.perm_rng.permutation(x.shape[0])[: n_mb * m].reshape(n_mb, m)
        adv = advantages[perm]
        if self.config.norm_adv:
            adv = (adv - adv.mean(axis=1, keepdims=True)) / (adv.std(axis=1, keepdims=True) + 1e-8)
        adv32 = adv.astype(np.float32)
        logp, returns, values = columns
        for k, rows in enumerate(perm):
            yield (
                mx.array(x[rows]),
                mx.array(onehot[rows]),
                mx.array(logp[rows]),
                mx.array(adv32[k]),
                mx.array(returns[rows]),
                mx.array(values[rows]),
            )

    def update(self, rollout: Rollout) -> dict[str, float]:
        """One PPO update on a rollout: GAE, ``n_epochs`` shuffled passes of minibatch steps,
        then the normaliser folds in the rollout's observations.

        Returns metrics: ``losses/policy``, ``losses/value``, ``losses/entropy``,
        ``losses/approx_kl``, ``losses/clip_frac`` (means over the gradient steps taken),
        ``losses/explained_variance`` (of the rollout's values for its returns),
        ``charts/learning_rate`` (actor), ``charts/learning_rate_critic``, ``charts/epochs``
        (fewer than n_epochs after a KL early stop) and ``charts/updates``.
        """
        cfg = self.config
        n_steps, n_envs, obs_dim = rollout.obs.shape
        if obs_dim != self.obs_dim:
            raise ValueError(f"rollout obs have {obs_dim} features, the model {self.obs_dim}")
        batch = n_steps * n_envs
        if batch < cfg.minibatch_size:
            raise ValueError(
                f"minibatch_size {cfg.minibatch_size} exceeds the rollout's {batch} samples"
            )
        advantages, returns = compute_gae(
            rollout.rewards,
            rollout.values,
            rollout.dones,
            rollout.last_value,
            gamma=cfg.gamma,
            gae_lambda=cfg.gae_lambda,
        )
        lr_a, lr_c = self.learning_rates()
        self._lrs = (lr_a, lr_c)
        lr = mx.array([[lr_a], [lr_c]], dtype=mx.float32)

        flat_obs = rollout.obs.reshape(batch, obs_dim)
        x = augment(self._prepare(flat_obs))
        onehot = np.eye(self.n_actions, dtype=np.float32)[rollout.actions.reshape(batch)]
        columns = (
            rollout.logp.reshape(batch).astype(np.float32),
            returns.reshape(batch).astype(np.float32),
            rollout.values.reshape(batch).astype(np.float32),
        )
        adv = advantages.reshape(batch)
        state = [self.model.state, self.opt_state]
        epoch_sums: list[np.ndarray] = []  # per epoch, its steps' statistics summed, [5]
        steps = 0
        pending: list[mx.array] = []  # per epoch not yet read, its steps' statistics [S, 5]
        for _ in range(cfg.n_epochs):
            step_stats = []
            for obs_mb, act_mb, logp_mb, adv_mb, ret_mb, val_mb in self._minibatches(
                x, onehot, columns, adv
            ):
                self.adam_step += 1
                c1, c2 = adam_corrections(self.adam_step)
                stats = self._train_fn(
                    obs_mb, act_mb, logp_mb, adv_mb, ret_mb, val_mb, lr, mx.array(c1), mx.array(c2)
                )
                step_stats.append(stats)
                # One evaluation per gradient step, so the lazy graph never spans two steps,
                # and asynchronous: building the next step's inputs and graph overlaps this
                # step's kernels.
                mx.async_eval(stats, state)
            steps += len(step_stats)
            pending.append(mx.stack(step_stats))
            if cfg.target_kl is not None:  # read now; otherwise the queue never drains
                epoch_sums += [_epoch_sum(e) for e in pending]
                pending = []
                if epoch_sums[-1][3] / len(step_stats) > cfg.target_kl:
                    break
        # Host work that needs no step's result, done while the queued steps run.
        self.normaliser.update(flat_obs)
        var_ret = float(np.var(returns))
        explained = (
            float("nan")
            if var_ret == 0.0
            else 1.0 - float(np.var(returns - rollout.values)) / var_ret
        )
        epoch_sums += [_epoch_sum(e) for e in pending]
        epochs = len(epoch_sums)
        totals = np.zeros(len(METRIC_NAMES))
        for e in epoch_sums:
            totals += e
        mx.eval(state)  # the last asynchronous step's parameters, before anyone reads them

        self.updates += 1
        self._np_layers = None
        self._np_stacked = None
        self._mx_params = None
        means = totals / steps
        metrics = {f"losses/{name}": float(v) for name, v in zip(METRIC_NAMES, means, strict=True)}
        metrics |= {
            "losses/explained_variance": explained,
            "charts/learning_rate": lr_a,
            "charts/learning_rate_critic": lr_c,
            "charts/epochs": float(epochs),
            "charts/updates": float(self.updates),
        }
        return metrics

    # -- state -------------------------------------------------------------------------------

    def tensors(self) -> dict[str, np.ndarray]:
        """Weights and optimizer states as flat ``name -> array`` (safetensors-ready numpy).

        The names of two separate MLPs with two Adam optimizers, as in checkpoint format 1:
        ``model.<net>.layers.<i>.weight`` [out, in] and ``.bias`` [out] (net ``actor`` or
        ``critic``), ``opt_<net>.layers.<i>.<weight|bias>.<m|v>`` (Adam moments, same
        shapes), ``opt_<net>.step`` (uint64) and ``opt_<net>.learning_rate`` (float32).
        """
        lay = self.layout
        out = {f"model.{k}": v for k, v in lay.named(np.array(self.model.theta)).items()}
        for moment in ("m", "v"):
            named = lay.named(np.array(self.opt_state[moment]))
            for k, v in named.items():
                net, rest = k.split(".", 1)
                out[f"opt_{net}.{rest}.{moment}"] = v
        for net, lr in zip(("actor", "critic"), self._lrs, strict=True):
            out[f"opt_{net}.step"] = np.array(self.adam_step, dtype=np.uint64)
            out[f"opt_{net}.learning_rate"] = np.array(lr, dtype=np.float32)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically: config, tensors (numpy), normaliser,
        action-sampling and minibatch generator states and update count."""
        return {
            "config": dataclasses.asdict(self.config),
            "obs_dim": self.obs_dim,
            "n_actions": self.n_actions,
            "seed": self.seed,
            "updates": self.updates,
            "tensors": self.tensors(),
            "normaliser": self.normaliser.state_dict(),
            "sample_rng": self.sample_rng.bit_generator.state,
            "perm_rng": self.perm_rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (or a checkpoint's pieces).

        Raises ValueError naming the first missing, unexpected or mis-shaped tensor; nothing is
        changed unless every tensor checks out.
        """
        given = state["tensors"]
        expected = self.tensors()
        missing = sorted(set(expected) - set(given))
        if missing:
            raise ValueError(f"missing tensor {missing[0]!r} ({len(missing)} missing)")
        extra = sorted(set(given) - set(expected))
        if extra:
            raise ValueError(f"unexpected tensor {extra[0]!r}")
        for name, ref in expected.items():
            shape = tuple(np.shape(given[name]))
            if shape != tuple(ref.shape):
                raise ValueError(f"tensor {name!r} has shape {shape}, expected {tuple(ref.shape)}")
        lay = self.layout
        model = {k[len("model.") :]: given[k] for k in expected if k.startswith("model.")}
        moments = {}
        for moment in ("m", "v"):
            named = {}
            for net in ("actor", "critic"):
                prefix, suffix = f"opt_{net}.", f".{moment}"
                for k in expected:
                    if k.startswith(prefix) and k.endswith(suffix):
                        named[f"{net}.{k[len(prefix) : -len(suffix)]}"] = given[k]
            moments[moment] = lay.flatten(named, moments=True)
        steps = {int(np.asarray(given[f"opt_{net}.step"])) for net in ("actor", "critic")}
        if len(steps) != 1:
            raise ValueError(f"actor and critic optimizers are at different steps {sorted(steps)}")
        self.model.theta = mx.array(lay.flatten(model))
        self.opt_state["m"] = mx.array(moments["m"])
        self.opt_state["v"] = mx.array(moments["v"])
        self.adam_step = steps.pop()
        lr_a, lr_c = (
            float(np.asarray(given[f"opt_{n}.learning_rate"])) for n in ("actor", "critic")
        )
        self._lrs = (lr_a, lr_c)
        self.normaliser.load_state_dict(state["normaliser"])
        self.sample_rng.bit_generator.state = state["sample_rng"]
        self.perm_rng.bit_generator.state = state["perm_rng"]
        self.updates = int(state["updates"])
        self._np_layers = None
        self._np_stacked = None
        self._mx_params = None
        mx.eval(self.model.parameters(), self.opt_state)
        self._build_functions()
