"""``--strategy module:Name``: the loader refuses every malformed strategy with a line naming
what is wrong, and loads and runs a valid one (the README's own example among them)."""

from __future__ import annotations

import itertools
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from polyrl.errors import ConfigError
from polyrl.features.sets import feature_set
from polyrl.policies.base import BUY, HOLD, SELL
from polyrl.policies.plugin import PluginPolicy, is_spec, label, load_strategy, parse_spec

REPO = Path(__file__).resolve().parents[3]
FSET = feature_set("seed18")
_ids = itertools.count()

VALID = """
import numpy as np

class Seeded:
    name = "seeded"

    def __init__(self, feature_set, seed):
        self.dim = feature_set.dim
        self.seed = seed

    def act(self, obs, tradable):
        assert obs.shape[1] == self.dim
        return np.where(tradable, 1, 0)
"""


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> str:
    """A module holding ``body`` on sys.path; returns its (fresh, unique) name."""
    name = f"user_strategy_{next(_ids)}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _refused(spec: str) -> str:
    with pytest.raises(ConfigError) as e:
        load_strategy(spec, FSET, seed=1)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("--strategy ") and spec in msg
    return msg


def test_a_valid_class_is_constructed_with_what_it_declares_and_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = _module(tmp_path, monkeypatch, VALID)
    pol = load_strategy(f"{mod}:Seeded", FSET, seed=7)
    assert isinstance(pol, PluginPolicy) and pol.name == "seeded"
    assert pol.inner.seed == 7 and pol.inner.dim == FSET.dim
    obs = np.zeros((4, FSET.dim), np.float32)
    out = pol.act(obs, np.array([True, False, True, False]))
    assert out.dtype == np.int64 and out.tolist() == [BUY, HOLD, BUY, HOLD]
    assert pol.source["class"] == "Seeded" and len(pol.source["sha256"]) == 64
    assert pol.source["file"] == str((tmp_path / f"{mod}.py").resolve())


def test_the_file_form_loads_the_same_class(tmp_path: Path) -> None:
    f = tmp_path / "mine.py"
    f.write_text(VALID)
    pol = load_strategy(f"{f}:Seeded", FSET, seed=2)
    assert pol.name == "seeded" and pol.inner.seed == 2


def test_spec_syntax() -> None:
    assert parse_spec("pkg.mod:Name") == ("pkg.mod", "Name", False)
    assert parse_spec("a/b c/x.py:Name") == ("a/b c/x.py", "Name", True)
    assert is_spec("m:N") and not is_spec("momentum")
    assert label("pkg.mod:Name") == "Name" and label("momentum") == "momentum"
    for bad in (":Name", "mod:", "mod:1x", "mod:class", "my-mod:Name", "pkg..mod:Name"):
        msg = _refused(bad)
        assert "package.module:Name" in msg, msg


def test_module_not_found_names_the_module() -> None:
    msg = _refused("no_such_strategy_module:X")
    assert "module 'no_such_strategy_module' not found" in msg and "PYTHONPATH" in msg


def test_a_missing_dependency_is_told_apart_from_a_missing_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = _module(tmp_path, monkeypatch, "import not_installed_dependency_xyz\n")
    msg = _refused(f"{mod}:X")
    assert f"importing module {mod!r} failed" in msg and "not_installed_dependency_xyz" in msg


def test_a_file_that_does_not_exist_or_fails_to_import(tmp_path: Path) -> None:
    assert f"file {tmp_path / 'nope.py'} not found" in _refused(f"{tmp_path / 'nope.py'}:X")
    bad = tmp_path / "broken.py"
    bad.write_text("def oops(:\n")
    msg = _refused(f"{bad}:X")
    assert f"importing file {bad} failed: SyntaxError" in msg


@pytest.mark.parametrize(
    ("body", "attr", "needle"),
    [
        (VALID, "Nope", "has no attribute 'Nope'"),
        ("def f(): pass\n", "f", "'f' is a function, not a class"),
        ("X = 3\n", "X", "'X' is a int, not a class"),
        ("class P:\n    name = 'p'\n", "P", "class P has no method `act`"),
        ("class P:\n    name = 'p'\n    act = 3\n", "P", "`act` of class P is not a method"),
        (
            "class P:\n    name = 'p'\n    def act(self, obs): return obs\n",
            "P",
            "P.act(obs) cannot be called as act(obs, tradable)",
        ),
        (
            "class P:\n    def act(self, obs, tradable): return tradable\n",
            "P",
            "class P has no attribute `name`",
        ),
        (
            "class P:\n    name = ''\n    def act(self, obs, tradable): return tradable\n",
            "P",
            "P.name is '', expected a non-empty str",
        ),
        (
            "class P:\n    name = 'p'\n    def __init__(self, window): pass\n"
            "    def act(self, obs, tradable): return tradable\n",
            "P",
            "P() requires argument 'window', which polyrl does not pass",
        ),
        (
            "class P:\n    name = 'p'\n    def __init__(self, feature_set):\n"
            "        feature_set.index('no_such_feature')\n"
            "    def act(self, obs, tradable): return tradable\n",
            "P",
            "P() failed: ConfigError:",
        ),
    ],
)
def test_each_way_a_class_can_be_wrong_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, attr: str, needle: str
) -> None:
    mod = _module(tmp_path, monkeypatch, body)
    msg = _refused(f"{mod}:{attr}")
    assert needle in msg, msg


@pytest.mark.parametrize(
    ("ret", "needle"),
    [
        ("np.zeros(3, np.int64)", "returned shape (3,), expected (2,)"),
        ("np.array([0, 5])", "returned 5, expected 0 HOLD, 1 BUY or 2 SELL"),
        ("np.array([0.5, 1.0])", "returned dtype float64"),
    ],
)
def test_a_bad_action_array_stops_the_run_with_a_named_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ret: str, needle: str
) -> None:
    body = f"import numpy as np\nclass P:\n    name = 'p'\n    def act(self, o, t): return {ret}\n"
    mod = _module(tmp_path, monkeypatch, body)
    pol = load_strategy(f"{mod}:P", FSET)
    with pytest.raises(ConfigError, match=re.escape(needle)):
        pol.act(np.zeros((2, FSET.dim), np.float32), np.ones(2, bool))


def test_the_readme_example_runs(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    m = re.search(r"<!-- strategy-example -->\n```python\n(.*?)```", readme, re.S)
    assert m, "README lost its strategy example"
    f = tmp_path / "trend.py"
    f.write_text(m.group(1))
    pol = load_strategy(f"{f}:Trend", FSET)
    obs = np.zeros((3, FSET.dim), np.float32)
    obs[:, FSET.index("time_remaining")] = 0.5
    obs[:, FSET.index("returns_1m")] = [0.01, -0.01, 0.0]
    assert pol.act(obs, np.ones(3, bool)).tolist() == [BUY, SELL, HOLD]
    obs[:, FSET.index("time_remaining")] = 0.05  # late in the window: hold
    assert pol.act(obs, np.ones(3, bool)).tolist() == [HOLD, HOLD, HOLD]
