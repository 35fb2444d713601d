"""The dashboard (``notebooks/dashboard.ipynb`` under Voila) and the function that serves it.

```python
Dashboard()                                   # in a notebook: pick a taskset, read its jobs
serve_dashboard(host="127.0.0.1", port=8866)  # `workbench dashboard`: Voila on that address
```
"""

from __future__ import annotations

import ipywidgets as w
import traitlets

import workbench
from workbench import Job, JobFinished, Store
from workbench.dashboard import serve_dashboard, voila_command  # noqa: F401 - re-exported
from workbench.tasks import builtin_tasksets

from ._live import note_html, stylesheet
from .leaderboard import Leaderboard
from .run_dialog import RunDialog
from .traces import TraceViewer


class Dashboard(w.VBox):
    """Pick a taskset; see its leaderboard and its jobs' traces; start a run from the dialog."""

    taskset = traitlets.Unicode()

    def __init__(self, taskset: str | None = None, *, store: Store | None = None):
        self.store = store
        names = self.taskset_names()
        taskset = taskset or ("shop-basics" if "shop-basics" in names else names[0])
        self.tasksets = w.Dropdown(options=names, value=taskset, description="taskset")
        self.jobs = w.Dropdown(description="job", layout=w.Layout(width="640px"))
        self.dialog = RunDialog(taskset, store=store)
        self.leaderboard = Leaderboard(taskset, store=store)
        self.traces = TraceViewer(store=store)
        self._live: dict[str, Job] = {}  # jobs started here: the viewers follow their events
        traitlets.link((self.tasksets, "value"), (self, "taskset"))
        self.observe(self._on_taskset, "taskset")
        self.jobs.observe(self._on_job_chosen, "value")
        self.dialog.observe(self._on_job_started, "job")
        super().__init__(
            [
                stylesheet(),
                w.HBox([self.tasksets, self.dialog]),
                self.leaderboard,
                w.HTML('<div class="wb-title">Traces</div>'),
                self.jobs,
                self.traces,
            ]
        )
        self.taskset = taskset
        self._list_jobs()

    def taskset_names(self) -> list[str]:
        store = self.store or workbench.get_store()
        return sorted(set(store.list_tasksets()) | set(builtin_tasksets()))

    def _on_taskset(self, change) -> None:
        self.dialog.taskset = change.new
        self.leaderboard.show(change.new)
        self._list_jobs()

    def _list_jobs(self, select: str | None = None) -> None:
        jobs = (self.store or workbench.get_store()).jobs()
        jobs = jobs[jobs["taskset"] == self.taskset]
        options = [
            (f"{r.id} · {r.models} · {r.status} · {r.done}/{r.total} runs", r.id)
            for r in jobs.itertuples()
        ]
        self.jobs.options = options
        if not options:
            self.traces.summary.value = note_html("no jobs on this taskset yet: start a run")
        self.jobs.value = select or (options[0][1] if options else None)

    def _on_job_chosen(self, change) -> None:
        if change.new:
            self.traces.watch(self._live.get(change.new, change.new))

    def _on_job_started(self, change) -> None:
        job: Job | None = change.new
        if job is None:
            return
        self._live[job.id] = job
        if self.taskset != job.taskset.name:
            self.taskset = job.taskset.name
        self.leaderboard.watch(job)
        self._list_jobs(select=job.id)
        job.subscribe(self._on_event, steps=False)

    def _on_event(self, event) -> None:
        if isinstance(event, JobFinished):  # the job list shows each job's status and count
            self._list_jobs(select=self.jobs.value)
