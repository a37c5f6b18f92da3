"""Unit tests build Configs directly: every config section is registered first, as the
composition roots (the CLI, replay, live) do by importing :mod:`polyrl.sections`."""

import polyrl.sections  # noqa: F401
