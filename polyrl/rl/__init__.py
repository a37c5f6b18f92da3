"""Reinforcement learning: MLX PPO, checkpoints, a toy environment and benchmarks.

:mod:`polyrl.rl.mlx_setup` is imported first, before anything imports ``mlx``, so that on
Linux MLX's matmuls run on an optimised BLAS (see that module). Import ``polyrl.rl`` (or any
submodule) before ``mlx`` to get it; :func:`blas_status` tells what was loaded.
"""

from polyrl.rl.mlx_setup import BlasStatus, blas_status  # noqa: I001  (must run before mlx)

__all__ = ["BlasStatus", "blas_status"]
