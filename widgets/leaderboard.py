"""Leaderboard: success rate per model with 95% intervals, a table, and a model x task heatmap.

```python
Leaderboard(job)                    # a running or finished Job: live while it runs
Leaderboard("shop-basics")          # every stored run of a taskset
Leaderboard([before, after])        # several jobs side by side
board.watch(job)                    # add a job that starts later
```

The statistics are :func:`workbench.leaderboard` and :func:`workbench.per_task`; the widget
draws them and redraws as ``RunFinished`` events arrive.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

import ipywidgets as w
import pandas as pd
import plotly.graph_objects as go
import traitlets

import workbench
from workbench import Job, JobFinished, RunFinished, Store, Taskset, Trace
from workbench.leaderboard import (
    leaderboard_from_cells,
    merge_cells,
    per_task_from_cells,
    run_cells,
)
from workbench.store import trace_row

from ._live import Throttle, note_html, stylesheet


def _cell(trace: Trace) -> pd.DataFrame:
    """One finished run as a one-run cell table."""
    row = trace_row(trace)
    row.pop("data")
    return run_cells(pd.DataFrame([row]), ["model", "task"])


def _interval(value: float, low: float, high: float, percent: bool) -> str:
    if pd.isna(value):
        return ""
    if percent:
        return f"{value:.0%} [{low:.0%}, {high:.0%}]"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


def board_html(board: pd.DataFrame) -> str:
    """The leaderboard as an HTML table: success and reward with 95% intervals, pass@k."""
    if board.empty:
        return note_html("no finished runs yet")
    passes = [c for c in board.columns if c.startswith("pass@")]
    head = ["model", "runs", "success [95% CI]", "mean reward [95% CI]", *passes, "errors"]
    rows = []
    for _, r in board.iterrows():
        cells = [
            html.escape(str(r["model"])),
            str(r["runs"]),
            _interval(r["success_rate"], r["success_low"], r["success_high"], True),
            _interval(r["mean_reward"], r["reward_low"], r["reward_high"], False),
            *("" if pd.isna(r[p]) else f"{r[p]:.2f}" for p in passes),
            str(r["errors"]),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{h}</th>" for h in head)
    return f'<table class="wb-table wb-leaderboard"><tr>{header}</tr>{"".join(rows)}</table>'


class Leaderboard(w.VBox):
    """Bars of success rate per model (95% Wilson intervals), a table and a heatmap."""

    runs = traitlets.Int(0, help="runs counted so far")
    models = traitlets.List(traitlets.Unicode(), help="models, best first")

    def __init__(
        self,
        source: Job | Taskset | str | Iterable[Job] | None = None,
        *,
        store: Store | None = None,
    ):
        self.store = store
        self.board = pd.DataFrame()
        self.tasks = pd.DataFrame()
        # Runs summed per (model, task): the stored ones from SQL, then one per live run.
        self._cells: list[pd.DataFrame] = []
        self._unsubscribe: list = []
        self._redraw = Throttle(self._draw, 0.3)
        self.title = w.HTML()
        self.bars = go.FigureWidget(
            data=[
                go.Bar(
                    x=[],
                    y=[],
                    marker_color="#2e90fa",
                    name="success rate",
                    textposition="inside",
                    insidetextanchor="start",
                )
            ],
            layout=go.Layout(
                title="success rate (95% interval)",
                yaxis={"range": [0, 1], "tickformat": ".0%"},
                height=300,
                margin={"l": 50, "r": 20, "t": 40, "b": 40},
            ),
        )
        self.heatmap = go.FigureWidget(
            data=[go.Heatmap(z=[], x=[], y=[], zmin=0, zmax=1, colorscale="RdYlGn")],
            layout=go.Layout(
                title="success rate per task",
                height=300,
                margin={"l": 140, "r": 20, "t": 40, "b": 120},
            ),
        )
        self.table = w.HTML()
        super().__init__(
            [
                stylesheet(),
                self.title,
                w.HBox([self.bars, self.heatmap]),
                self.table,
            ]
        )
        if source is not None:
            self.show(source)
        else:
            self._draw()

    def show(self, source: Job | Taskset | str | Iterable[Job]) -> None:
        """Replace what is shown: a job (live), a taskset's stored runs, or several jobs."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe, self._cells = [], []
        if isinstance(source, Taskset | str):
            name = source.name if isinstance(source, Taskset) else source
            store = self.store or workbench.get_store()
            self._cells.append(store.run_cells(taskset=name, by=["model", "task"]))
            self.title.value = f'<div class="wb-title">Leaderboard · {html.escape(name)}</div>'
        else:
            jobs = [source] if isinstance(source, Job) else list(source)
            names = sorted({j.taskset.name for j in jobs})
            self.title.value = (
                f'<div class="wb-title">Leaderboard · {html.escape(", ".join(names))}</div>'
            )
            for job in jobs:
                self.watch(job, redraw=False)
        self._redraw.flush()

    def watch(self, job: Job, *, redraw: bool = True) -> None:
        """Count a job's stored runs and, while it runs, each run as it finishes."""
        self._cells.append(job.store.run_cells(job_id=job.id, by=["model", "task"]))
        if not job.is_done():
            self._unsubscribe.append(job.subscribe(self._on_event, steps=False))
        if redraw:
            self._redraw.flush()

    def _on_event(self, event) -> None:
        if isinstance(event, RunFinished):
            self._cells.append(_cell(event.trace))
            self._redraw()
        elif isinstance(event, JobFinished):
            self._redraw.flush()

    def _draw(self) -> None:
        cells = [c for c in self._cells if len(c)]
        if cells:  # summed now, so live runs don't pile up as one-run tables
            cells = merge_cells(pd.concat(cells, ignore_index=True))
            self._cells = [cells]
        else:
            cells = run_cells(pd.DataFrame(), ["model", "task"])
        self.board = leaderboard_from_cells(cells)
        self.tasks = per_task_from_cells(cells) if len(cells) else pd.DataFrame()
        board = self.board
        with self.bars.batch_update():
            bar = self.bars.data[0]
            bar.x = list(board["model"])
            bar.y = list(board["success_rate"])
            bar.error_y = {
                "type": "data",
                "symmetric": False,
                "array": list(board["success_high"] - board["success_rate"]),
                "arrayminus": list(board["success_rate"] - board["success_low"]),
            }
            bar.text = [f"{v:.0%}" for v in board["success_rate"]]
        with self.heatmap.batch_update():
            heat = self.heatmap.data[0]
            if self.tasks.empty:
                heat.z, heat.x, heat.y = [], [], []
            else:
                grid = self.tasks.pivot(index="model", columns="task", values="success_rate")
                grid = grid.reindex(list(board["model"]))
                heat.z = grid.astype(object).where(grid.notna(), None).to_numpy().tolist()
                heat.x = list(grid.columns)
                heat.y = list(grid.index)
        self.table.value = board_html(board)
        self.runs = int(board["runs"].sum()) if len(board) else 0
        self.models = [str(m) for m in board["model"]]
