"""Config files: defaults mirror the dataclasses; unknown or mistyped keys are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from polyrl.config import SECTION_NAMES, default_config_path, register_sections
from polyrl.errors import ConfigError
from polyrl.sections import Config, load_config


def test_default_toml_is_exactly_the_dataclass_defaults() -> None:
    path = default_config_path()
    assert path is not None and path.name == "default.toml"
    assert load_config(path) == Config()


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "text,needle",
    [
        (
            "[sources]\nopen_interest_pol_s = 3\n",
            r"c\.toml: sources\.open_interest_pol_s: unknown key",
        ),
        ("[sim]\njump_sd = 'big'\n", r"c\.toml: sim\.jump_sd: expected a number"),
        ("[recording]\nfsync = 1\n", r"c\.toml: recording\.fsync: expected true or false"),
        (
            "[sources]\nspot_depth_levels = 7\n",
            r"sources\.spot_depth_levels: 7 is not one of 5, 10, 20",
        ),
        ("[sources]\nwatchdog_s = -1\n", r"sources.*watchdog_s must be > 0"),
        ("assets = ['btc', 'doge']\n", r"assets"),
        ("[nonsense]\nx = 1\n", r"c\.toml: nonsense: unknown key 'nonsense'"),
        ("[sources\n", r"invalid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_config(_write(tmp_path, text))


def test_file_then_overrides(tmp_path: Path) -> None:
    p = _write(tmp_path, 'assets = ["btc", "eth"]\n[sources]\nopen_interest_poll_s = 3\n')
    cfg = load_config(p, {"assets": ["sol"]})
    assert cfg.assets == ("sol",)
    assert cfg.sources.open_interest_poll_s == 3.0
    assert cfg.sources.ws_ping_s == Config().sources.ws_ping_s


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found: .*nope.toml"):
        load_config(tmp_path / "nope.toml")


def test_ppo_toml_is_exactly_the_ppo_defaults() -> None:
    from polyrl.config import default_config_paths, read_toml
    from polyrl.rl.ppo import PPOConfig

    (ppo,) = [p for p in default_config_paths() if p.name == "ppo.toml"]
    data = read_toml(ppo)
    assert set(data) == {"ppo"}
    assert load_config().ppo == PPOConfig()
    assert load_config(None, {"ppo": {"ent_coef": 0.01}}).ppo.ent_coef == 0.01


def test_a_partial_config_file_overrides_only_what_it_names(tmp_path: Path) -> None:
    p = _write(tmp_path, "[ppo]\nlr_actor = 0.001\n[train]\nenvs = 3\n")
    cfg = load_config(p)
    assert cfg.ppo.lr_actor == 0.001 and cfg.ppo.lr_critic == Config().ppo.lr_critic
    assert cfg.train.envs == 3 and cfg.sources == Config().sources
    with pytest.raises(ConfigError, match=r"c\.toml: ppo\.lr_actr: unknown key"):
        load_config(_write(tmp_path, "[ppo]\nlr_actr = 0.001\n"))


def test_the_loader_names_its_sections_without_importing_their_parts() -> None:
    """``polyrl.config`` is on the ground floor: a fresh interpreter that imports it has
    imported no component, and building a Config before :mod:`polyrl.sections` registered
    the sections is a ConfigError that says what to import, not a partial config."""
    import dataclasses
    import subprocess
    import sys

    assert tuple(f.name for f in dataclasses.fields(Config)) == ("assets", *SECTION_NAMES)
    code = (
        "import sys\n"
        "from polyrl.config import Config, load_config\n"
        "from polyrl.errors import ConfigError\n"
        "parts = sorted(m for m in sys.modules if m.startswith('polyrl.')\n"
        "               and m not in ('polyrl.config', 'polyrl.errors', 'polyrl.events'))\n"
        "print('imported:', parts)\n"
        "for make in (Config, load_config):\n"
        "    try:\n"
        "        make()\n"
        "    except ConfigError as e:\n"
        "        print('error:', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "imported: []"
    assert len(out) == 3, out
    for line in out[1:]:
        assert line.startswith("error: config sections sources, recording, sim,"), line
        assert "import polyrl.sections" in line


def test_a_section_is_registered_once() -> None:
    from polyrl.rl.ppo import PPOConfig
    from polyrl.rl.train import TrainConfig

    register_sections(ppo=PPOConfig)  # the same class again: a no-op
    with pytest.raises(ValueError, match="config section 'ppo' is already PPOConfig"):
        register_sections(ppo=TrainConfig)
    with pytest.raises(ValueError, match="unknown config section 'nope'"):
        register_sections(nope=PPOConfig)
