"""The notebooks run top to bottom on the embedded sample, so they cannot rot.

Each is executed by a real Jupyter kernel (nbclient) from ``notebooks/``, as a person would
run it, with its parameters pointed at the sample the CLI tests share (built in a temporary
directory, never in the repository) and a temporary runs directory (the three share it:
notebook 03 reuses notebook 02's training run). Any cell that raises fails the test.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOTEBOOKS = REPO / "notebooks"
NAMES = ("01_recordings", "02_training_run", "03_compare_strategies")


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notebook-runs")


def test_the_notebooks_are_committed_without_outputs() -> None:
    import nbformat

    found = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert found == list(NAMES)
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code, name
        for c in code:
            assert c.outputs == [] and c.execution_count is None, (name, c.source[:60])
        tags = [c.metadata.get("tags", []) for c in code]
        assert ["parameters"] in tags, f"{name} has no cell tagged 'parameters'"
        source = "\n".join(c.source for c in code)
        assert "polyrl.analysis" in source or "from polyrl import analysis" in source, name


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name: str, runs_dir: Path, cli_workdir: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    # The sample is built where the CLI tests build it, never in the repository.
    recordings = cli_workdir / "recordings"
    injected = f"RECORDINGS = {str(recordings)!r}\nRUNS = {str(runs_dir)!r}\n"
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(injected))
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the cell on any error
    took = time.perf_counter() - t0
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2, f"{name}: expected figures, got {len(images)}"
    tables = [o for o in outputs if "text/html" in o.get("data", {})]
    assert tables, f"{name}: expected tables"
    print(f"{name}: executed in {took:.1f} s")
