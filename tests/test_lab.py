"""The leaderboard's charts in JupyterLab itself, in a real browser: they have their data
after the cells run, and again after the page is reloaded (the views are made anew from the
kernel's widget state; a chart that streamed its figure as edits came back empty).

A JupyterLab server on 127.0.0.1 with a notebook that evaluates two scripted models and
shows a Leaderboard; Debian's chromium driven by Playwright runs it, saves it, reloads the
page and reads the data Plotly drew.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jupyterlab")
sync_api = pytest.importorskip("playwright.sync_api")

from test_dashboard import CHROMIUM, CHROMIUM_ARGS, PATIENCE, chart, free_port, wait_for_port  # noqa: E402

import workbench  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium (.ci/run)"),
]

CELLS = [
    "import workbench\n"
    "from workbench.widgets import Leaderboard\n"
    'job = await workbench.evaluate("shop-basics", ["scripted:expert", "scripted:weak"], '
    "group_size=2)",
    'board = Leaderboard()\nboard.show("shop-basics")\nboard',
]


def notebook(path: Path) -> None:
    cells = [
        {"cell_type": "code", "metadata": {}, "source": s, "outputs": [], "execution_count": None}
        for s in CELLS
    ]
    path.write_text(
        json.dumps(
            {
                "cells": cells,
                "metadata": {
                    "kernelspec": {"name": "python3", "display_name": "Python 3"},
                    "language_info": {"name": "python"},
                },
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )


@pytest.fixture
def lab(tmp_path):
    root = tmp_path / "lab"
    root.mkdir()
    notebook(root / "board.ipynb")
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", "--allow-root", "--ServerApp.token=", "--ServerApp.password=",
         f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "lab.log").open("w"),
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_leaderboard_charts_have_their_data_after_a_reload_in_jupyterlab(lab):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(PATIENCE)
            page.goto(f"{lab}lab/tree/board.ipynb?reset", timeout=4 * PATIENCE)
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            # Run only once the kernel is connected and idle (the status bar says so): "Run
            # All Cells" clicked while it was still connecting ran nothing.
            page.get_by_text("| Idle").first.wait_for()
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            ran = chart(page, ".wb-bars")
            page.keyboard.press("Control+s")  # the outputs (the widgets' views) are saved
            page.wait_for_function(
                "() => !document.querySelector('.jp-mod-dirty')", timeout=PATIENCE
            )
            page.reload(timeout=4 * PATIENCE)
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            reloaded = chart(page, ".wb-bars")
            heat = chart(page, ".wb-heat")
        finally:
            browser.close()
    board = workbench.load_job(_only_job()).leaderboard().set_index("model")["success_rate"]
    for drawn in (ran, reloaded):
        assert sorted(drawn["x"]) == sorted(board.index)
        assert dict(zip(drawn["x"], drawn["y"], strict=True)) == pytest.approx(board.to_dict())
    assert sorted(heat["y"]) == sorted(board.index) and len(heat["x"]) == 11


def _only_job() -> str:
    (job_id,) = workbench.get_store().jobs()["id"]
    return job_id
