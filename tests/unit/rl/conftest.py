"""Runs before the test modules here: load the BLAS before any of them imports mlx.

isort puts ``import mlx.core`` (third party) above ``from polyrl...`` (first party), so a test
module would otherwise import mlx first and MLX would keep its slow bundled BLAS for the whole
session (polyrl.rl.mlx_setup warns when that happens).
"""

import polyrl.rl  # noqa: F401
