"""The sweep spec (parsing, errors, deterministic trials) and the table maths, without Ray."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from polyrl.analysis.bootstrap import cluster_bootstrap
from polyrl.errors import ConfigError
from polyrl.sweep.spec import SweepSpec, load_spec
from polyrl.sweep.table import seeds_interval, sweep_table

HEAD = '[data]\nreplay = "2024-06-01"\nval = "2024-06-02"\n'


def _spec(tmp_path: Path, body: str, **kw: int) -> SweepSpec:
    p = tmp_path / "s.toml"
    p.write_text(HEAD + body)
    return load_spec(p, **kw)


def test_grid_random_and_seeds_expand_deterministically(tmp_path: Path) -> None:
    body = ('[set]\ntrain = { updates = 2 }\n[space]\n"ppo.lr_actor" = [1e-4, 3e-4]\n'
            '"ppo.ent_coef" = { loguniform = [0.01, 0.1] }\n'
            '"features.feature_set" = { choice = ["seed18", "full"] }\n'
            'seeds = [0, 7]\nnum_samples = 3\n')  # fmt: skip
    a = _spec(tmp_path, body)
    b = _spec(tmp_path, body)
    assert [t.name for t in a.trials] == [t.name for t in b.trials]
    trials = a.trials
    assert len(trials) == 2 * 3 * 2
    assert len({t.config_id for t in trials}) == 6
    for t in trials:
        assert 0.01 <= t.params["ppo.ent_coef"] <= 0.1
        assert t.params["features.feature_set"] in ("seed18", "full")
        assert t.overrides["train"] == {"updates": 2, "seed": t.seed}
        assert t.overrides["ppo"]["lr_actor"] == t.params["ppo.lr_actor"]
        assert t.name == f"{t.config_id}-s{t.seed}"
    # --trials overrides num_samples; a grid-only space has one draw per grid point.
    assert len(_spec(tmp_path, body, num_samples=1).trials) == 2 * 1 * 2
    grid_only = _spec(tmp_path, '[space]\n"train.envs" = [2, 4]\nnum_samples = 5\n')
    assert len(grid_only.trials) == 2


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ('[space]\n"ppo.lr_actr" = [1]\n', "lr_actr"),
        ('[space]\n"broker.capital" = [1]\n', "space.broker.capital"),
        ('[space]\n"ppo.lr_actor" = { normal = [0, 1] }\n', "space.ppo.lr_actor"),
        ('[space]\n"ppo.lr_actor" = { loguniform = [0, 1] }\n', "loguniform needs low > 0"),
        ('[space]\n"ppo.lr_actor" = []\n', "empty grid"),
        ("[space]\nseeds = [1, 1]\n", "space.seeds"),
        ("[run]\ncpus = 2\n", "run.cpus"),
        ('[scheduler]\nasha = { metric = "pnl" }\n', "scheduler.asha.metric"),
        ("[set]\nppo = { hidden = -1 }\n", "hidden"),
        ("bogus = 1\n", "bogus"),
    ],
)
def test_spec_errors_name_the_file_and_key(tmp_path: Path, body: str, names: str) -> None:
    with pytest.raises(ConfigError) as e:
        _spec(tmp_path, body)
    assert str(tmp_path / "s.toml") in str(e.value) and names in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_validation_days_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text('[data]\nreplay = "2024-06-01"\n')
    with pytest.raises(ConfigError, match="data.val"):
        load_spec(p)


def _episodes(pnl: list[float], starts: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"pnl": pnl, "start_ns": starts, "outcome": ["Up"] * len(pnl),
                         "outcome_source": ["resolution"] * len(pnl)})  # fmt: skip


def test_interval_resamples_seeds_times_window_starts() -> None:
    # Two seeds over the same two start times, two assets each: clusters = 2 seeds x 2 starts.
    s0 = _episodes([1.0, 2.0, -1.0, 0.0], [0, 0, 900, 900])
    s1 = _episodes([3.0, 1.0, 0.5, -0.5], [0, 0, 900, 900])
    iv = seeds_interval({0: s0, 1: s1})
    assert iv.clusters == 4 and iv.windows == 8
    assert iv.mean == pytest.approx(np.mean([1, 2, -1, 0, 3, 1, 0.5, -0.5]))
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    ref = cluster_bootstrap(np.array([1, 2, -1, 0, 3, 1, 0.5, -0.5]), labels)
    assert (iv.low, iv.high) == (ref.low, ref.high)
    # A window with no outcome is not eligible.
    bad = s0.with_columns(pl.Series("outcome_source", ["missing"] + ["resolution"] * 3))
    assert seeds_interval({0: bad}).windows == 3


def test_table_chooses_on_validation_and_tests_only_the_chosen() -> None:
    lo = _episodes([-1.0, -2.0, 0.0, -1.0], [0, 0, 900, 900])
    hi = _episodes([1.0, 2.0, 0.0, 1.0], [0, 0, 900, 900])
    test = _episodes([0.5, 0.5, -0.5, 1.5], [0, 0, 900, 900])
    configs = [("a", {"ppo.lr_actor": 1e-4}, 2), ("b", {"ppo.lr_actor": 1e-3}, 2)]
    t = sweep_table(configs, {"a": {0: lo, 1: lo}, "b": {0: hi}}, {0: test})
    assert t["config_id"].to_list() == ["a", "b"] and t["chosen"].to_list() == [False, True]
    assert t["trials_done"].to_list() == [2, 1]
    b = t.row(1, named=True)
    assert b["val_pnl_per_window"] == pytest.approx(1.0) and b["val_clusters"] == 2
    assert b["test_pnl_per_window"] == pytest.approx(0.5) and b["test_windows"] == 4
    a = t.row(0, named=True)
    assert a["test_pnl_per_window"] is None and a["test_windows"] is None
    # No validation figure anywhere: nothing is chosen.
    none = sweep_table(configs, {})
    assert not none["chosen"].any() and all(math.isnan(v) for v in none["val_pnl_per_window"])
