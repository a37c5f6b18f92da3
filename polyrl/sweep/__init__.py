"""``polyrl sweep``: a search over PPO settings, feature sets, envs and seeds on Ray Tune.

:mod:`~polyrl.sweep.spec` reads the spec and names its trials (no Ray),
:mod:`~polyrl.sweep.table` computes the table of configurations (no Ray), and
:mod:`~polyrl.sweep.run` runs the trials on Ray Tune and writes the sweep's folder.
"""
