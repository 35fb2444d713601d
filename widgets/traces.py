"""TraceViewer: a live table of a job's runs, and the selected run's conversation.

```python
viewer = TraceViewer(job)        # a running Job (live, from its events) or a stored job id
viewer.select(0)                 # same as clicking the first row
```

The table fills from the job's events (run started, step, run finished); the stored runs of
a job are read once when it is shown. Nothing polls the database.
"""

from __future__ import annotations

import html
import json
from typing import Any

import anywidget
import ipywidgets as w
import traitlets

import workbench
from workbench import Job, JobFinished, RunFinished, RunStarted, Step, Store, Trace

from ._live import Throttle, note_html, stylesheet

COLUMNS = ["task", "model", "group", "status", "steps", "reward", "time"]


class RunTable(anywidget.AnyWidget):
    """A clickable table: ``rows`` (dicts with a ``key``) in, ``selected`` (a key) out."""

    _esm = """
    function render({ model, el }) {
      const box = document.createElement("div");
      box.className = "wb-runs";
      el.appendChild(box);
      const draw = () => {
        const columns = model.get("columns");
        const selected = model.get("selected");
        const table = document.createElement("table");
        const head = table.insertRow();
        for (const c of columns) {
          const th = document.createElement("th"); th.textContent = c; head.appendChild(th);
        }
        for (const row of model.get("rows")) {
          const tr = table.insertRow();
          tr.dataset.key = row.key;
          tr.className = "wb-run wb-status-" + row.status + (row.key === selected ? " wb-selected" : "");
          for (const c of columns) { tr.insertCell().textContent = row[c] ?? ""; }
          tr.addEventListener("click", () => { model.set("selected", row.key); model.save_changes(); });
        }
        box.replaceChildren(table);
      };
      model.on("change:rows", draw);
      model.on("change:selected", draw);
      draw();
    }
    export default { render };
    """
    _css = """
    .wb-runs { max-height: 300px; overflow-y: auto; border: 1px solid #eaecf0; border-radius: 6px; }
    .wb-runs table { border-collapse: collapse; width: 100%; font-size: 12px; }
    .wb-runs th { position: sticky; top: 0; background: #f9fafb; text-align: left; padding: 4px 8px; }
    .wb-runs td { padding: 3px 8px; border-top: 1px solid #f2f4f7; cursor: pointer; }
    .wb-runs tr.wb-run:hover { background: #f5f8ff; }
    .wb-runs tr.wb-selected { background: #dbeafe; }
    .wb-runs tr.wb-status-running td { color: #667085; font-style: italic; }
    .wb-runs tr.wb-status-error td, .wb-runs tr.wb-status-timeout td { color: #b42318; }
    """
    columns = traitlets.List(traitlets.Unicode()).tag(sync=True)
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)


def run_key(task: str, model: str, group_index: int) -> str:
    return f"{task}|{model}|{group_index}"


def _row(trace: Trace) -> dict[str, Any]:
    seconds = trace.seconds
    return {
        "key": run_key(trace.task, trace.model, trace.group_index),
        "task": trace.task,
        "model": trace.model,
        "group": trace.group_index,
        "status": trace.stop_reason,
        "steps": trace.steps,
        "reward": f"{trace.reward:.2f}",
        "time": "" if seconds is None else f"{seconds:.2f} s",
    }


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, indent=1)
    return html.escape(value, quote=False)


def render_messages(messages: list[dict[str, Any]]) -> str:
    """A conversation as HTML: each message, tool calls and tool results marked."""
    names: dict[str, str] = {}
    parts = []
    for message in messages:
        role = message.get("role", "?")
        body = f'<div class="wb-role">{html.escape(role)}</div>'
        if message.get("content"):
            body += f"<pre>{_text(message['content'])}</pre>"
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            names[call.get("id", "")] = function.get("name", "?")
            body += (
                f'<div class="wb-toolcall">tool call → {html.escape(function.get("name", "?"))}'
                f"({_text(function.get('arguments'))})</div>"
            )
        if role == "tool":
            name = names.get(message.get("tool_call_id", ""), "tool")
            body = f'<div class="wb-role">tool result ← {html.escape(name)}</div>' + (
                f"<pre>{_text(message.get('content'))}</pre>"
            )
        parts.append(f'<div class="wb-msg wb-msg-{html.escape(role)}">{body}</div>')
    return "".join(parts)


def render_trace(trace: Trace) -> str:
    """One finished run: what, who, how it ended, the reward, any error, the conversation."""
    ok = "wb-ok" if trace.success else "wb-bad"
    head = (
        f'<div class="wb-title">{html.escape(trace.task)} · {html.escape(trace.model)} '
        f"· group {trace.group_index}</div>"
        f'<span class="wb-badge {ok}">reward {trace.reward:.2f}</span>'
        f'<span class="wb-badge">stop: {html.escape(trace.stop_reason)}</span>'
        f'<span class="wb-badge">{trace.steps} steps</span>'
        f'<span class="wb-badge">{len(trace.tool_calls)} tool calls</span>'
    )
    if trace.seconds is not None:
        head += f'<span class="wb-badge">{trace.seconds:.2f} s</span>'
    if trace.checkpoint:
        head += f'<span class="wb-badge">checkpoint {html.escape(trace.checkpoint)}</span>'
    if trace.error_type:
        head += (
            f'<div class="wb-error">error: {html.escape(trace.error_type)}: '
            f"{html.escape(trace.error_message or '')}</div>"
        )
    if trace.info:
        head += f'<div class="wb-help">info: {_text(trace.info)}</div>'
    return head + render_messages(trace.messages)


class TraceViewer(w.VBox):
    """A job's runs as a live table; the selected run's conversation below it."""

    job_id = traitlets.Unicode("")
    selected = traitlets.Unicode("", help="the selected run's key: task|model|group")

    def __init__(self, job: Job | str | None = None, *, store: Store | None = None):
        self.store = store
        self.table = RunTable(columns=COLUMNS)
        self.summary = w.HTML()
        self.detail = w.HTML(note_html("select a run to read its trace"))
        self.runs: dict[str, dict[str, Any]] = {}
        self.traces: dict[str, Trace] = {}
        self._live: dict[str, list[dict[str, Any]]] = {}
        self._unsubscribe = None
        self._redraw = Throttle(self._draw)
        traitlets.link((self.table, "selected"), (self, "selected"))
        self.observe(lambda _: self._draw_detail(), "selected")
        super().__init__([stylesheet(), self.summary, self.table, self.detail])
        if job is not None:
            self.watch(job)

    def watch(self, job: Job | str) -> None:
        """Show a job: its stored runs now, then (for a running Job) every event as it comes."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        store = self.store or (job.store if isinstance(job, Job) else workbench.get_store())
        job_id = job.id if isinstance(job, Job) else store.get_job(job)["id"]
        self.runs, self.traces, self._live = {}, {}, {}
        self.job_id = job_id
        for trace in store.traces(job_id=job_id):
            self._finished(trace)
        if isinstance(job, Job) and not job.is_done():
            self._unsubscribe = job.subscribe(self._on_event)
        self.selected = ""
        self._redraw.flush()

    def select(self, index: int) -> None:
        """Select the run in row ``index`` (as a click on it does)."""
        self.selected = list(self.runs)[index]

    # -- events -------------------------------------------------------------------------

    def _on_event(self, event) -> None:
        if isinstance(event, RunStarted):
            key = run_key(event.task, event.model, event.group_index)
            self.runs[key] = {
                "key": key,
                "task": event.task,
                "model": event.model,
                "group": event.group_index,
                "status": "running",
                "steps": 0,
                "reward": "",
                "time": "",
            }
            self._live[key] = []
        elif isinstance(event, Step):
            key = run_key(event.task, event.model, event.group_index)
            if key in self.runs:
                self.runs[key]["steps"] = event.step
                self._live.setdefault(key, []).append(event.message)
        elif isinstance(event, RunFinished):
            self._finished(event.trace)
        elif isinstance(event, JobFinished):
            self._unsubscribe = None
            self._redraw.flush()
            return
        else:
            return
        self._redraw()

    def _finished(self, trace: Trace) -> None:
        row = _row(trace)
        self.runs[row["key"]] = row
        self.traces[row["key"]] = trace
        self._live.pop(row["key"], None)

    # -- drawing ------------------------------------------------------------------------

    def _draw(self) -> None:
        self.table.rows = list(self.runs.values())
        finished = len(self.traces)
        running = len(self.runs) - finished
        solved = sum(t.success for t in self.traces.values())
        self.summary.value = note_html(
            f"job {self.job_id}: {finished} runs finished ({solved} solved)"
            + (f", {running} running" if running else "")
        )
        self._draw_detail()

    def _draw_detail(self) -> None:
        key = self.selected
        if not key or key not in self.runs:
            self.detail.value = note_html("select a run to read its trace")
        elif key in self.traces:
            self.detail.value = render_trace(self.traces[key])
        else:
            row = self.runs[key]
            self.detail.value = (
                f'<div class="wb-title">{html.escape(row["task"])} · '
                f"{html.escape(row['model'])} · running, step {row['steps']}</div>"
                + render_messages(self._live.get(key, []))
            )
