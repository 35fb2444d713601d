"""LearningCurveView: held-out success along any fork's chain of checkpoints, with intervals.

```python
view = LearningCurveView("smollm2-grpo")   # the dashboard's "Learning curve" tab
view.curve                                  # workbench.learning_curve's DataFrame
learning_curve_figure(result.curve)         # the same plot for a notebook (03-the-loop)
```

The numbers are :func:`workbench.learning_curve`'s: one point per checkpoint on the fork's
HEAD lineage that was evaluated on the taskset (round 0: the base model, where a
self-improvement loop evaluated it), each with its 95% interval clustered by task.
"""

from __future__ import annotations

import html

import ipywidgets as w
import pandas as pd
import plotly.graph_objects as go
import traitlets

import workbench
from workbench import Store, WorkbenchError
from workbench.formatting import percent, rate_interval
from workbench.training import checkpoints, list_forks

from ._live import error_html, note_html, stylesheet
from .charts import Chart


def learning_curve_figure(curve: pd.DataFrame, title: str = "") -> go.Figure:
    """Success per round with its 95% interval; hovering a point names its checkpoint."""
    return go.Figure(
        go.Scatter(
            x=curve["round"],
            y=curve["success_rate"],
            mode="lines+markers",
            error_y={
                "type": "data",
                "symmetric": False,
                "array": curve["success_high"] - curve["success_rate"],
                "arrayminus": curve["success_rate"] - curve["success_low"],
            },
            text=curve["checkpoint"],
            customdata=list(zip(curve["runs"], map(percent, curve["success_rate"]), strict=True)),
            hovertemplate=(
                "round %{x}: %{customdata[1]} of %{customdata[0]} runs<br>%{text}<extra></extra>"
            ),
        ),
        layout={
            "title": title,
            "xaxis": {"title": "round", "dtick": 1},
            "yaxis": {"title": "held-out success", "range": [0, 1.05], "tickformat": ".0%"},
            "height": 320,
            "margin": {"t": 40 if title else 10},
        },
    )


class LearningCurveView(w.VBox):
    """Pick a fork (and which evaluation); its learning curve, plotted and tabled."""

    fork = traitlets.Unicode("")
    curve = traitlets.Instance(pd.DataFrame, allow_none=True)

    def __init__(self, fork: str | None = None, *, store: Store | None = None):
        self.store = store
        self.forks = w.Dropdown(description="fork")
        self.tasksets = w.Dropdown(description="evaluated on")
        self.chart = Chart()
        self.message = w.HTML()
        self.table = w.HTML()
        super().__init__(
            [
                stylesheet(),
                w.HBox([self.forks, self.tasksets]),
                self.message,
                self.chart,
                self.table,
            ]
        )
        self.add_class("wb-curve")
        self.forks.observe(lambda c: setattr(self, "fork", c["new"] or ""), "value")
        self.observe(self._on_fork, "fork")
        self._quiet = False
        self.tasksets.observe(lambda _: self._quiet or self._draw(), "value")
        self.refresh(select=fork)

    def refresh(self, select: str | None = None) -> None:
        """Read the forks again; show ``select`` (or the one shown, or the newest)."""
        names = [f.name for f in list_forks(self.store)]
        keep = select or self.fork
        self.forks.options = names
        if not names:
            self.message.value = note_html(
                "No fork yet: <code>workbench.fork(base, name)</code>, then train and evaluate."
            )
            return
        self.fork = keep if keep in names else names[-1]
        self._on_fork()  # drawn again: its checkpoints may have changed

    def _on_fork(self, _change=None) -> None:
        if self.fork in self.forks.options:
            self.forks.value = self.fork  # when set from code
        evaluated = []
        for ckpt in checkpoints(self.fork, self.store) if self.fork else []:
            evaluated += [ts for ts in ckpt.evals if ts not in evaluated]
        shown = self.tasksets.value
        self._quiet = True
        try:
            self.tasksets.options = evaluated
            self.tasksets.value = shown if shown in evaluated else (evaluated or [None])[0]
        finally:
            self._quiet = False
        self._draw()

    def _draw(self) -> None:
        if not self.fork:
            return
        try:
            curve = workbench.learning_curve(self.fork, self.tasksets.value, store=self.store)
        except WorkbenchError as e:
            self.message.value = error_html(str(e))
            return
        self.curve = curve
        if curve.empty:
            self.message.value = note_html(
                f"No checkpoint of {html.escape(self.fork)} has been evaluated yet: evaluate "
                "one (the training panel's “Evaluate”, or <code>workbench.evaluate</code> on "
                "the fork's id) and its result joins the tree."
            )
        else:
            self.message.value = ""
        with self.chart.batch_update():
            self.chart.figure = learning_curve_figure(curve)
            self.chart.figure.layout.template = "none"
        self.table.value = _table_html(curve)


def _table_html(curve: pd.DataFrame) -> str:
    if curve.empty:
        return ""
    rows, previous = [], None
    for r in curve.to_dict("records"):
        rate = r["success_rate"]
        change = "" if previous is None else percent(rate - previous, signed=True)
        previous = rate
        cells = [
            str(r["round"]),
            html.escape(str(r["checkpoint"])),
            str(r["runs"]),
            rate_interval(rate, r["success_low"], r["success_high"]),
            change,
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(
        f"<th>{h}</th>" for h in ("round", "checkpoint", "runs", "success [95% CI]", "change")
    )
    return f"<table class='wb-table'><tr>{head}</tr>{''.join(rows)}</table>"
