"""Proximal Policy Optimisation in MLX, top to bottom as in CleanRL's ``ppo.py``: the
config, the rollout an update consumes, GAE, the loss, then the agent that acts and updates.

Beside it, each one idea: the actor-critic (:mod:`polyrl.rl.network`: one stacked MLP pair,
its parameter layout and initialisation, and the same forward in numpy), the optimizer
(:mod:`polyrl.rl.adam`: Adam with per-network clipping) and the observation normaliser
(:mod:`polyrl.rl.normaliser`). The rollout loop is the caller's (:mod:`polyrl.rl.train`).

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

Keeping it fast (measure with ``polyrl bench train``; the figures, what each choice was
worth and what was tried and dropped are in the README's Performance section). On a CPU,
MLX runs every primitive of a graph as a task of a few microseconds whatever its size, so
at minibatch 64 a step costs its primitive count (at 4096, its matmuls and its passes over
the [2, B, H] activations). ``mx.compile`` fuses element-wise chains into kernels that are
vectorised only when their inputs are contiguous and no select, min/max or libm call feeds
further operations in them; chains deeper than 11 operations are cut; and a scalar
expression fused into a per-element kernel is recomputed per element. Hence:

- keep the graph small: actor and critic are one stacked network with one [2, P] parameter
  array (and Adam's moments alike), biases ride inside the matmuls, the tanh is
  :func:`~polyrl.rl.network.fast_tanh`, the loss reads actions by one-hot products (no
  gathers or scatters) and shares one softmax's exponentials;
- do on the host what needs no graph: Adam's bias corrections, gathering each minibatch and
  normalising its advantages;
- never wait for a step: each step is ``mx.async_eval``-ed, minibatches are gathered only
  when the loop reaches them, statistics are read once per update (unless ``target_kl``
  needs them), and the normaliser update runs while the last steps do;
- act in numpy for small batches (:attr:`PPO.NUMPY_MAX_BATCH`), in 16-row matmuls that keep
  numpy's OpenBLAS on one thread: the MLX forward pays a thread hand-off per call.

Length: about 700 lines, over the house's 500 on purpose: the algorithm reads in one file
(config, rollout, GAE, loss, agent), and the agent carries what a library needs beyond
CleanRL's script (acting in numpy and MLX, exact-resume state).

Nothing here is Linux-specific: on Apple Silicon the same code runs on Metal/Accelerate.
Determinism: every random draw comes from the run seed (numpy generators for initial weights,
minibatch order and action sampling), so two runs with one seed give bit-identical weights on
one machine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

# Importing this module runs polyrl/rl/__init__.py first, which loads the BLAS (mlx_setup)
# before the first `import mlx`.
import mlx.core as mx
import numpy as np

from polyrl.rl.adam import (
    adam_corrections,
    adam_update,
    load_optimizer_tensors,
    optimizer_tensors,
)
from polyrl.rl.network import (
    NUMPY_CHUNK,
    ActorCritic,
    augment,
    forward_numpy,
    greedy_numpy,
    init_weights,
)
from polyrl.rl.normaliser import RunningNorm

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
# Rollout: what the agent collected


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
    logits, value = ActorCritic.forward(params, obs)
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
# The agent: act, update, state


def _epoch_sum(stats: mx.array) -> np.ndarray:
    """An epoch's step statistics [S, 5] summed step after step in float32, as float64."""
    return np.array(stats).sum(axis=0, dtype=np.float32).astype(np.float64)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """float64 log-probabilities of logits [N, A]."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class PPO:
    """PPO agent: acting, value estimates, updates and complete state for exact resume.

    ``compile=False`` runs the same functions eagerly (the tests hold the two equal).
    """

    NUMPY_CHUNK = NUMPY_CHUNK
    """Rows per numpy matmul (:data:`polyrl.rl.network.NUMPY_CHUNK`)."""
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
            return ActorCritic.forward(params, obs)

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
        """The same forward as :meth:`forward` in plain numpy float32 (no MLX hand-off;
        :func:`~polyrl.rl.network.forward_numpy`).

        For small batches (the live tick's 4 markets, the rollout's envs) this is cheaper
        than a round trip through MLX; agrees with it to float32 rounding.
        """
        return forward_numpy(self._numpy_stacked(), self._prepare(obs))

    def act_deterministic(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions for raw obs [N, F] -> [N] int64 (argmax of the policy; eval/live).

        Batches of up to :attr:`NUMPY_CHUNK` rows (the live tick's 4 markets) run the
        actor alone in numpy (:func:`~polyrl.rl.network.greedy_numpy`). Larger batches take
        the path of :meth:`act`.
        """
        if len(obs) > self.NUMPY_CHUNK:
            logits, _ = self._logits_values(obs)
            return np.argmax(logits, axis=-1).astype(np.int64)
        return greedy_numpy(self._numpy_layers()[0], self._prepare(obs))

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
        m, v = np.array(self.opt_state["m"]), np.array(self.opt_state["v"])
        return out | optimizer_tensors(lay, m, v, step=self.adam_step, lrs=self._lrs)

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
        m, v, step, lrs = load_optimizer_tensors(lay, given, list(expected))
        self.model.theta = mx.array(lay.flatten(model))
        self.opt_state["m"] = mx.array(m)
        self.opt_state["v"] = mx.array(v)
        self.adam_step = step
        self._lrs = lrs
        self.normaliser.load_state_dict(state["normaliser"])
        self.sample_rng.bit_generator.state = state["sample_rng"]
        self.perm_rng.bit_generator.state = state["perm_rng"]
        self.updates = int(state["updates"])
        self._np_layers = None
        self._np_stacked = None
        self._mx_params = None
        mx.eval(self.model.parameters(), self.opt_state)
        self._build_functions()
