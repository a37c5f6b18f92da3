"""Proximal Policy Optimisation in MLX, top to bottom: config, actor-critic, observation
normaliser, GAE, loss, update.

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
sampled (the probability ratio starts at 1).

Speed (see ``polyrl.rl.mlx_setup`` for the BLAS part). MLX's CPU element-wise kernels are
slow, and every hand-off from Python to MLX costs tens of microseconds, so:

- the hidden activation is :func:`fast_tanh`, a rational function of plain arithmetic that
  ``mx.compile`` fuses into one kernel (about 7x the throughput of ``mx.tanh`` on x86-64),
  with a custom VJP ``1 - tanh^2`` from the saved output (halves forward+backward at 4096);
- each minibatch step (gather, forward, backward, clipping, both Adam updates) is one
  compiled call followed by one ``mx.eval``. Running several steps, or a whole epoch, per
  compiled call or per evaluation was measured and was no faster here (the step's own
  kernels dominate, not the hand-off), so the simple form stays;
- ``act_deterministic`` (the live path, batch 4 every 500 ms) runs in numpy on a cached copy
  of the weights; tests hold it equal to the MLX forward.

Nothing here is Linux-specific: on Apple Silicon the same code runs on Metal/Accelerate.
Determinism: every random draw comes from the run seed (MLX keys for action sampling, a numpy
``Generator`` for minibatch order, numpy for initial weights), so two runs with one seed give
bit-identical weights on one machine.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Importing this module runs polyrl/rl/__init__.py first, which loads the BLAS (mlx_setup)
# before the first `import mlx`.
import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

# ---------------------------------------------------------------------------------------------
# Config


@dataclass(frozen=True, slots=True, kw_only=True)
class PPOConfig:
    """PPO hyperparameters; defaults are the seed's (SEED.md, "PPO Hyperparameters")."""

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
# Actor-critic

# Coefficients of a [13/6] rational approximation of tanh on [-7.9, 7.9] (outside it tanh is
# +-1 to float32 precision). Max abs error against tanh is a few float32 ulp.
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
    x = mx.clip(x, -_TANH_CLAMP, _TANH_CLAMP)
    x2 = x * x
    p = x2 * _TANH_P[0] + _TANH_P[1]
    for c in _TANH_P[2:]:
        p = x2 * p + c
    q = x2 * _TANH_Q[0] + _TANH_Q[1]
    for c in _TANH_Q[2:]:
        q = x2 * q + c
    return x * p / q


@mx.custom_function
def fast_tanh(x: mx.array) -> mx.array:
    """tanh from multiplies, adds and one divide, elementwise; any shape.

    MLX's own ``tanh`` kernel is the bottleneck of a small-MLP training step on x86-64 CPUs
    (about 80M elements/s); this rational form fuses under ``mx.compile`` into one kernel
    (about 7x faster) and agrees with tanh to a few float32 ulp.
    """
    return _tanh_rational(x)


@fast_tanh.vjp
def _fast_tanh_vjp(primals: Any, cotangent: mx.array, output: mx.array) -> mx.array:
    # tanh' = 1 - tanh^2 from the saved output: a third of the work of differentiating the
    # rational function (halves an MLP's forward+backward time at batch 4096).
    return cotangent * (1.0 - output * output)


class MLP(nn.Module):
    """``sizes[0] -> ... -> sizes[-1]`` with fast_tanh between layers; x [B, in] -> [B, out]."""

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]

    def __call__(self, x: mx.array) -> mx.array:
        for layer in self.layers[:-1]:
            x = fast_tanh(layer(x))
        return self.layers[-1](x)


class ActorCritic(nn.Module):
    """Separate actor (obs -> logits [B, A]) and critic (obs -> value [B]) networks.

    The seed's shapes: obs_dim -> hidden -> hidden -> n_actions (softmax applied by the
    caller) and obs_dim -> hidden -> hidden -> 1, tanh activations. Sized from ``obs_dim`` so
    any feature set works.
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden: int) -> None:
        super().__init__()
        self.actor = MLP([obs_dim, hidden, hidden, n_actions])
        self.critic = MLP([obs_dim, hidden, hidden, 1])

    def __call__(self, obs: mx.array) -> tuple[mx.array, mx.array]:
        return self.actor(obs), self.critic(obs)[:, 0]


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

    Drawn in numpy so that the initial weights are the same on every MLX device.
    """
    for net, head_gain in ((model.actor, 0.01), (model.critic, 1.0)):
        n = len(net.layers)
        for i, layer in enumerate(net.layers):
            out_dim, in_dim = layer.weight.shape
            gain = head_gain if i == n - 1 else math.sqrt(2.0)
            layer.weight = mx.array(_orthogonal(rng, out_dim, in_dim, gain))
            layer.bias = mx.zeros((out_dim,), dtype=mx.float32)


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
    model: ActorCritic,
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
    """The PPO objective for one minibatch; shapes obs [B, F], everything else [B].

    Returns ``(loss, stats)`` with stats [5] = policy loss, value loss, entropy, approx KL
    (the ``(ratio - 1) - log ratio`` estimator, unbiased and non-negative) and the fraction of
    samples whose ratio was clipped. Pure: a function of its arguments only, so it can be
    passed to ``nn.value_and_grad`` and compiled.
    """
    logits, value = model(obs)
    log_probs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    logp = mx.take_along_axis(log_probs, actions[:, None], axis=-1)[:, 0]
    log_ratio = logp - old_logp
    ratio = mx.exp(log_ratio)
    pg_loss = mx.maximum(
        -advantages * ratio, -advantages * mx.clip(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
    ).mean()
    if clip_vloss:
        v_clipped = old_values + mx.clip(value - old_values, -clip_coef, clip_coef)
        v_loss = 0.5 * mx.maximum((value - returns) ** 2, (v_clipped - returns) ** 2).mean()
    else:
        v_loss = 0.5 * ((value - returns) ** 2).mean()
    entropy = -(mx.exp(log_probs) * log_probs).sum(axis=-1).mean()
    loss = pg_loss - ent_coef * entropy + vf_coef * v_loss
    approx_kl = ((ratio - 1.0) - log_ratio).mean()
    clip_frac = (mx.abs(ratio - 1.0) > clip_coef).astype(mx.float32).mean()
    stats = mx.stack([pg_loss, v_loss, entropy, approx_kl, clip_frac])
    return loss, mx.stop_gradient(stats)


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


class PPO:
    """PPO agent: acting, value estimates, updates and complete state for exact resume.

    ``compile=False`` runs the same functions eagerly (the tests hold the two equal).
    """

    NUMPY_MAX_BATCH = 32
    """Largest batch :meth:`act_deterministic` runs in numpy rather than MLX."""

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
        init_seq, perm_seq, key_seq = np.random.SeedSequence(seed).spawn(3)
        self.model = ActorCritic(obs_dim, n_actions, self.config.hidden)
        init_weights(self.model, np.random.default_rng(init_seq))
        self.normaliser = RunningNorm(obs_dim, clip=self.config.obs_clip)
        self.perm_rng = np.random.default_rng(perm_seq)
        self.key = mx.random.key(int(key_seq.generate_state(1, dtype=np.uint32)[0]))
        # Bias-corrected Adam, as in PyTorch/CleanRL/SB3 (MLX's default leaves it off, which
        # makes the first steps about 3x larger than the learning rate says).
        self.opt_actor = optim.Adam(
            self.config.lr_actor, eps=self.config.adam_eps, bias_correction=True
        )
        self.opt_critic = optim.Adam(
            self.config.lr_critic, eps=self.config.adam_eps, bias_correction=True
        )
        self.opt_actor.init(self.model.actor.trainable_parameters())
        self.opt_critic.init(self.model.critic.trainable_parameters())
        mx.eval(self.model.parameters(), self.opt_actor.state, self.opt_critic.state)
        self._np_layers: tuple[list[tuple[np.ndarray, np.ndarray]], ...] | None = None
        self._build_functions()

    # -- compiled functions ------------------------------------------------------------------

    def _build_functions(self) -> None:
        """(Re)build the act/value/train functions over the current model and optimizers.

        ``mx.compile`` keeps references to the state trees declared as inputs/outputs, so this
        runs again whenever those trees are replaced (:meth:`load_state_dict`).
        """
        cfg = self.config
        model, opt_a, opt_c = self.model, self.opt_actor, self.opt_critic
        loss_and_grad = nn.value_and_grad(model, ppo_loss)

        def act_fn(obs: mx.array, key: mx.array) -> tuple[mx.array, ...]:
            # The PRNG key is an explicit input and output (never mx.random's global state):
            # split, sample with one half, hand back the other as the next key.
            keys = mx.random.split(key)
            logits, value = model(obs)
            actions = mx.random.categorical(logits, key=keys[1])
            log_probs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
            logp = mx.take_along_axis(log_probs, actions[:, None], axis=-1)[:, 0]
            return actions, logp, value, keys[0]

        def forward_fn(obs: mx.array) -> tuple[mx.array, mx.array]:
            return model(obs)

        def train_fn(
            obs: mx.array,
            actions: mx.array,
            logp: mx.array,
            advantages: mx.array,
            returns: mx.array,
            values: mx.array,
            index: mx.array,
        ) -> mx.array:
            """One gradient step on the rows ``index`` [M] of the [B] batch; returns stats [5]."""
            adv = advantages[index]
            if cfg.norm_adv:
                adv = (adv - adv.mean()) / (mx.sqrt(adv.var()) + 1e-8)
            (_, stats), grads = loss_and_grad(
                model,
                obs[index],
                actions[index],
                logp[index],
                adv,
                returns[index],
                values[index],
                clip_coef=cfg.clip_coef,
                ent_coef=cfg.ent_coef,
                vf_coef=cfg.vf_coef,
                clip_vloss=cfg.clip_vloss,
            )
            g_actor, _ = optim.clip_grad_norm(grads["actor"], cfg.max_grad_norm)
            g_critic, _ = optim.clip_grad_norm(grads["critic"], cfg.max_grad_norm)
            opt_a.update(model.actor, g_actor)
            opt_c.update(model.critic, g_critic)
            return stats

        if self.compiled:
            state = [model.state, opt_a.state, opt_c.state]
            self._act_fn: Callable[..., Any] = mx.compile(act_fn, inputs=state)
            self._forward_fn: Callable[..., Any] = mx.compile(forward_fn, inputs=state)
            self._train_fn: Callable[..., Any] = mx.compile(train_fn, inputs=state, outputs=state)
        else:
            self._act_fn, self._forward_fn, self._train_fn = act_fn, forward_fn, train_fn

    # -- acting ------------------------------------------------------------------------------

    def _prepare(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(f"obs must be [N, {self.obs_dim}], got shape {obs.shape}")
        if self.config.norm_obs:
            return self.normaliser.normalise(obs)
        return obs.astype(np.float32, copy=False)

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample actions for raw obs [N, F] -> (actions [N] int64, logp [N], value [N]).

        Draws from the agent's own PRNG key (advanced on every call), so a run is
        reproducible from its seed and resumes exactly from a checkpoint.
        """
        x = mx.array(self._prepare(obs))
        actions, logp, value, self.key = self._act_fn(x, self.key)
        mx.eval(actions, logp, value, self.key)
        return (
            np.array(actions).astype(np.int64),
            np.array(logp, dtype=np.float32),
            np.array(value, dtype=np.float32),
        )

    def forward(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """MLX forward of raw obs [N, F] -> (logits [N, A], value [N]) as numpy float32."""
        logits, value = self._forward_fn(mx.array(self._prepare(obs)))
        mx.eval(logits, value)
        return np.array(logits), np.array(value)

    def value(self, obs: np.ndarray) -> np.ndarray:
        """Critic values of raw obs [N, F] -> [N] float32 (MLX, as in :meth:`act`)."""
        return self.forward(obs)[1]

    def _numpy_layers(self) -> tuple[list[tuple[np.ndarray, np.ndarray]], ...]:
        """Actor and critic weights as numpy (W^T [in, out], b [out]) pairs, cached."""
        if self._np_layers is None:
            self._np_layers = tuple(
                [(np.array(layer.weight).T.copy(), np.array(layer.bias)) for layer in net.layers]
                for net in (self.model.actor, self.model.critic)
            )
        return self._np_layers

    def forward_numpy(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The same forward as :meth:`forward` in plain numpy float32 (no MLX hand-off).

        For small batches (the live tick's 4 markets) this is several times cheaper than a
        round trip through MLX; agrees with it to float32 rounding (tanh differs in the last
        few ulp).
        """
        x = self._prepare(obs)
        out = []
        for layers in self._numpy_layers():
            h = x
            for w, b in layers[:-1]:
                h = np.tanh(h @ w + b)
            w, b = layers[-1]
            out.append(h @ w + b)
        return out[0], out[1][:, 0]

    def act_deterministic(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions for raw obs [N, F] -> [N] int64 (argmax of the policy; eval/live).

        Batches of up to :attr:`NUMPY_MAX_BATCH` rows (the live tick's 4 markets) run the
        numpy forward: about 15 us against about 85 us through MLX for N = 4. Larger batches
        go through MLX, whose timing does not depend on numpy's BLAS thread pool (which jitters
        on a busy 2-core machine).
        """
        if len(obs) > self.NUMPY_MAX_BATCH:
            logits, _ = self.forward(obs)
            return np.argmax(logits, axis=-1).astype(np.int64)
        h = self._prepare(obs)
        layers = self._numpy_layers()[0]
        for w, b in layers[:-1]:
            h = np.tanh(h @ w + b)
        w, b = layers[-1]
        return np.argmax(h @ w + b, axis=-1).astype(np.int64)

    # -- learning ----------------------------------------------------------------------------

    def learning_rates(self) -> tuple[float, float]:
        """(actor, critic) learning rates for the next update (annealed when configured)."""
        cfg = self.config
        frac = 1.0
        if cfg.anneal_lr:
            frac = max(0.0, 1.0 - self.updates / cfg.anneal_updates)
        return cfg.lr_actor * frac, cfg.lr_critic * frac

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
        self.opt_actor.learning_rate = lr_a
        self.opt_critic.learning_rate = lr_c

        flat_obs = rollout.obs.reshape(batch, obs_dim)
        x = mx.array(self._prepare(flat_obs))
        data = (
            x,
            mx.array(rollout.actions.reshape(batch).astype(np.int32)),
            mx.array(rollout.logp.reshape(batch).astype(np.float32)),
            mx.array(advantages.reshape(batch).astype(np.float32)),
            mx.array(returns.reshape(batch).astype(np.float32)),
            mx.array(rollout.values.reshape(batch).astype(np.float32)),
        )
        # Samples beyond a whole number of minibatches sit out one epoch, a different few
        # each epoch; keeping every step the same shape means one compiled graph.
        n_mb = batch // cfg.minibatch_size
        totals = np.zeros(len(METRIC_NAMES))
        steps = 0
        epochs = 0
        for _ in range(cfg.n_epochs):
            perm = self.perm_rng.permutation(batch)[: n_mb * cfg.minibatch_size]
            index = mx.array(perm.reshape(n_mb, cfg.minibatch_size).astype(np.int32))
            epoch_stats = mx.zeros((len(METRIC_NAMES),), dtype=mx.float32)
            for i in range(n_mb):
                epoch_stats = epoch_stats + self._train_fn(*data, index[i])
                # One evaluation per gradient step: it materialises the new parameters and
                # optimizer state so the lazy graph never spans two steps. (Running several
                # steps, or a whole epoch, in one compiled call or one evaluation measured no
                # faster here: the step's own kernels dominate, not the hand-off.)
                mx.eval(epoch_stats, self.model.state, self.opt_actor.state, self.opt_critic.state)
            epoch_stats = np.array(epoch_stats, dtype=np.float64)
            totals += epoch_stats
            steps += n_mb
            epochs += 1
            if cfg.target_kl is not None and epoch_stats[3] / n_mb > cfg.target_kl:
                break

        self.normaliser.update(flat_obs)
        self.updates += 1
        self._np_layers = None
        var_ret = float(np.var(returns))
        explained = (
            float("nan")
            if var_ret == 0.0
            else 1.0 - float(np.var(returns - rollout.values)) / var_ret
        )
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

    def tensors(self) -> dict[str, mx.array]:
        """Weights and optimizer states as flat ``name -> array`` (safetensors-ready).

        Names: ``model.<path>`` (e.g. ``model.actor.layers.0.weight``),
        ``opt_actor.<path>`` and ``opt_critic.<path>`` (Adam ``m``/``v``, ``step``,
        ``learning_rate``).
        """
        out: dict[str, mx.array] = {}
        for prefix, tree in (
            ("model", self.model.parameters()),
            ("opt_actor", self.opt_actor.state),
            ("opt_critic", self.opt_critic.state),
        ):
            out |= {f"{prefix}.{k}": v for k, v in tree_flatten(tree)}
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically: config, tensors (numpy), normaliser,
        PRNG key, minibatch generator state and update count."""
        return {
            "config": dataclasses.asdict(self.config),
            "obs_dim": self.obs_dim,
            "n_actions": self.n_actions,
            "seed": self.seed,
            "updates": self.updates,
            "tensors": {k: np.array(v) for k, v in self.tensors().items()},
            "normaliser": self.normaliser.state_dict(),
            "key": np.array(self.key).tolist(),
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
        arrays = {k: mx.array(np.asarray(given[k])).astype(expected[k].dtype) for k in expected}

        def subtree(prefix: str) -> Any:
            n = len(prefix) + 1
            return tree_unflatten(
                [(k[n:], v) for k, v in arrays.items() if k.startswith(prefix + ".")]
            )

        self.model.update(subtree("model"))
        self.opt_actor.state = subtree("opt_actor")
        self.opt_critic.state = subtree("opt_critic")
        self.normaliser.load_state_dict(state["normaliser"])
        self.key = mx.array(np.asarray(state["key"], dtype=np.uint32))
        self.perm_rng.bit_generator.state = state["perm_rng"]
        self.updates = int(state["updates"])
        self._np_layers = None
        mx.eval(self.model.parameters(), self.opt_actor.state, self.opt_critic.state)
        self._build_functions()
