"""Reinforcement learning: MLX PPO, checkpoints, a toy environment and benchmarks.

The modules, algorithm first: ``ppo`` (PPO top to bottom: config, rollout, GAE, loss, the
agent), beside it ``network`` (the actor-critic), ``adam`` (the optimizer) and ``normaliser``
(observation statistics); ``episodes`` (the recorded episodes a set of days holds), ``env``
(the vectorised replay environment over them) and ``accounts`` (its trades and episodes
rows); ``train`` (the training run), ``checkpoint``, ``online`` (updates during live paper
trading), ``toy`` (a trivial environment), ``bench`` and ``mlx_setup``.

:mod:`polyrl.rl.mlx_setup` is imported first, before anything imports ``mlx``, so that on
Linux MLX's matmuls run on an optimised BLAS (see that module). Import ``polyrl.rl`` (or any
submodule) before ``mlx`` to get it; :func:`blas_status` tells what was loaded.
"""

from polyrl.rl.mlx_setup import BlasStatus, blas_status  # noqa: I001  (must run before mlx)

__all__ = ["BlasStatus", "blas_status"]
