"""What a new user tries first: the version, and the recordings folder of a fresh clone."""

from __future__ import annotations

import subprocess
from importlib.metadata import version

import pytest

from .conftest import REPO, run_cli

pytestmark = pytest.mark.integration


def test_version_prints_the_package_version() -> None:
    res = run_cli("--version")
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"polyrl {version('polyrl')}\n"
    assert "--version" in run_cli("--help").stdout


def test_recordings_folder_is_in_the_clone_with_a_readme() -> None:
    readme = REPO / "recordings" / "README.md"
    text = readme.read_text()
    for what in ("date=YYYY-MM-DD/hour=HH", ".wal/", ".cache/", "sample/", "--out", "ignores"):
        assert what in text, what
    # Git keeps the README and ignores the data beside it.
    res = subprocess.run(
        ["git", "check-ignore", "recordings/README.md", "recordings/x/part-1.parquet"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    if res.returncode == 128:
        pytest.skip("not a git checkout")
    assert res.stdout.split() == ["recordings/x/part-1.parquet"]
