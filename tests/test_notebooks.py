"""Every notebook runs top to bottom, headless, on an empty store (nbmake, in a subprocess).

03-the-loop trains the real SmolLM2-135M; with WORKBENCH_NOTEBOOK_FAST=1 it uses a few tasks
and one short epoch (a few minutes on 2 cores).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbmake")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_recipes_and_the_dashboard_are_all_there():
    names = {p.stem for p in NOTEBOOKS}
    assert {
        "01-environments-and-tasks",
        "02-evaluate",
        "03-the-loop",
        "04-inspect-tasks",
        "dashboard",
    } <= names


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_are_stored_without_outputs(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code")


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(notebook, workbench_home, tmp_path):
    if notebook.stem == "03-the-loop":
        pytest.importorskip("trl")
    if notebook.stem == "04-inspect-tasks":
        pytest.importorskip("trl")
        pytest.importorskip("inspect_ai")
    env = {**os.environ, "WORKBENCH_HOME": str(workbench_home), "WORKBENCH_NOTEBOOK_FAST": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbmake",
            "--nbmake-timeout=1200",
            "-p",
            "no:cacheprovider",
            "-q",
            str(notebook),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # pytest's own files go there (nbmake runs kernels in notebooks/)
        env=env,
        timeout=1500,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
