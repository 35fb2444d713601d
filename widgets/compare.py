"""CompareView: two models, forks, checkpoints or jobs on one taskset, task by task.

```python
view = CompareView("arithmetic-heldout")
view.a.value, view.b.value = before.id, after.id   # jobs, model ids or NAME@CHECKPOINT
view.run()                                         # the "Compare" button: workbench.compare
view.comparison.per_task                           # flipped tasks first
view.table.selected = "add-3-4"                    # a click on a task row sets view.task
```

The numbers are :func:`workbench.compare`'s: the paired difference in success rate with its
95% interval, the verdict, and the per-task table with the tasks that flipped first.
"""

from __future__ import annotations

import html

import ipywidgets as w
import pandas as pd
import traitlets

import workbench
from workbench import Comparison, Store, WorkbenchError
from workbench.formatting import percent

from ._live import error_html, note_html, stylesheet
from .table import Table

COLUMNS = [("task", "task"), ("a", "a"), ("b", "b"), ("diff", "b − a"), ("flip", "flipped")]


def comparison_rows(comparison: Comparison) -> list[dict]:
    """The per-task table's rows (flipped tasks first, as :func:`workbench.compare` orders)."""
    rows = []
    for r in comparison.per_task.to_dict("records"):
        flip = {"up": "up ↑ (failed → succeeded)", "down": "down ↓ (succeeded → failed)"}
        rows.append(
            {
                "key": str(r["task"]),
                "task": str(r["task"]),
                "a": f"{percent(r['a_rate'])} of {int(r['a_runs'])}",
                "b": f"{percent(r['b_rate'])} of {int(r['b_runs'])}",
                "diff": percent(r["diff"], signed=True),
                "flip": flip.get(r["flip"], ""),
                "_diff": None if r["diff"] == 0 else (float(r["diff"]) + 1) / 2,
                "_class": f"wb-flip-{r['flip']}" if r["flip"] else "",
            }
        )
    return rows


class CompareView(w.VBox):
    """Pick two sides on a taskset; the paired comparison and the tasks that flipped."""

    taskset = traitlets.Unicode("")
    comparison = traitlets.Any(None, help="the last workbench.Comparison")
    task = traitlets.Unicode("", help="the task row clicked last")

    def __init__(self, taskset: str | None = None, *, store: Store | None = None):
        self.store = store
        wide = w.Layout(width="440px")
        style = {"description_width": "90px"}
        self.a = w.Dropdown(description="a (before)", style=style, layout=wide)
        self.b = w.Dropdown(description="b (after)", style=style, layout=wide)
        self.compare_button = w.Button(
            description="Compare", icon="balance-scale", button_style="primary"
        )
        self.verdict = w.HTML()
        self.table = Table(COLUMNS, shade=["diff"], empty="no comparison yet")
        self.compare_button.on_click(lambda _: self.run())
        traitlets.link((self.table, "selected"), (self, "task"))
        self.observe(lambda c: self.show(c.new), "taskset")
        super().__init__(
            [
                stylesheet(),
                w.HTML(
                    '<div class="wb-help">Two models, checkpoints (NAME@CHECKPOINT) or '
                    "single-model jobs on this taskset, paired by task. Click a task for its "
                    "traces.</div>"
                ),
                w.HBox(
                    [self.a, self.b, self.compare_button], layout=w.Layout(flex_flow="row wrap")
                ),
                self.verdict,
                self.table,
            ]
        )
        self.add_class("wb-compare")
        if taskset:
            self.taskset = taskset

    def _store(self) -> Store:
        return self.store or workbench.get_store()

    def show(self, taskset: str) -> None:
        """List what can be compared on a taskset: its models (by checkpoint) and its
        single-model jobs, newest first."""
        store = self._store()
        options: list[tuple[str, str]] = []
        cells = store.run_cells(taskset=taskset, by=["model", "checkpoint"])
        if len(cells):
            by_model = cells.groupby("model", sort=True)["checkpoint"]
            for model, checkpoints in by_model:
                pinned = [c for c in checkpoints.unique() if isinstance(c, str) and c]
                if len(pinned) > 1 or (pinned and checkpoints.isna().any()):
                    options += [(f"{model}@{c} (checkpoint)", f"{model}@{c}") for c in pinned]
                else:
                    options.append((f"{model} (model)", str(model)))
        jobs = store.jobs()
        jobs = jobs[jobs["taskset"] == taskset]
        for r in jobs.itertuples():
            if "," not in r.models and r.done:
                options.append((f"job {r.id} · {r.models} · {r.done} runs", r.id))
        for dropdown, pick in ((self.a, 0), (self.b, 1)):
            value = dropdown.value
            dropdown.options = options
            values = [v for _, v in options]
            dropdown.value = (
                value
                if value in values
                else (values[min(pick, len(values) - 1)] if values else None)
            )
        self.comparison = None
        self.verdict.value = note_html(
            "choose two sides and press Compare" if len(options) >= 2 else
            "this taskset needs runs of two models (or two jobs) to compare"
        )  # fmt: skip
        self.table.show([])

    def run(self, a: str | None = None, b: str | None = None) -> Comparison | None:
        """Compare b against a (the two choices, or the ids given) on the taskset."""
        a, b = a or self.a.value, b or self.b.value
        if not a or not b:
            self.verdict.value = error_html("choose both sides (a and b)")
            return None
        try:
            found = workbench.compare(a, b, taskset=self.taskset or None, store=self._store())
        except WorkbenchError as e:
            self.verdict.value = error_html(str(e))
            return None
        self.comparison = found
        kind = {True: "wb-ok", False: "wb-bad"}.get(found.better, "")
        left = f" · left out: {found.only_a} tasks only a ran, {found.only_b} only b ran"
        self.verdict.value = (
            f'<div class="wb-note">a: <b>{html.escape(found.a)}</b>, success '
            f"{percent(found.a_rate)} · b: <b>{html.escape(found.b)}</b>, success "
            f"{percent(found.b_rate)}"
            f"</div><span class='wb-badge {kind}'>{html.escape(found.summary)}</span>"
            f"<div class='wb-note'>flipped up: {len(found.flipped_up)} · flipped down: "
            f"{len(found.flipped_down)}{left if found.only_a or found.only_b else ''}</div>"
        )
        self.table.show(comparison_rows(found))
        return found

    @property
    def per_task(self) -> pd.DataFrame:
        """The last comparison's per-task table (empty before the first)."""
        return self.comparison.per_task if self.comparison is not None else pd.DataFrame()
