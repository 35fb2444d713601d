"""The Voila dashboard in a real browser: Debian's chromium, driven by Playwright.

Voila serves notebooks/dashboard.ipynb on 127.0.0.1; every request that would leave the
machine is blocked (only Voila's template CDN may have been tried). The tests:

- run the expert and weak scripted policies from the run dialog and watch the leaderboard
  and the trace explorer fill;
- read the data the charts plotted (the ``data`` of each Plotly div) on a fresh page, after
  a reload and in a second browser context: a fresh Voila page is a fresh set of widget
  views (tests/test_lab.py does the same after a reload in JupyterLab itself);
- drive the explorer by clicking: filter, failures only, search, sort, a row, the compare
  view, and a heatmap cell that opens its traces;
- compute text contrast from the page's styles in the light and the dark theme (WCAG 2
  ratio, at least 4.5) and keep screenshots of both;
- fit a 40-task heatmap in the page without horizontal scrolling;
- check that a closed page's kernel is shut down.

Screenshots go to test-artifacts/.
"""

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytest.importorskip("voila")
sync_api = pytest.importorskip("playwright.sync_api")

from conftest import TOY  # noqa: E402

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
WIDE = "wide-40"  # a taskset of 40 tasks with long names

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


class Server:
    """`serve_dashboard` (what `workbench dashboard` runs) in its own process group."""

    def __init__(self, home: Path, log: Path, **options):
        self.port = free_port()
        code = (
            "from workbench.dashboard import serve_dashboard; "
            f"serve_dashboard('127.0.0.1', {self.port}, **{options!r})"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code],
            env={**voila_environment(), "WORKBENCH_HOME": str(home)},
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
            cwd=home.parent,
            start_new_session=True,  # Voila and its kernels: stopped together below
        )
        self.url = f"http://127.0.0.1:{self.port}/"
        printed = self.process.stdout.readline()
        assert printed.startswith(f"Workbench dashboard: {self.url}?token="), printed
        self.token = printed.split("?token=")[1].split()[0]
        wait_for_port(self.port, self.process)

    def at(self, query: str = "") -> str:
        """The page's address with the token a browser brings (the printed address)."""
        return f"{self.url}?token={self.token}" + (f"&{query}" if query else "")

    def kernels(self) -> int:
        """Kernel processes Voila has running."""
        import psutil

        children = psutil.Process(self.process.pid).children(recursive=True)
        return sum("ipykernel" in " ".join(p.cmdline()) for p in children if p.is_running())

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process.stdout.close()


@pytest.fixture
def voila(tmp_path):
    """A dashboard on this test's empty store."""
    server = Server(Path(os.environ["WORKBENCH_HOME"]), tmp_path / "voila.log")
    try:
        yield server.at()
    finally:
        server.stop()


def fill_wide_taskset(store) -> None:
    """A 40-task taskset with long task names and a finished two-model job on it, written
    straight into the store."""
    import workbench
    from workbench.store import traces_table

    toy = workbench.resolve_environment(TOY)
    note = "a rather long note that makes a long task name"
    tasks = [toy.task("count", target=t, note=f"{note} {t}") for t in range(1, 41)]
    taskset = workbench.Taskset(WIDE, tasks)
    store.save_taskset(taskset)
    job = workbench.create_job(taskset, ["scripted:expert", "scripted:clumsy"], store=store)
    now, rows = time.time(), []
    for i, task in enumerate(tasks):
        for model in job.config.models:
            good = model == "scripted:expert" or i % 3 == 0
            rows.append(
                {
                    "id": uuid.uuid4().hex, "job_id": job.id, "taskset": WIDE, "task": task.slug,
                    "model": model, "group_index": 0, "reward": float(good), "success": good,
                    "stop_reason": "done", "steps": 2, "started_at": now, "ended_at": now + 0.1,
                    "data": json.dumps({"messages": [{"role": "user", "content": "count"}]}),
                }
            )  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(traces_table.insert(), rows)
    store.set_job_status(job.id, "finished")


@pytest.fixture(scope="module")
def stocked(tmp_path_factory):
    """A dashboard on a store with a finished job (expert and weak, group size 2, on
    shop-basics) and a 40-task taskset; shared by the tests that only read."""
    import workbench
    from workbench.store import Store

    home = tmp_path_factory.mktemp("stocked") / "wb"
    store = Store(f"sqlite:///{home / 'workbench.db'}")
    job = asyncio.run(
        workbench.evaluate(
            "shop-basics", ["scripted:expert", "scripted:weak"], store=store, group_size=2
        )
    )
    fill_wide_taskset(store)
    expected = {
        "job": job.id,
        "board": job.leaderboard()[["model", "success_rate"]].to_dict("list"),
        "per_task": job.per_task()[["model", "task", "success_rate"]].to_dict("records"),
    }
    store.engine.dispose()
    server = Server(home, home.parent / "voila.log")
    try:
        yield server, expected
    finally:
        server.stop()


class Browser:
    """Chromium with every request off 127.0.0.1 blocked (and noted)."""

    def __init__(self, pw):
        self.browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.left_machine: list[str] = []
        self.errors: list[str] = []

    def page(self, url: str, width: int = 1400, height: int = 1000, sockets=None):
        context = self.browser.new_context(
            viewport={"width": width, "height": height}, accept_downloads=True
        )
        page = context.new_page()
        page.route("**/*", self._local_only)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        if sockets is not None:  # the page's websockets: its kernel's address
            page.on("websocket", lambda ws: sockets.append(ws.url))
        page.goto(url, timeout=4 * PATIENCE)
        return page

    def _local_only(self, route):
        host = urlparse(route.request.url).hostname
        if host in ("127.0.0.1", "localhost") or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.left_machine.append(route.request.url)
            route.abort()

    def close(self):
        self.browser.close()
        assert all(TEMPLATE_CDN in url for url in self.left_machine), self.left_machine
        assert not self.errors, self.errors


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as pw:
        b = Browser(pw)
        try:
            yield b
        finally:
            b.close()


# What each chart plotted, read from the Plotly div (the data Plotly drew, not the widget's).
CHART_DATA = """(selector) => {
  const div = document.querySelector(selector + " .js-plotly-plot");
  if (!div || !div.data || !div.data.length) return null;
  const t = div.data[0];
  const list = (v) => (v ? Array.from(v, (x) => (x && x.length !== undefined && typeof x !== "string" ? Array.from(x) : x)) : []);
  return { x: list(t.x), y: list(t.y), z: list(t.z), width: div.clientWidth };
}"""


def chart(page, selector: str) -> dict:
    page.wait_for_function(
        f"(() => {{ const d = ({CHART_DATA})({json.dumps(selector)}); "
        "return d && d.x.length > 0; })()",
        timeout=PATIENCE,
    )
    return page.evaluate(CHART_DATA, selector)


def explorer_rows(page) -> list[list[str]]:
    return page.evaluate(
        """() => [...document.querySelectorAll('.wb-explorer .wb-tablebox tr.wb-row')]
                 .map(tr => [...tr.cells].map(td => td.textContent))"""
    )


def wait_rows(page, predicate: str) -> list[list[str]]:
    """Wait until the explorer's rows satisfy a JS predicate over `rows` (lists of cells)."""
    page.wait_for_function(
        "(() => { const rows = [...document.querySelectorAll("
        "'.wb-explorer .wb-tablebox tr.wb-row')].map(tr => [...tr.cells].map(td => td.textContent));"
        f" return {predicate}; }})()",
        timeout=PATIENCE,
    )
    return explorer_rows(page)


# -- a run from the dialog --------------------------------------------------------------------


def test_a_run_from_the_dialog_fills_the_leaderboard_and_the_traces(voila, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.page(voila)
    page.get_by_role("button", name="New run…").click(timeout=4 * PATIENCE)
    dialog = page.locator(".wb-dialog")
    dialog.wait_for(state="visible", timeout=PATIENCE)
    box = page.locator(".wb-overlay").bounding_box()
    assert box["x"] == 0 and box["y"] == 0 and box["width"] >= 1390  # over the page
    assert "New run on shop-basics" in dialog.inner_text()
    models = dialog.locator("select[multiple]").first
    assert "scripted:slow" not in models.inner_text()  # only models that can play shop tasks
    models.select_option(["scripted:expert", "scripted:weak"])
    dialog.get_by_text("11 tasks × 2 models × group 1 = 22 runs").wait_for(timeout=PATIENCE)
    page.screenshot(path=str(ARTIFACTS / "dashboard-run-dialog.png"))
    dialog.get_by_role("button", name="Run").click()
    dialog.wait_for(state="hidden", timeout=PATIENCE)

    board = page.locator(".wb-leaderboard")
    board.get_by_text("scripted:weak").wait_for(timeout=PATIENCE)
    assert "scripted:expert" in board.inner_text()
    assert "100%" in board.inner_text()  # the expert solves every shop task

    rows = wait_rows(page, "rows.length >= 22 && rows.every(r => r[3] !== 'running')")
    assert len(rows) == 22
    page.locator(".wb-explorer .wb-tablebox tr.wb-row").first.click()
    call = page.locator(".wb-toolcall").first
    call.wait_for(timeout=PATIENCE)
    assert "search_products" in call.inner_text()
    assert "reward 1.00" in page.locator(".wb-explorer .wb-badge").first.inner_text()
    bars = chart(page, ".wb-bars")
    assert bars["x"] == ["scripted:expert", "scripted:weak"] and bars["y"][0] == 1.0

    # The page still answers: the dialog opens again and closes.
    page.get_by_role("button", name="New run…").click()
    dialog.wait_for(state="visible", timeout=PATIENCE)
    dialog.get_by_role("button", name="Close").click()
    dialog.wait_for(state="hidden", timeout=PATIENCE)

    page.set_viewport_size({"width": 1400, "height": 2000})  # the trace, too
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)


# -- charts that always render ----------------------------------------------------------------


def test_charts_have_their_data_on_a_fresh_load_after_a_reload_and_in_a_new_browser(
    stocked, browser
):
    server, expected = stocked
    board = expected["board"]
    tasks = sorted({r["task"] for r in expected["per_task"]})
    timings = {}
    started = time.monotonic()
    page = browser.page(server.at())
    for attempt in ("fresh", "reload", "new browser context"):
        if attempt == "reload":
            started = time.monotonic()
            page.reload(timeout=4 * PATIENCE)
        elif attempt == "new browser context":
            started = time.monotonic()
            page = browser.page(server.at())
        bars, heat = chart(page, ".wb-bars"), chart(page, ".wb-heat")
        timings[attempt] = round(time.monotonic() - started, 2)
        assert bars["x"] == board["model"], attempt
        assert bars["y"] == pytest.approx(board["success_rate"]), attempt
        assert heat["y"] == board["model"] and sorted(heat["x"]) == tasks, attempt
        for row in expected["per_task"]:
            z = heat["z"][heat["y"].index(row["model"])][heat["x"].index(row["task"])]
            assert z == pytest.approx(row["success_rate"]), (attempt, row)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "dashboard-load-seconds.json").write_text(json.dumps(timings, indent=1))
    print("dashboard loads (s, until both charts had their data):", timings)


def test_a_40_task_heatmap_fits_the_page_without_horizontal_scrolling(stocked, browser):
    server, _ = stocked
    page = browser.page(server.at(f"taskset={WIDE}"), width=1280)
    heat = chart(page, ".wb-heat")
    assert len(heat["x"]) == 40 and len(heat["y"]) == 2
    sizes = page.evaluate(
        """() => {
          const div = document.querySelector('.wb-heat .js-plotly-plot');
          const board = document.querySelector('.wb-board');
          return { page: document.documentElement.scrollWidth, window: window.innerWidth,
                   plot: div.getBoundingClientRect().right, board: board.getBoundingClientRect().right,
                   boardScroll: board.scrollWidth - board.clientWidth,
                   ticks: new Set([...div.querySelectorAll('.xtick text')].map(t => t.textContent)).size };
        }"""
    )
    assert sizes["page"] <= sizes["window"], sizes  # no horizontal scroll bar
    assert sizes["plot"] <= sizes["board"] + 1 and sizes["boardScroll"] <= 0, sizes
    assert sizes["ticks"] == 40, sizes  # every task is named
    page.screenshot(path=str(ARTIFACTS / "dashboard-40-tasks.png"), full_page=True)


# -- the explorer, by clicking ----------------------------------------------------------------


def test_the_explorer_filters_searches_sorts_compares_and_opens_from_a_chart(stocked, browser):
    server, _ = stocked
    page = browser.page(server.at("taskset=shop-basics"))
    explorer = page.locator(".wb-explorer")
    rows = wait_rows(page, "rows.length === 44")

    explorer.locator(".widget-dropdown", has_text="model").locator("select").select_option(
        "scripted:weak"
    )
    rows = wait_rows(page, "rows.length === 22 && rows.every(r => r[1] === 'scripted:weak')")
    explorer.get_by_role("button", name="failures only").click()
    rows = wait_rows(page, "rows.length > 0 && rows.length < 22")
    assert all(r[1] == "scripted:weak" and float(r[5]) < 1 for r in rows)
    assert f"{len(rows)} of 44 match the filters" in explorer.inner_text()

    explorer.get_by_role("button", name="Clear filters").click()
    wait_rows(page, "rows.length === 44")
    search = explorer.get_by_placeholder("search the conversations…")
    search.fill("desk lamp")  # in the conversations of one task only
    search.press("Enter")
    rows = wait_rows(page, "rows.length === 4")
    assert {r[0] for r in rows} == {"price-check-desk-lamp"}

    explorer.get_by_role("button", name="Clear filters").click()
    wait_rows(page, "rows.length === 44")
    explorer.locator("th", has_text="reward").click()  # ascending: failures first
    rows = wait_rows(page, "rows[0][5] === '0.00'")
    explorer.locator("th", has_text="reward").click()  # descending
    rows = wait_rows(page, "rows[0][5] === '1.00' && rows[rows.length - 1][5] === '0.00'")
    shade = page.evaluate(
        "() => getComputedStyle(document.querySelector('.wb-explorer tr.wb-row td:nth-child(6)'))"
        ".backgroundColor"
    )
    assert shade not in ("rgba(0, 0, 0, 0)", "transparent")  # rewards are coloured

    explorer.locator("tr.wb-row").first.click()
    detail = page.locator(".wb-explorer .wb-title").first
    detail.wait_for(timeout=PATIENCE)
    task = rows[0][0]
    compare = explorer.locator("select").last
    options = [o.replace("\xa0", " ") for o in compare.locator("option").all_inner_texts()]
    assert len(options) == 4 and "compare with" in options[0]  # 3 other runs of the task
    weak = next(o for o in options if "scripted:weak" in o).replace(" ", "\xa0")
    compare.select_option(label=weak)
    side = page.locator(".wb-side")
    side.wait_for(timeout=PATIENCE)
    titles = side.locator(".wb-title").all_inner_texts()
    assert len(titles) == 2 and all(task in t for t in titles) and "scripted:weak" in titles[1]
    page.screenshot(path=str(ARTIFACTS / "dashboard-compare-traces.png"), full_page=True)

    # A click on a heatmap cell (the weak model on one task) opens that task's traces.
    heat = chart(page, ".wb-heat")
    column = 2
    picked = heat["x"][column]
    point = page.evaluate(
        """([row, column]) => {
          const div = document.querySelector('.wb-heat .js-plotly-plot');
          const xa = div._fullLayout.xaxis, ya = div._fullLayout.yaxis;
          const box = div.getBoundingClientRect();
          return { x: box.left + xa._offset + xa.l2p(column), y: box.top + ya._offset + ya.l2p(row) };
        }""",
        [heat["y"].index("scripted:weak"), column],
    )
    page.mouse.move(point["x"], point["y"])
    page.mouse.click(point["x"], point["y"])
    rows = wait_rows(
        page, f"rows.length === 2 && rows.every(r => r[0] === {json.dumps(picked)} "
        "&& r[1] === 'scripted:weak')"
    )  # fmt: skip
    page.locator(".wb-explorer .wb-title", has_text=picked).first.wait_for(timeout=PATIENCE)
    assert f"{picked}" in page.url or "trace=" in page.url  # the selection is in the address


def test_the_compare_tab_puts_flipped_tasks_first_by_clicking(stocked, browser):
    server, _ = stocked
    page = browser.page(server.at())
    page.get_by_role("tab", name="Compare").click()
    view = page.locator(".wb-compare")
    tab = view.locator(".wb-tablebox")
    for nth, model in ((0, "scripted:weak"), (1, "scripted:expert")):
        select = view.locator("select").nth(nth)
        labels = [o.replace("\xa0", " ") for o in select.locator("option").all_inner_texts()]
        select.select_option(index=labels.index(f"{model} (model)"))
    view.get_by_role("button", name="Compare").click()
    page.get_by_text("paired 95% CI").wait_for(timeout=PATIENCE)
    first = tab.locator("tr.wb-row").first
    first.wait_for(timeout=PATIENCE)
    assert first.locator("td").last.inner_text().startswith("up")  # a flipped task first
    task = first.locator("td").first.inner_text()
    first.click()  # its runs, weak and expert side by side, in the Traces tab
    side = page.locator(".wb-side")
    side.wait_for(timeout=PATIENCE)
    assert all(task in t for t in side.locator(".wb-title").all_inner_texts())


# -- light and dark ---------------------------------------------------------------------------

# WCAG 2 contrast of each element's text against what is painted behind it: the computed
# colours, alpha-composited over the first opaque background up the tree.
CONTRAST = """(selectors) => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const over = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a), a: 1,
  });
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let color = { r: 255, g: 255, b: 255, a: 1 };
    if (layers.length && layers[layers.length - 1].a >= 1) color = layers.pop();
    while (layers.length) color = over(layers.pop(), color);
    return color;
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const out = {};
  for (const selector of selectors) {
    const found = [...document.querySelectorAll(selector)].filter((e) => e.getClientRects().length && e.textContent.trim());
    if (!found.length) { out[selector] = null; continue; }
    let worst = Infinity;
    for (const el of found.slice(0, 25)) {
      const style = getComputedStyle(el);
      const bg = background(el);
      const text = parse(el instanceof SVGElement ? style.fill : style.color);
      const fg = text.a < 1 ? over(text, bg) : text;
      const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
      worst = Math.min(worst, (hi + 0.05) / (lo + 0.05));
    }
    out[selector] = Math.round(worst * 100) / 100;
  }
  return out;
}"""
LEGIBLE = [
    ".wb-explorer .wb-tablebox td",
    ".wb-explorer .wb-tablebox th",
    ".wb-leaderboard td",
    ".wb-leaderboard th",
    ".wb-note",
    ".wb-title",
    ".wb-toolcall",
    ".wb-msg pre",
    ".wb-role",
    ".wb-badge",
    ".wb-bars .xtick text",
    ".wb-heat .ytick text",
]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_tables_code_and_charts_are_legible_in_the_light_and_the_dark_theme(
    stocked, browser, theme
):
    server, _ = stocked
    page = browser.page(server.at(f"taskset=shop-basics&theme={theme}"), height=1400)
    light = page.evaluate("() => document.body.dataset.jpThemeLight")
    assert light == ("true" if theme == "light" else "false")
    wait_rows(page, "rows.length === 44")
    chart(page, ".wb-bars")
    chart(page, ".wb-heat")
    page.locator(".wb-explorer tr.wb-row").first.click()
    page.locator(".wb-toolcall").first.wait_for(timeout=PATIENCE)
    ratios = page.evaluate(CONTRAST, LEGIBLE)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{theme}.png"), full_page=True)
    assert all(ratios[s] is not None for s in LEGIBLE), ratios
    low = {s: r for s, r in ratios.items() if r < 4.5}
    assert not low, f"text below a 4.5:1 contrast in the {theme} theme: {low}"


# -- kernels ----------------------------------------------------------------------------------


def test_a_closed_page_leaves_no_kernel_behind(tmp_path, browser):
    import urllib.error
    import urllib.request

    # A kernel with no page connected for cull_idle seconds is shut down: long enough for a
    # loaded machine's browser to open the page's websocket (at 3 s, a slow page lost its
    # kernel before it connected and never drew) and for the pool's next kernel to start and
    # run the notebook (Voila culls a pool kernel still starting: at 20 s, on a machine
    # busy with more than this suite, the next page got a culled kernel and never drew),
    # short enough to see the culling.
    server = Server(
        Path(os.environ["WORKBENCH_HOME"]), tmp_path / "voila.log", cull_idle=60, cull_every=1
    )

    def alive(kernel: str) -> bool:
        try:
            urllib.request.urlopen(
                f"{server.url}api/kernels/{kernel}?token={server.token}", timeout=10
            ).close()
            return True
        except urllib.error.HTTPError as e:
            assert e.code == 404, e
            return False

    try:
        kernels = []
        for _ in range(3):
            sockets: list[str] = []
            page = browser.page(server.at(), sockets=sockets)
            page.locator(".wb-board").first.wait_for(timeout=4 * PATIENCE)
            found = {m.group(1) for u in sockets if (m := re.search(r"/api/kernels/([^/?]+)", u))}
            kernels += sorted(found)
            page.close()
        assert len(kernels) == 3 and len(set(kernels)) == 3, kernels
        deadline = time.monotonic() + 300  # a hang bound
        while any(alive(k) for k in kernels) and time.monotonic() < deadline:
            time.sleep(1)
        assert not any(alive(k) for k in kernels)  # every closed page's kernel is gone
        assert server.kernels() <= 2  # at most the pool's kernel (and one being filled)
        page = browser.page(server.at())  # and the next page still opens
        page.locator(".wb-board").first.wait_for(timeout=4 * PATIENCE)
    finally:
        server.stop()


def test_a_page_without_the_dashboards_token_is_refused(stocked):
    """A web page that points a name of its own at 127.0.0.1 (DNS rebinding) reaches the
    server but not the dashboard: it does not know the token."""
    import urllib.request

    server, _ = stocked
    rebound = urllib.request.Request(
        server.url, headers={"Host": f"attacker.example:{server.port}"}
    )
    for request in (server.url, rebound, f"{server.url}api/kernels"):
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                assert "/login" in reply.geturl(), reply.geturl()  # a login page, no dashboard
        except urllib.error.HTTPError as e:
            assert e.code == 403, e
    with urllib.request.urlopen(server.at(), timeout=120) as reply:
        assert reply.status == 200 and "/login" not in reply.geturl()
