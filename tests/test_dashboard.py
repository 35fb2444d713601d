"""The Voila dashboard in a real browser: Debian's chromium, driven by Playwright.

Starts Voila on 127.0.0.1 serving notebooks/dashboard.ipynb, opens the run dialog, runs the
expert and weak scripted policies on shop-basics, and waits for the leaderboard and the
trace viewer to show them. A screenshot goes to test-artifacts/.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytest.importorskip("voila")
sync_api = pytest.importorskip("playwright.sync_api")

from workbench.dashboard import voila_environment  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
# Waits only catch hangs: a loaded 2-core machine may take many seconds to answer a click.
PATIENCE = 120_000  # ms
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Voila's page template links Font Awesome from a CDN (its icons are bundled too); the test
# blocks every request that leaves 127.0.0.1 and allows only these to have been tried.
TEMPLATE_CDN = "cdn.jsdelivr.net"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium (.ci/run)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"voila exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"voila did not listen on port {port}")


@pytest.fixture
def voila(tmp_path):
    """`serve_dashboard` (what `workbench dashboard` runs) in its own process group."""
    port = free_port()
    code = f"from workbench.dashboard import serve_dashboard; serve_dashboard('127.0.0.1', {port})"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        env=voila_environment(),  # WORKBENCH_HOME: this test's empty store
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "voila.log").open("w"),
        text=True,
        cwd=tmp_path,
        start_new_session=True,  # Voila and its kernels: stopped together below
    )
    try:
        assert process.stdout.readline().startswith(
            f"Workbench dashboard: http://127.0.0.1:{port}/"
        )
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.stdout.close()


def test_a_run_from_the_dialog_fills_the_leaderboard_and_the_traces(voila):
    ARTIFACTS.mkdir(exist_ok=True)
    left_machine: list[str] = []

    def local_only(route):
        host = urlparse(route.request.url).hostname
        if host in ("127.0.0.1", "localhost") or route.request.url.startswith("data:"):
            route.continue_()
        else:
            left_machine.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.route("**/*", local_only)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(voila, timeout=4 * PATIENCE)

            page.get_by_role("button", name="New run…").click(timeout=4 * PATIENCE)
            dialog = page.locator(".wb-dialog")
            dialog.wait_for(state="visible", timeout=PATIENCE)
            box = page.locator(".wb-overlay").bounding_box()
            assert box["x"] == 0 and box["y"] == 0 and box["width"] >= 1390  # over the page
            assert "New run on shop-basics" in dialog.inner_text()
            dialog.locator("select[multiple]").select_option(["scripted:expert", "scripted:weak"])
            page.screenshot(path=str(ARTIFACTS / "dashboard-run-dialog.png"))
            dialog.get_by_role("button", name="Run").click()
            dialog.wait_for(state="hidden", timeout=PATIENCE)

            board = page.locator(".wb-leaderboard")
            board.get_by_text("scripted:weak").wait_for(timeout=PATIENCE)
            assert "scripted:expert" in board.inner_text()
            assert "100%" in board.inner_text()  # the expert solves every shop task

            rows = page.locator(".wb-runs tr.wb-run")
            page.wait_for_function(
                "document.querySelectorAll('.wb-runs tr.wb-run').length >= 22", timeout=PATIENCE
            )
            assert rows.count() == 22
            rows.first.click()
            call = page.locator(".wb-toolcall").first
            call.wait_for(timeout=PATIENCE)
            assert "search_products" in call.inner_text()
            assert "reward 1.00" in page.locator(".wb-badge").first.inner_text()
            assert page.locator(".js-plotly-plot").count() >= 2  # bars and heatmap drew

            # The page still answers: the dialog opens again and closes.
            page.get_by_role("button", name="New run…").click()
            dialog.wait_for(state="visible", timeout=PATIENCE)
            dialog.get_by_role("button", name="Close").click()
            dialog.wait_for(state="hidden", timeout=PATIENCE)

            page.set_viewport_size({"width": 1400, "height": 2000})  # the trace, too
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()
    assert all(TEMPLATE_CDN in url for url in left_machine), left_machine
