"""The README cannot drift from the code: streams, commands and the CI test command."""

from __future__ import annotations

import re
from pathlib import Path

from polyrl.recording.schema import STREAM_IDS

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def test_readme_lists_every_stream() -> None:
    for stream in STREAM_IDS:
        assert f"`{stream}`" in README, stream


def test_ci_runs_exactly_the_readme_test_command() -> None:
    block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert block is not None
    commands = [ln for ln in block.group(1).splitlines() if ln and not ln.startswith("#")]
    assert len(commands) == 2, commands
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()
    assert "pytest -m 'slow or not slow'" in commands[1]
    # Every CI log ends with the slowest tests, so where the time goes is always on record.
    assert commands[1].endswith(" --durations=25"), commands[1]
    for check in ("ruff check polyrl tests", "ruff format --check polyrl tests", "mypy polyrl"):
        assert f".venv/bin/{check} && " in commands[1], check


def test_readme_has_no_unfilled_markers() -> None:
    from polyrl.sources.polymarket.polybolt import ENV_VARS
    from polyrl.storage import ENV_VARS as STORAGE_ENV_VARS

    text = README
    for name in (*ENV_VARS, *STORAGE_ENV_VARS):  # real environment variables the README must name
        assert name in text, name
        text = text.replace(name, "")
    assert not re.search(r"\b[A-Z]{4,}_[A-Z_]{3,}\b", text), "unfilled README marker"
