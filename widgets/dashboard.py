"""The dashboard (``notebooks/dashboard.ipynb`` under Voila) and the function that serves it.

```python
Dashboard()                                   # in a notebook: pick a taskset, read its jobs
Dashboard("shop-basics", job="ab12", trace="9f3e")   # open on a job and one of its traces
serve_dashboard(host="127.0.0.1", port=8866)  # `workbench dashboard`: Voila on that address
```

Under Voila the selection lives in the page's address (``?taskset=…&job=…&trace=…``): a view
can be shared, and opening the address opens that view. A click on a leaderboard bar or
heatmap cell opens the matching traces; a click on a task in the comparison opens that
task's runs, side by side where the job ran both models.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlencode

import ipywidgets as w
import traitlets

import workbench
from workbench import Job, JobFinished, Store
from workbench.dashboard import serve_dashboard, voila_command  # noqa: F401 - re-exported
from workbench.errors import WorkbenchError
from workbench.tasks import builtin_tasksets

from ._live import note_html, stylesheet
from .browser import Address
from .compare import CompareView
from .curve import LearningCurveView
from .leaderboard import Leaderboard
from .run_dialog import RunDialog
from .traces import TraceViewer

URL_KEYS = ["taskset", "job", "trace"]


def _from_address(query: str | None) -> dict[str, str]:
    """taskset, job and trace from a query string (Voila gives the kernel QUERY_STRING)."""
    params = parse_qs(query or "")
    return {k: params[k][0] for k in URL_KEYS if params.get(k)}


class Dashboard(w.VBox):
    """Pick a taskset; see its leaderboard, its jobs' traces and comparisons; start a run."""

    taskset = traitlets.Unicode()

    def __init__(
        self,
        taskset: str | None = None,
        *,
        job: str | None = None,
        trace: str | None = None,
        store: Store | None = None,
        address: str | None = None,
    ):
        """``address``: a query string to open (default: the page's, under Voila)."""
        self.store = store
        if taskset is None and job is None and trace is None:
            wanted = _from_address(
                address if address is not None else os.environ.get("QUERY_STRING")
            )
        else:
            wanted = {"taskset": taskset, "job": job, "trace": trace}
        names = self.taskset_names()
        if wanted.get("job") and not wanted.get("taskset"):
            try:
                wanted["taskset"] = self._store.get_job(wanted["job"])["taskset"]
            except WorkbenchError:
                pass
        taskset = wanted.get("taskset")
        if taskset not in names:
            taskset = "shop-basics" if "shop-basics" in names else names[0]
        self.address = Address(names=URL_KEYS)
        self.tasksets = w.Dropdown(options=names, value=taskset, description="taskset")
        self.refresh_button = w.Button(
            icon="refresh", tooltip="read the store again", layout=w.Layout(width="40px")
        )
        self.jobs = w.Dropdown(description="job", layout=w.Layout(width="640px"))
        self.dialog = RunDialog(taskset, store=store)
        self.leaderboard = Leaderboard(store=store)  # filled when the taskset is set below
        self.traces = TraceViewer(store=store)
        self.comparison = CompareView(store=store)
        self.curves = LearningCurveView(store=store)  # any fork's held-out success per round
        self.tabs = w.Tab(
            [w.VBox([self.jobs, self.traces]), self.comparison, self.curves],
            titles=("Traces", "Compare", "Learning curve"),
        )
        self._live: dict[str, Job] = {}  # jobs started here: the viewers follow their events
        traitlets.link((self.tasksets, "value"), (self, "taskset"))
        self.observe(self._on_taskset, "taskset")
        self.jobs.observe(self._on_job_chosen, "value")
        self.dialog.observe(self._on_job_started, "job")
        self.leaderboard.observe(self._on_chart_pick, "selection")
        self.comparison.observe(self._on_compare_task, "task")
        self.traces.observe(lambda _: self._write_address(), "selected")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.address.on_open(self.open_address)
        super().__init__(
            [
                stylesheet(),
                self.address,
                w.HBox([self.tasksets, self.refresh_button, self.dialog]),
                self.leaderboard,
                self.tabs,
            ]
        )
        self.add_class("wb-dashboard")
        self.taskset = taskset  # (the link above has set it already: show it here)
        self.leaderboard.show(taskset)
        self.comparison.taskset = taskset
        self._list_jobs(select=self._job_id(wanted.get("job")))
        if wanted.get("trace"):
            self.traces.select_trace(wanted["trace"])
        self._write_address()

    def open_address(self, query: str) -> None:
        """Show what an address names (``taskset=…&job=…&trace=…``), the store read afresh:
        a Voila page opened from a shared link, or from a kernel started before it."""
        self.refresh(**_from_address(query))

    def refresh(
        self, taskset: str | None = None, job: str | None = None, trace: str | None = None
    ) -> None:
        """Read the store again (tasksets, jobs, leaderboard, traces), then select what is
        named (a job implies its taskset; a trace is one of the job's runs)."""
        job_id = self._job_id(job)
        if job_id and not taskset:
            taskset = self._store.get_job(job_id)["taskset"]
        names = self.taskset_names()
        self.tasksets.options = names
        self.curves.refresh()
        taskset = (
            taskset if taskset in names else (self.taskset if self.taskset in names else names[0])
        )
        if taskset != self.taskset:
            self.taskset = taskset  # reads the leaderboard, comparison and jobs of it
        else:
            self.leaderboard.show(taskset)
            self.comparison.show(taskset)
        shown, watched = job_id or self.jobs.value, self.traces.job_id
        self._list_jobs(select=shown)
        if self.jobs.value == watched and watched and watched not in self._live:
            self.traces.watch(watched)  # the same stored job: its runs read again
        if trace:
            self.traces.select_trace(trace)
        self._write_address()

    @property
    def _store(self) -> Store:
        return self.store or workbench.get_store()

    def taskset_names(self) -> list[str]:
        return sorted(set(self._store.list_tasksets()) | set(builtin_tasksets()))

    def _job_id(self, prefix: str | None) -> str | None:
        if not prefix:
            return None
        try:
            return self._store.get_job(prefix)["id"]
        except WorkbenchError:
            return None

    # -- the selection ------------------------------------------------------------------

    def _on_taskset(self, change) -> None:
        self.dialog.taskset = change.new
        self.leaderboard.show(change.new)
        self.comparison.taskset = change.new
        self._list_jobs()

    def _list_jobs(self, select: str | None = None) -> None:
        jobs = self._store.jobs()
        jobs = jobs[jobs["taskset"] == self.taskset]
        options = [
            (f"{r.id} · {r.models} · {r.status} · {r.done}/{r.total} runs", r.id)
            for r in jobs.itertuples()
        ]
        ids = [value for _, value in options]
        value = select if select in ids else (ids[0] if ids else None)
        if value == self.jobs.value and options:
            self.jobs.options = options  # the same job stays shown (labels may change)
            self.jobs.value = value
            return
        self.jobs.options = options
        self.jobs.value = value
        if not options:  # nothing of the previous taskset may stay on screen
            self.traces.clear()
            self.traces.summary.value = note_html("no jobs on this taskset yet: start a run")
            self._write_address()

    def _on_job_chosen(self, change) -> None:
        if change.new and change.new != self.traces.job_id:
            self.traces.watch(self._live.get(change.new, change.new))
        self._write_address()

    def _on_job_started(self, change) -> None:
        job: Job | None = change.new
        if job is None:
            return
        self._live[job.id] = job
        if self.taskset != job.taskset.name:
            self.taskset = job.taskset.name
        self.leaderboard.watch(job)
        self._list_jobs(select=job.id)
        if self.traces.job_id != job.id or job is not self.traces.job:
            self.traces.watch(job)
        job.subscribe(self._on_event, steps=False)

    def _on_event(self, event) -> None:
        if isinstance(event, JobFinished):  # the job list shows each job's status and count
            self._list_jobs(select=self.jobs.value)
            self.comparison.show(self.taskset)

    def _write_address(self) -> None:
        params = {"taskset": self.taskset}
        if self.jobs.value:
            params["job"] = self.jobs.value
        if self.traces.selected in self.traces.index:
            trace_id = self.traces.index.row(self.traces.selected)["id"]
            if trace_id:
                params["trace"] = trace_id
        self.address.query = urlencode(params)

    # -- links between the views --------------------------------------------------------

    def _on_chart_pick(self, change) -> None:
        """A bar (a model) or a heatmap cell (a model on a task): open those traces."""
        picked = change.new
        if not picked:
            return
        jobs = picked.get("jobs") or []
        if self.jobs.value not in jobs:
            newest = [value for _, value in self.jobs.options if value in jobs]
            if newest:
                self.jobs.value = newest[0]
        self.tabs.selected_index = 0
        self.traces.filter(clear=True, model=picked["model"], task=picked.get("task") or "")
        if self.traces.rows:
            self.traces.select(0)

    def _on_compare_task(self, change) -> None:
        """A task of the comparison: its runs in the explorer, the two sides side by side
        when the job shown ran both."""
        task = change.new
        if not task:
            return
        self.tabs.selected_index = 0
        self.traces.filter(clear=True, task=task)
        rows = self.traces.rows
        if not rows:
            return
        sides = [self._side_model(v) for v in (self.comparison.a.value, self.comparison.b.value)]
        first = {m: next((r["key"] for r in rows if r["model"] == m), None) for m in sides}
        if all(first.values()) and sides[0] != sides[1]:
            self.traces.selected = first[sides[0]]
            self.traces.compare(first[sides[1]])
        else:
            self.traces.select(0)

    def _side_model(self, value: str | None) -> str | None:
        """The model a comparison side names (a job's one model, or the id itself)."""
        if not value:
            return None
        if ":" not in value and "@" not in value:
            try:
                return self._store.get_job(value)["config"]["models"][0]
            except WorkbenchError:
                pass
        return value
