"""TraceViewer: the trace explorer — a job's runs, filtered, searched, sorted; one run or two.

```python
viewer = TraceViewer(job)       # a running Job (live, from its events) or a stored job id
viewer.filter(model="scripted:weak", failures=True, search="coupon")
viewer.sort("reward", descending=True)     # or click a column header
viewer.select(0)                           # same as clicking the first row: its conversation
viewer.compare(viewer.rows[1]["key"])      # that run beside the selected one
viewer.export("failures.jsonl")            # the runs the filters keep (csv, jsonl, parquet)
```

The table is built from run summaries (``Store.traces_df``: no conversations) and shows one
page of rows; a run's full trace is read when it is selected. For a running job the viewer
subscribes to the job's events *before* it reads the store, and counts each run once (by
task, model and group index); when the job ends it checks the store for runs it has not
seen (finished runs reach the store in batches), so its counts end exactly right. Redraws
are coalesced, and send only the rows on screen that changed. Nothing polls the database.
"""

from __future__ import annotations

import io
import math
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import ipywidgets as w
import traitlets

import workbench
from workbench import Job, JobFinished, RunFinished, RunStarted, Step, Store, Trace
from workbench.errors import NotFoundError, WorkbenchError
from workbench.export import FORMATS, export_traces
from workbench.formatting import reward as reward_text
from workbench.traces import STOP_REASONS

from ._live import Throttle, error_html, later, note_html, stylesheet
from .browser import Download
from .render import render_running, render_side_by_side, render_trace
from .runs import Filters, RunIndex, mentions, run_key, search_runs, trace_summary
from .table import Table

COLUMNS = [
    ("task", "task"),
    ("model", "model"),
    ("group", "group"),
    ("status", "status"),
    ("steps", "steps"),
    ("reward", "reward"),
    ("tokens", "tokens"),
    ("time", "time"),
]
ALL = ""  # a filter's "everything" choice
_RECENT = 256  # finished traces kept from events: one trace-writer batch, not yet stored


class TraceViewer(w.VBox):
    """A job's runs as a live, filterable table; the selected run (or two) below it."""

    job_id = traitlets.Unicode("")
    selected = traitlets.Unicode("", help="the selected run's key: task|model|group")
    compared = traitlets.Unicode("", help="the run shown beside the selected one")
    page = traitlets.Int(0, help="the page of rows on screen (from 0)")

    def __init__(
        self,
        job: Job | str | None = None,
        *,
        store: Store | None = None,
        page_size: int = 100,
    ):
        self.store = store
        self.page_size = page_size
        self.index = RunIndex()
        self.total = 0  # the runs the job will have when it is done
        self.matching = 0  # rows the filters keep
        self.rows_sent = 0  # rows the last redraw sent to the page (whole page or changes)
        self._job: Job | None = None
        self._store_used: Store | None = None
        self._live: dict[str, dict[str, Any]] = {}  # running runs: messages, usage, args
        self._recent: OrderedDict[str, Trace] = OrderedDict()
        self._fetched: tuple[str, Trace] | None = None
        self._matches: set[str] = set()
        self._unsubscribe = None
        self._quiet = False
        self._redraw = Throttle(self._draw)
        style = {"description_width": "initial"}
        self.table = Table(COLUMNS, sortable=True, shade=["reward"], empty="no runs to show")
        self.summary = w.HTML()
        self.model_filter = w.Dropdown(
            options=[("all models", ALL)], description="model", style=style
        )
        self.task_filter = w.Dropdown(
            options=[("all tasks", ALL)],
            description="task",
            style=style,
            layout=w.Layout(width="280px"),
        )
        self.status_filter = w.Dropdown(
            options=[("any stop", ALL), *[(s, s) for s in (*STOP_REASONS, "running")]],
            description="stop",
            style=style,
            layout=w.Layout(width="160px"),
        )
        self.failures = w.ToggleButton(
            description="failures only", icon="times", tooltip="finished runs that did not succeed"
        )
        self.search = w.Text(
            placeholder="search the conversations…",
            continuous_update=False,
            layout=w.Layout(width="240px"),
        )
        self.clear_button = w.Button(description="Clear filters", layout=w.Layout(width="auto"))
        self.prev_button = w.Button(icon="chevron-left", layout=w.Layout(width="36px"))
        self.next_button = w.Button(icon="chevron-right", layout=w.Layout(width="36px"))
        self.page_label = w.HTML()
        self.export_format = w.Dropdown(options=FORMATS, value="csv", layout=w.Layout(width="90px"))
        self.export_button = w.Button(
            description="Export", icon="download", tooltip="the runs the filters keep"
        )
        self.download = Download()
        self.compare_with = w.Dropdown(
            options=[("— compare with another run of this task —", ALL)],
            layout=w.Layout(width="420px"),
        )
        self.detail = w.HTML(note_html("select a run to read its trace"))
        self.message = w.HTML()

        for control in (self.model_filter, self.task_filter, self.status_filter, self.failures):
            control.observe(lambda _: self._refilter(), "value")
        self.search.observe(lambda _: self._search(), "value")
        self.clear_button.on_click(lambda _: self.filter(clear=True))
        self.prev_button.on_click(lambda _: self._turn(-1))
        self.next_button.on_click(lambda _: self._turn(+1))
        self.export_button.on_click(lambda _: self.download_export())
        self.table.observe(lambda _: self._refilter(), ["sort_by", "descending"])
        traitlets.link((self.table, "selected"), (self, "selected"))
        traitlets.link((self.compare_with, "value"), (self, "compared"))
        self.observe(self._on_selected, "selected")
        self.observe(lambda _: self._draw_detail(), "compared")
        self.observe(lambda _: self._draw(), "page")
        super().__init__(
            [
                stylesheet(),
                self.summary,
                w.HBox(
                    [
                        self.model_filter,
                        self.task_filter,
                        self.status_filter,
                        self.failures,
                        self.search,
                        self.clear_button,
                    ],
                    layout=w.Layout(flex_flow="row wrap"),
                ),
                self.table,
                w.HBox(
                    [
                        self.prev_button,
                        self.page_label,
                        self.next_button,
                        w.HTML("&nbsp;"),
                        self.export_format,
                        self.export_button,
                        self.download,
                        self.message,
                    ],
                    layout=w.Layout(align_items="center", flex_flow="row wrap"),
                ),
                self.compare_with,
                self.detail,
            ]
        )
        self.add_class("wb-explorer")
        self._draw()
        if job is not None:
            self.watch(job)

    # -- what is shown ------------------------------------------------------------------

    def watch(self, job: Job | str) -> None:
        """Show a job: its runs now and, for a running Job, every run as it goes."""
        self._stop_following()
        store = self.store or (job.store if isinstance(job, Job) else workbench.get_store())
        row = store.get_job(job.id if isinstance(job, Job) else job)
        self._store_used = store
        self._job = job if isinstance(job, Job) else None
        self.index = RunIndex()
        self._live, self._recent, self._fetched, self._matches = {}, OrderedDict(), None, set()
        self.total = job.total if isinstance(job, Job) else int(row["total"])
        self.job_id = row["id"]
        if isinstance(job, Job) and not job.is_done():
            # Subscribe first, then read: a run finishing in between is in one or the other
            # (or both: the index keeps one row per run).
            self._unsubscribe = job.subscribe(self._on_event)
            later(0.5, self._reconcile)  # runs still in the trace writer's last batch
        self.index.load(store.traces_df(job_id=self.job_id))
        self._quiet = True
        try:
            self.selected, self.compared, self.page = "", "", 0
        finally:
            self._quiet = False
        self._options()
        self._search()  # a search typed for the previous job applies to this one
        self._draw_detail()

    def clear(self) -> None:
        """Show no job (e.g. a taskset without any)."""
        self._stop_following()
        self.index, self.total, self.job_id = RunIndex(), 0, ""
        self._live, self._recent, self._fetched, self._matches = {}, OrderedDict(), None, set()
        self.selected, self.compared = "", ""
        self._options()
        self._redraw.flush()
        self._draw_detail()

    def filter(
        self,
        *,
        model: str | None = None,
        task: str | None = None,
        status: str | None = None,
        failures: bool | None = None,
        search: str | None = None,
        clear: bool = False,
    ) -> None:
        """Set filters (``clear``: first reset all); what is not named stays as it is."""
        self._quiet = True
        try:
            if clear:
                self.model_filter.value = self.task_filter.value = ALL
                self.status_filter.value, self.failures.value, self.search.value = ALL, False, ""
            for control, value in (
                (self.model_filter, model),
                (self.task_filter, task),
                (self.status_filter, status),
            ):
                if value is not None:
                    if value not in dict(control.options).values():
                        control.options = [*control.options, (value, value)]
                    control.value = value
            if failures is not None:
                self.failures.value = failures
            if search is not None:
                self.search.value = search
        finally:
            self._quiet = False
        self._search()

    def sort(self, column: str, descending: bool = False) -> None:
        """Sort by a column (as a click on its header does)."""
        with self.table.hold_trait_notifications():
            self.table.sort_by, self.table.descending = column, descending

    def select(self, index: int) -> None:
        """Select the run in row ``index`` of the page (as a click on it does)."""
        if not self.table.rows:
            self._reconcile()  # a job that finished before the view read the store
        self._redraw.flush()  # runs that arrived since the last (throttled) redraw
        self.selected = self.table.rows[index]["key"]

    def select_trace(self, trace_id: str) -> bool:
        """Select a finished run by its trace id (or a unique prefix); False if not here."""
        ids = self.index.frame["id"].astype(str)
        found = ids[ids.str.startswith(trace_id)] if trace_id else ids.iloc[:0]
        if len(found) != 1:
            return False
        self.selected = str(found.index[0])
        return True

    def compare(self, key: str) -> None:
        """Show the run ``key`` beside the selected one (the "compare with" choice)."""
        options = dict(self.compare_with.options)
        if key not in options.values():
            self.compare_with.options = [*self.compare_with.options, (key, key)]
        self.compared = key

    @property
    def job(self) -> Job | None:
        """The running (or finished) Job shown, when it was given as one (not an id)."""
        return self._job

    @property
    def filters(self) -> Filters:
        return Filters(
            model=self.model_filter.value or None,
            task=self.task_filter.value or None,
            status=self.status_filter.value or None,
            failures=bool(self.failures.value),
            search=self.search.value.strip(),
        )

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows on screen (one page)."""
        return self.table.rows

    @property
    def counts(self) -> dict[str, int]:
        """Runs of the job (``total``), known, finished, running, solved, matching."""
        return {**self.index.counts(), "total": self.total, "matching": self.matching}

    def run_keys(self) -> list[str]:
        """Every run the filters keep, in the table's order (all pages)."""
        return [str(k) for k in self._view()]

    # -- export -------------------------------------------------------------------------

    def export(
        self, path: str | Path | io.BytesIO, *, format: str | None = None, conversations=True
    ) -> int:
        """Write the runs the filters keep (finished ones) to a file; returns how many."""
        if not self.job_id:
            raise WorkbenchError("no job is shown: nothing to export")
        keys = self._view()
        frame = self.index.frame.loc[keys]
        frame = frame[frame["status"] != "running"]
        runs = frame.rename(columns={"group": "group_index", "status": "stop_reason"}).assign(
            job_id=self.job_id
        )
        return export_traces(
            runs, path, format=format, conversations=conversations, store=self._store()
        )

    def download_export(self) -> None:
        """The "Export" button: the runs the filters keep, as a file the browser saves."""
        fmt = self.export_format.value
        buffer = io.BytesIO()
        try:
            count = self.export(buffer, format=fmt)
        except WorkbenchError as e:
            self.message.value = error_html(str(e))
            return
        name = f"traces-{self.job_id}{'-filtered' if self.filters.active else ''}.{fmt}"
        self.download.save(name, buffer.getvalue())
        self.message.value = note_html(f"exported {count} runs as {name}")

    # -- events -------------------------------------------------------------------------

    def _on_event(self, event) -> None:
        if isinstance(event, RunStarted):
            key = run_key(event.task, event.model, event.group_index)
            if key in self.index and self.index.row(key)["status"] != "running":
                return  # already finished (read from the store)
            self.index.put(
                key, task=event.task, model=event.model, group=event.group_index,
                status="running", started=time.time(),
            )  # fmt: skip
            self._live[key] = {"messages": [], "usage": None, "step": 0}
        elif isinstance(event, Step):
            key = run_key(event.task, event.model, event.group_index)
            live = self._live.get(key)
            if live is None:
                return
            # Newer jobs say what joined the conversation since the last step (the prompt,
            # tool results) and the tokens so far; older ones send the model's message only.
            live["messages"].extend(getattr(event, "messages", None) or [event.message])
            live["usage"] = getattr(event, "usage", None) or live["usage"]
            live["step"] = event.step
            self.index.put(key, steps=event.step)
            if self.filters.search and mentions(live["messages"], self.filters.search):
                self._matches.add(key)
        elif isinstance(event, RunFinished):
            trace = event.trace
            key = run_key(trace.task, trace.model, trace.group_index)
            self.index.put(key, **trace_summary(trace))
            self._live.pop(key, None)
            self._recent[key] = trace
            while len(self._recent) > _RECENT:
                self._recent.popitem(last=False)
            if self.filters.search and mentions(trace.messages, self.filters.search):
                self._matches.add(key)
        elif isinstance(event, JobFinished):
            self._unsubscribe = None
            self._reconcile()
            return
        else:
            return
        self._redraw()

    def _reconcile(self) -> None:
        """Add finished runs that the store has and this view lacks (the trace writer's
        batch that was pending when the view subscribed)."""
        if not self.job_id:
            return
        store = self._store()
        frame = self.index.frame
        seen = set(frame.index[frame["status"] != "running"])
        stored = {run_key(*run) for run in store.finished_runs(self.job_id)}
        if stored - seen:
            self.index.load(store.traces_df(job_id=self.job_id), only_missing=True)
            if self.filters.search:
                self._matches |= search_runs(store, self.job_id, self.filters.search)
            self._options()
        self._redraw.flush()

    def _stop_following(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._redraw.cancel()

    def _store(self) -> Store:
        return self._store_used or self.store or workbench.get_store()

    # -- filters ------------------------------------------------------------------------

    def _search(self) -> None:
        if self._quiet:
            return
        text = self.filters.search
        self._matches = set()
        if text and self.job_id:
            self._matches = search_runs(self._store(), self.job_id, text)
            self._matches |= {k for k, v in self._live.items() if mentions(v["messages"], text)}
            self._matches |= {k for k, t in self._recent.items() if mentions(t.messages, text)}
        self._refilter()

    def _refilter(self) -> None:
        if self._quiet:
            return
        self._quiet = True
        try:
            self.page = 0
        finally:
            self._quiet = False
        self._redraw.flush()

    def _turn(self, by: int) -> None:
        pages = max(1, math.ceil(self.matching / self.page_size))
        self.page = min(max(self.page + by, 0), pages - 1)

    def _view(self):
        return self.index.view(
            self.filters,
            sort_by=self.table.sort_by,
            descending=self.table.descending,
            matches=self._matches,
        )

    def _options(self) -> None:
        """The filters' choices: the models and tasks of the job (kept when unchanged)."""
        for control, column, everything in (
            (self.model_filter, "model", "all models"),
            (self.task_filter, "task", "all tasks"),
        ):
            values = self.index.options(column)
            if control.value and control.value not in values:
                values.append(control.value)  # a filter set before its runs arrived
            options = [(everything, ALL), *[(v, v) for v in values]]
            if [tuple(o) for o in control.options] != options:
                value = control.value
                self._quiet, quiet = True, self._quiet
                try:
                    control.options = options
                    control.value = value if value in dict(options).values() else ALL
                finally:
                    self._quiet = quiet

    # -- drawing ------------------------------------------------------------------------

    def _draw(self) -> None:
        if self._quiet:
            return
        changed = self.index.apply()
        keys = self._view()
        self.matching = len(keys)
        pages = max(1, math.ceil(len(keys) / self.page_size))
        page = min(self.page, pages - 1)
        shown = keys[page * self.page_size : (page + 1) * self.page_size]
        self.rows_sent = self.table.show(self.index.display(shown))
        if changed:
            self._options()  # a new model or task joins the filters' choices
        c = self.index.counts()
        if not self.job_id:
            self.summary.value = note_html("no job to show")
        else:
            solved = f"{c['finished']} of {self.total} runs finished ({c['solved']} solved"
            solved += f", {c['errors']} errors" if c["errors"] else ""
            solved += f", {c['timeouts']} timeouts" if c["timeouts"] else ""
            solved += ")" + (f", {c['running']} running" if c["running"] else "")
            shown_text = (
                f" · {len(keys)} of {c['runs']} match the filters" if self.filters.active else ""
            )
            self.summary.value = note_html(f"job {self.job_id}: {solved}{shown_text}")
        first = page * self.page_size + 1 if len(shown) else 0
        self.page_label.value = note_html(
            f"rows {first}–{first + len(shown) - 1 if len(shown) else 0} of {len(keys)}"
        )
        self.prev_button.disabled = page == 0
        self.next_button.disabled = page >= pages - 1
        if self.selected and (self.selected in changed or self.selected in self._live):
            self._draw_detail()

    def _on_selected(self, change) -> None:
        if self._quiet:
            return
        self._quiet = True
        try:
            self.compared = ""
        finally:
            self._quiet = False
        self._compare_options()
        self._draw_detail()

    def _compare_options(self) -> None:
        options = [("— compare with another run of this task —", ALL)]
        if self.selected in self.index:
            task = self.index.row(self.selected)["task"]
            frame = self.index.frame
            same = frame[(frame["task"] == task) & (frame.index != self.selected)]
            for key, r in same.sort_values(["model", "group"]).iterrows():
                reward = (
                    "running" if r["status"] == "running" else f"reward {reward_text(r['reward'])}"
                )
                options.append((f"{r['model']} · group {r['group']} · {reward}", str(key)))
        self.compare_with.options = options

    def _trace(self, key: str) -> Trace | str:
        """The full trace of a finished run (read when asked for), or HTML for a live one."""
        if key in self._live:
            live = self._live[key]
            row = self.index.row(key)
            args = None
            if self._job is not None:
                task = next((t for t in self._job.taskset if t.slug == row["task"]), None)
                args = task.args if task is not None else None
            return render_running(
                row["task"], row["model"], int(row["group"]), live["step"],
                live["messages"], live["usage"], args,
            )  # fmt: skip
        if key in self._recent:
            return self._recent[key]
        if self._fetched is not None and self._fetched[0] == key:
            return self._fetched[1]
        trace = self._store().get_trace(self.index.row(key)["id"])
        self._fetched = (key, trace)
        return trace

    def _render(self, key: str) -> str:
        try:
            found = self._trace(key)
        except NotFoundError:
            return note_html("this run is being written to the store: select it again")
        return found if isinstance(found, str) else render_trace(found)

    def _draw_detail(self) -> None:
        key = self.selected
        if not key or key not in self.index:
            self.detail.value = note_html("select a run to read its trace")
        elif self.compared and self.compared in self.index:
            self.detail.value = render_side_by_side(self._render(key), self._render(self.compared))
        else:
            self.detail.value = self._render(key)
