"""Leaderboard: success rate per model with 95% intervals, a table, and a model x task heatmap.

```python
Leaderboard(job)                    # a running or finished Job: live while it runs
Leaderboard("shop-basics")          # every stored run of a taskset
Leaderboard([before, after])        # several jobs side by side
board.watch(job)                    # add a job that starts later
board.link(viewer)                  # a click on a bar or a heatmap cell filters a TraceViewer
board.export("board.csv")           # the table as CSV, JSON Lines or Parquet
```

The statistics are :func:`workbench.leaderboard.leaderboard_from_cells` and
:func:`~workbench.leaderboard.per_task_from_cells` over runs summed per cell in SQL; the widget
draws them and redraws as ``RunFinished`` events arrive. Runs are never pooled silently: a
row is a model, and when the runs shown differ in checkpoint (a fork before and after
training) or in settings (group size, step limit, sampling, timeout) the rows say which
(``my-fork@20260101…``, ``scripted:weak · group 4``).
"""

from __future__ import annotations

import contextlib
import html
import io
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import ipywidgets as w
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import traitlets

import workbench
from workbench import Job, JobFinished, RunFinished, Store, Taskset, Trace
from workbench.errors import NotFoundError
from workbench.export import FORMATS, export_leaderboard
from workbench.formatting import percent as rate_text
from workbench.formatting import rate_interval, reward, reward_interval
from workbench.leaderboard import (
    CELL_COLUMNS,
    SETTINGS,  # the settings that make two jobs different experiments
    leaderboard_from_cells,
    merge_cells,
    per_task_from_cells,
)
from workbench.training import list_forks

from ._live import Throttle, error_html, later, note_html, stylesheet
from .browser import Download
from .charts import Chart

KEYS = ["model", "checkpoint", "job_id", "task"]
WIDE_HEATMAP = 12  # more tasks than this: the heatmap gets a row of its own  # what runs are summed by before labelling


def run_cell(trace: Trace) -> dict[str, Any]:
    """One finished run as a cell row (the leaderboard's rules: see workbench.leaderboard)."""
    error = trace.stop_reason == "error"
    success = trace.success and not error
    reward = 0.0 if error else float(trace.reward)
    return {
        "model": trace.model,
        "checkpoint": trace.checkpoint,
        "job_id": trace.job_id,
        "task": trace.task,
        "runs": 1.0,
        "successes": float(success),
        "errors": float(error),
        "timeouts": float(trace.stop_reason == "timeout" and not success),
        "reward_sum": reward,
        "reward_sq": reward * reward,
    }


def _interval(value: float, low: float, high: float, percent: bool) -> str:
    if pd.isna(value):
        return ""
    if percent:
        return rate_interval(value, low, high)
    return reward_interval(value, low, high)


def board_html(board: pd.DataFrame) -> str:
    """The leaderboard as an HTML table: success and reward with 95% intervals, pass@k,
    and failures, errors and timeouts counted apart."""
    if board.empty:
        return note_html("no finished runs yet")
    passes = [c for c in board.columns if c.startswith("pass@")]
    head = ["model", "runs", "success [95% CI]", "mean reward [95% CI]", *passes]
    head += ["failures", "errors", "timeouts"]
    rows = []
    for _, r in board.iterrows():
        cells = [
            html.escape(str(r["model"])),
            str(r["runs"]),
            _interval(r["success_rate"], r["success_low"], r["success_high"], True),
            _interval(r["mean_reward"], r["reward_low"], r["reward_high"], False),
            *("" if pd.isna(r[p]) else reward(r[p]) for p in passes),
            str(r["failures"]),
            str(r["errors"]),
            str(r["timeouts"]),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{h}</th>" for h in head)
    return f'<table class="wb-table wb-leaderboard"><tr>{header}</tr>{"".join(rows)}</table>'


class Leaderboard(w.VBox):
    """Bars of success rate per model (95% intervals), a table and a model x task heatmap."""

    runs = traitlets.Int(0, help="runs counted so far")
    models = traitlets.List(traitlets.Unicode(), help="rows (models), best first")
    selection = traitlets.Dict(
        help="the last bar or cell clicked: model, checkpoint, jobs, task (None for a bar)"
    )

    def __init__(
        self,
        source: Job | Taskset | str | Iterable[Job] | None = None,
        *,
        store: Store | None = None,
    ):
        self.store = store
        self.board = pd.DataFrame()
        self.tasks = pd.DataFrame()
        self.rows: dict[str, dict[str, Any]] = {}  # label -> model, checkpoint, jobs
        # Stored runs are read by these (SQL GROUP BY); live runs are kept per job and run
        # until the store has them.
        self._sources: list[tuple[Store, Callable[[Store], pd.DataFrame], str | None]] = []
        self._stored: list[pd.DataFrame] = []
        self._live: dict[str, dict[tuple, dict[str, Any]]] = {}
        self._jobs: dict[str, Job] = {}
        self._stored_keys: dict[str, set[tuple[str, str, int]]] = {}  # per live job, as read
        self._configs: dict[str, dict[str, Any]] = {}
        self._models_jobs: dict[str, list[str]] = {}  # a taskset's jobs that ran each model
        self._unsubscribe: list = []
        self._redraw = Throttle(self._draw, 0.3)
        self.title = w.HTML()
        self.bars = Chart(
            go.Figure(
                go.Bar(
                    x=[],
                    y=[],
                    marker_color="#2e90fa",
                    name="success rate",
                    textposition="inside",
                    insidetextanchor="start",
                    hovertemplate="%{x}: %{text}<extra></extra>",
                ),
                layout={
                    "title": {"text": "success rate (95% interval)"},
                    "yaxis": {"range": [0, 1], "tickformat": ".0%"},
                    "xaxis": {"automargin": True},
                    "height": 300,
                    "margin": {"l": 50, "r": 20, "t": 40, "b": 40},
                },
            )
        ).add_class("wb-bars")
        self.heatmap = Chart(
            go.Figure(
                go.Heatmap(
                    z=[],
                    x=[],
                    y=[],
                    zmin=0,
                    zmax=1,
                    colorscale="RdYlGn",
                    colorbar={"tickformat": ".0%", "thickness": 12},
                    hovertemplate="%{y} · %{x}: %{text}<extra></extra>",
                    xgap=1,
                    ygap=1,
                ),
                layout={
                    "title": {"text": "success rate per task (click a cell for its traces)"},
                    "height": 300,
                    "xaxis": {
                        "tickangle": -45,
                        "automargin": True,
                        "type": "category",
                        "dtick": 1,  # every task named, however many
                    },
                    "yaxis": {"automargin": True, "type": "category", "autorange": "reversed"},
                    "margin": {"l": 20, "r": 20, "t": 40, "b": 20},
                },
            )
        ).add_class("wb-heat")
        self.table = w.HTML()
        self.export_format = w.Dropdown(options=FORMATS, value="csv", layout=w.Layout(width="90px"))
        self.export_button = w.Button(description="Export table", icon="download")
        self.download = Download()
        self.message = w.HTML()
        self.bars.observe(self._on_click, "clicked")
        self.heatmap.observe(self._on_click, "clicked")
        self.export_button.on_click(lambda _: self.download_export())
        super().__init__(
            [
                stylesheet(),
                self.title,
                w.Box([self.bars, self.heatmap]).add_class("wb-charts"),
                self.table,
                w.HBox(
                    [self.export_format, self.export_button, self.download, self.message],
                    layout=w.Layout(align_items="center"),
                ),
            ]
        )
        self.add_class("wb-board")
        if source is not None:
            self.show(source)
        else:
            self._draw()

    # -- what is counted ----------------------------------------------------------------

    def show(self, source: Job | Taskset | str | Iterable[Job]) -> None:
        """Replace what is shown: a job (live), a taskset's stored runs, or several jobs.

        A taskset shown again (a refresh) goes on following its jobs that still run: their
        runs count as they finish, not only once the job ends."""
        running = [j for j in self._jobs.values() if not j.is_done()]
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe, self._sources, self._live, self._jobs = [], [], {}, {}
        self._stored_keys = {}
        self._configs.pop(None, None)
        store = self.store or workbench.get_store()
        job_id = self._stored_job(store, source) if isinstance(source, str) else None
        if job_id is not None:  # a stored job's id (or prefix), as `workbench jobs` lists
            row = store.get_job(job_id)
            self._sources.append((store, lambda s: self._read(s, job_id=job_id), None))
            self.title.value = (
                f'<div class="wb-title">Leaderboard · {html.escape(row["taskset"])} · '
                f"job {html.escape(job_id)}</div>"
            )
        elif isinstance(source, Taskset | str):
            name = source.name if isinstance(source, Taskset) else source
            self._sources.append((store, lambda s: self._read(s, taskset=name), name))
            self.title.value = f'<div class="wb-title">Leaderboard · {html.escape(name)}</div>'
            for job in running:
                if job.taskset.name == name:
                    self._follow(job)
        else:
            jobs = [source] if isinstance(source, Job) else list(source)
            names = sorted({j.taskset.name for j in jobs})
            self.title.value = (
                f'<div class="wb-title">Leaderboard · {html.escape(", ".join(names))}</div>'
            )
            for job in jobs:
                self._follow(job)
        self._reconcile()

    @staticmethod
    def _stored_job(store: Store, name: str) -> str | None:
        """The id of the stored job ``name`` names, when it names no taskset; a name that
        is neither is an error (not an empty board that reads "no runs yet")."""
        from workbench.tasks import builtin_tasksets

        if name in builtin_tasksets() or store.load_taskset(name) is not None:
            return None
        if name in set(store.jobs()["taskset"]):  # runs of a taskset never saved (a file)
            return None
        try:
            return store.get_job(name)["id"]
        except NotFoundError:
            raise NotFoundError(
                f"no taskset or job named '{name}': `workbench tasksets` and `workbench jobs` "
                "list them"
            ) from None

    def watch(self, job: Job, *, redraw: bool = True) -> None:
        """Count a job's stored runs and, while it runs, each run as it finishes (a job
        resumed under the same id is followed again)."""
        self._follow(job)
        if redraw:
            self._reconcile()

    def _follow(self, job: Job) -> None:
        if self._jobs.get(job.id) is job:
            return
        again = job.id in self._jobs  # the same job resumed: a new Job object, new events
        self._jobs[job.id] = job
        if not job.is_done():  # subscribe first, then read (in _reconcile)
            self._live[job.id] = {}
            self._unsubscribe.append(job.subscribe(self._on_event, steps=False))
            later(0.5, self._reconcile)  # runs still in the trace writer's last batch
        covered = again or any(name == job.taskset.name for _, _, name in self._sources)
        if not covered:  # a taskset shown already reads this job's stored runs
            read = lambda s, i=job.id: self._read(s, job_id=i)  # noqa: E731
            self._sources.append((job.store, read, None))

    def _reconcile(self) -> None:
        """Read the stored runs again; keep live runs only until the store has them.

        The sums and the list of stored runs are read as of one moment (a run the trace
        writer commits meanwhile is in both or in neither), and a run's event that comes
        after its run was read from the store is not counted again."""
        stores = {id(store): store for store, _, _ in self._sources}
        stores.update({id(job.store): job.store for job in self._jobs.values()})
        with contextlib.ExitStack() as reading:
            for store in stores.values():
                reading.enter_context(store.snapshot())
            self._stored = [read(store) for store, read, _ in self._sources]
            self._stored_keys = {
                job_id: self._jobs[job_id].store.finished_runs(job_id) for job_id in self._live
            }
        for job_id, runs in list(self._live.items()):
            stored = self._stored_keys[job_id]
            self._live[job_id] = {k: v for k, v in runs.items() if k not in stored}
            if self._jobs[job_id].is_done() and not self._live[job_id]:
                del self._live[job_id], self._stored_keys[job_id]  # all in the store now
        self._redraw.flush()

    def _on_event(self, event) -> None:
        if isinstance(event, RunFinished):
            trace = event.trace
            key = (trace.task, trace.model, trace.group_index)
            if key in self._stored_keys.get(event.job_id, ()):
                return  # read from the store already
            runs = self._live.setdefault(event.job_id, {})
            runs[key] = run_cell(trace)
            self._redraw()
        elif isinstance(event, JobFinished):
            self._reconcile()

    # -- clicks, export -----------------------------------------------------------------

    def link(self, viewer) -> None:
        """Filter a :class:`TraceViewer` to the model (and task) of each click on the charts."""

        def follow(change) -> None:
            picked = change.new
            if picked:
                viewer.filter(model=picked["model"], task=picked.get("task") or "")

        self.observe(follow, "selection")

    def _on_click(self, change) -> None:
        point = change.new or {}
        heat = change.owner is self.heatmap
        label = point.get("y") if heat else point.get("x")
        if label not in self.rows:
            return
        self.selection = {
            **self.rows[label],
            "label": label,
            "task": point.get("x") if heat else None,
            "at": point.get("at"),
        }

    def export(self, path: str | Path | io.BytesIO, *, format: str | None = None) -> int:
        """Write the table (one row per model) as CSV, JSON Lines or Parquet."""
        return export_leaderboard(self.board, path, format=format)

    def download_export(self) -> None:
        """The "Export table" button: the table as a file the browser saves."""
        fmt = self.export_format.value
        buffer = io.BytesIO()
        try:
            self.export(buffer, format=fmt)
        except workbench.WorkbenchError as e:
            self.message.value = error_html(str(e))
            return
        self.download.save(f"leaderboard.{fmt}", buffer.getvalue())
        self.message.value = note_html(f"exported {len(self.board)} rows as leaderboard.{fmt}")

    # -- drawing ------------------------------------------------------------------------

    def _cells(self) -> pd.DataFrame:
        live = [row for runs in self._live.values() for row in runs.values()]
        frames = [c for c in self._stored if len(c)]
        if live:
            frames.append(pd.DataFrame(live))
        if not frames:
            return pd.DataFrame(columns=KEYS + CELL_COLUMNS)
        cells = pd.concat(frames, ignore_index=True)
        for column in ("checkpoint", "job_id"):  # one "none" (not NaN != NaN) for dict keys
            cells[column] = cells[column].astype(object).where(cells[column].notna(), None)
        return merge_cells(cells, KEYS)

    def _read(self, store: Store, taskset: str | None = None, job_id: str | None = None):
        """Stored runs summed per cell. The database sums them by (model, task) over an
        index (a million runs in a fraction of a second); runs are split further by job
        only when the jobs' settings differ, and by checkpoint only for forks."""
        jobs = [job_id] if job_id else self._taskset_jobs(store, taskset)
        settings = {json.dumps(self._settings(j, store), default=str) for j in jobs}
        if len(settings) > 1:
            return store.run_cells(job_id=job_id, taskset=taskset, by=KEYS)
        if jobs and not job_id:  # the settings every stored job of the taskset shares
            self._configs[None] = self._settings(jobs[0], store)
        cells = store.run_cells(job_id=job_id, taskset=taskset, by=["model", "task"])
        cells = cells.assign(checkpoint=None, job_id=job_id)
        forks = {f.name for f in list_forks(store)}
        forked = sorted(set(cells["model"]) & forks)
        if forked:  # a fork's runs may come from several checkpoints: never pooled
            split = store.run_cells(job_id=job_id, taskset=taskset, models=forked, by=KEYS)
            cells = pd.concat([cells[~cells["model"].isin(forked)], split], ignore_index=True)
        return cells[KEYS + CELL_COLUMNS]

    def _taskset_jobs(self, store: Store, taskset: str | None) -> list[str]:
        jobs = store.jobs()
        jobs = jobs[jobs["taskset"] == taskset]
        self._models_jobs = {
            model: [r.id for r in jobs.itertuples() if model in r.models.split(", ")]
            for model in {m for r in jobs.itertuples() for m in r.models.split(", ")}
        }
        return list(jobs["id"])

    def _settings(self, job_id: str | None, store: Store | None = None) -> dict[str, Any]:
        """A job's settings (None: those of the stored jobs summed together, all alike)."""
        if job_id is None:
            return self._configs.get(None) or dict.fromkeys(SETTINGS)
        if job_id not in self._configs:
            job = self._jobs.get(job_id)
            if job is not None:
                config = job.config.model_dump()
            else:
                store = store or (self._sources[0][0] if self._sources else workbench.get_store())
                config = store.get_job(job_id)["config"]
            self._configs[job_id] = {k: config.get(k) for k in SETTINGS}
        return self._configs[job_id]

    def _labels(self, cells: pd.DataFrame) -> pd.Series:
        """Each cell's row name: the model, with its checkpoint and settings where the runs
        shown differ in them (so nothing is pooled silently)."""
        rows = cells[["model", "checkpoint", "job_id"]].drop_duplicates()
        settings = {j: self._settings(j) for j in rows["job_id"].unique()}
        varying = [k for k in SETTINGS if len({str(s[k]) for s in settings.values()}) > 1]
        checkpoints = rows.groupby("model")["checkpoint"].apply(lambda c: c.nunique(dropna=False))
        names: dict[tuple, str] = {}
        self.rows = {}
        for model, checkpoint, job_id in rows.itertuples(index=False):
            label = str(model)
            if checkpoints.get(model, 1) > 1:
                label += f"@{str(checkpoint)[:15]}" if isinstance(checkpoint, str) else " (base)"
            setting = settings.get(job_id, {})
            label += "".join(f" · {SETTINGS[k].format(setting[k])}" for k in varying)
            names[(model, checkpoint, job_id)] = label
            row = self.rows.setdefault(label, {"model": str(model), "jobs": []})
            row["checkpoint"] = checkpoint if isinstance(checkpoint, str) else None
            ran = [job_id] if isinstance(job_id, str) else self._models_jobs.get(model, [])
            row["jobs"] += [j for j in ran if j not in row["jobs"]]
        keys = zip(cells["model"], cells["checkpoint"], cells["job_id"], strict=True)
        return pd.Series([names[k] for k in keys], index=cells.index)

    def _draw(self) -> None:
        cells = self._cells()
        if len(cells):
            labelled = cells.assign(model=self._labels(cells))[["model", "task", *CELL_COLUMNS]]
        else:
            labelled, self.rows = pd.DataFrame(columns=["model", "task", *CELL_COLUMNS]), {}
        self.board = leaderboard_from_cells(labelled)
        self.tasks = per_task_from_cells(labelled) if len(labelled) else pd.DataFrame()
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
                "color": "#98a2b3",
            }
            bar.text = [rate_text(v) for v in board["success_rate"]]
        with self.heatmap.batch_update():
            heat = self.heatmap.data[0]
            if self.tasks.empty:
                heat.z, heat.x, heat.y, heat.text = [], [], [], []
            else:
                grid = self.tasks.pivot(index="model", columns="task", values="success_rate")
                grid = grid.reindex(list(board["model"]))
                values = grid.to_numpy(dtype=float)
                heat.z = [[None if np.isnan(v) else v for v in row] for row in values]
                # the rates as text, never rounded onto 0% or 100% (a d3 ".0%" would be)
                heat.text = [["" if np.isnan(v) else rate_text(v) for v in row] for row in values]
                heat.x = [str(t) for t in grid.columns]
                heat.y = [str(m) for m in grid.index]
                many = len(grid.columns) > WIDE_HEATMAP
                heat.texttemplate = None if many else "%{text}"
                # Many tasks: the heatmap takes the whole width and names the tasks upright,
                # shortened (the full name is in the hover), so 40 fit without scrolling.
                names = [str(t) for t in grid.columns]
                short = [n if len(n) <= 32 else n[:30] + "…" for n in names]
                xaxis = self.heatmap.figure.layout.xaxis
                xaxis.tickvals, xaxis.ticktext = names, short
                xaxis.tickangle = -90 if many else -45
                slant = 1.0 if many else 0.72
                labels = int(max(len(n) for n in short) * 6.5 * slant) + 20
                self.heatmap.figure.layout.height = 90 + 30 * len(grid.index) + labels
                self.heatmap.layout.flex = "1 1 100%" if many else None
        self.table.value = board_html(board)
        self.runs = int(board["runs"].sum()) if len(board) else 0
        self.models = [str(m) for m in board["model"]]
