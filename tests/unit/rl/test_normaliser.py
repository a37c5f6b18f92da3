"""The observation normaliser: running statistics equal to the batch's, clipping, state."""

from __future__ import annotations

import numpy as np
import pytest

from polyrl.rl.normaliser import RunningNorm


def test_running_norm_matches_batch_statistics_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, (n, 5)) for n in (1, 7, 100, 33)]
    norm = RunningNorm(5, clip=10.0)
    for c in chunks:
        norm.update(c)
    allx = np.concatenate(chunks)
    np.testing.assert_allclose(norm.mean, allx.mean(0), rtol=1e-12)
    np.testing.assert_allclose(norm.var, allx.var(0), rtol=1e-10)
    assert norm.count == len(allx)
    z = norm.normalise(allx)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-5)
    assert np.abs(norm.normalise(np.full((1, 5), 1e6))).max() == 10.0  # clipped
    other = RunningNorm(5)
    other.load_state_dict(norm.state_dict())
    np.testing.assert_array_equal(other.normalise(allx), z)
    with pytest.raises(ValueError, match="shape"):
        RunningNorm(4).load_state_dict(norm.state_dict())
