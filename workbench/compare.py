"""Paired comparison of two models, forks, checkpoints or jobs on the same tasks.

```python
c = workbench.compare(before_job, after_job)        # or job ids, or model ids + taskset
c.diff, c.low, c.high                               # b - a in success rate, paired 95% CI
c.better                                            # True / False only if the CI excludes 0
c.flipped_up, c.flipped_down                        # tasks whose majority outcome changed
print(c)
```

Pairing is by task. On each side a task's success rate is its successful runs over its runs
(errors and timeouts are runs that did not succeed). The difference is the mean over the
tasks both sides ran of ``b_rate - a_rate``, and its 95% interval is the Student-t interval
of those per-task differences (n - 1 df; with one run per task per side, the paired
difference of binary outcomes) from :func:`workbench.leaderboard.paired_interval`. Pairing
removes what the tasks have in common (some are hard for every model), so it is narrower
than comparing two leaderboard intervals whenever the models agree on which tasks are hard.

A task **flipped up** when its majority outcome went from failure to success: a's success
rate below 1/2 and b's above 1/2 (with one run per side: a failed, b succeeded). **Flipped
down** is the reverse. A side with exactly half of its runs successful has no majority and
flips nothing. Tasks only one side ran are counted (``only_a``, ``only_b``) and left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import NotFoundError, WorkbenchError
from workbench.formatting import percent
from workbench.jobs import Job
from workbench.leaderboard import (
    job_cells,
    job_settings,
    paired_interval,
    settings_label,
    varying_settings,
)
from workbench.store import Store, get_store
from workbench.tasks import Taskset

__all__ = ["Comparison", "compare", "render_comparison", "compare_command"]

PER_TASK_COLUMNS = ["task", "a_rate", "b_rate", "diff", "flip", "a_runs", "b_runs"]


@dataclass
class Comparison:
    """b against a on the tasks both ran: ``diff = b - a`` in success rate, with its paired
    95% interval ``[low, high]``; ``better`` is True or False only when it excludes 0."""

    a: str
    b: str
    diff: float
    low: float
    high: float
    n_tasks: int
    better: bool | None
    flipped_up: list[str] = field(default_factory=list)
    flipped_down: list[str] = field(default_factory=list)
    per_task: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PER_TASK_COLUMNS))
    a_rate: float = math.nan  # mean over the common tasks of each side's success rate
    b_rate: float = math.nan
    only_a: int = 0  # tasks only a ran (left out)
    only_b: int = 0

    @property
    def verdict(self) -> str:
        """The verdict in words: b is better, b is worse (the interval excludes 0), or no
        significant difference."""
        if self.better is None:
            return "no significant difference"
        return "b is better" if self.better else "b is worse"

    @property
    def summary(self) -> str:
        """One line: the difference, its interval and the verdict."""
        return (
            f"b - a: {percent(self.diff, signed=True)} [{percent(self.low, signed=True)}, "
            f"{percent(self.high, signed=True)}] "
            f"(paired 95% CI, {self.n_tasks} common tasks): {self.verdict}"
        )

    def __str__(self) -> str:
        lines = [
            f"a: {self.a}, success {percent(self.a_rate)}",
            f"b: {self.b}, success {percent(self.b_rate)}",
            self.summary,
            f"flipped up ({len(self.flipped_up)}, failed -> succeeded): "
            + (", ".join(self.flipped_up) or "none"),
            f"flipped down ({len(self.flipped_down)}, succeeded -> failed): "
            + (", ".join(self.flipped_down) or "none"),
        ]
        if self.only_a or self.only_b:
            lines.append(f"left out: {self.only_a} tasks only a ran, {self.only_b} only b ran")
        return "\n".join(lines)


def compare(
    a: Job | str,
    b: Job | str,
    *,
    taskset: Taskset | str | None = None,
    store: Store | None = None,
) -> Comparison:
    """Compare ``b`` against ``a`` on the tasks both ran, paired by task.

    Each side is a :class:`~workbench.jobs.Job`, a job id (or a unique prefix of one), or a
    model id (``scripted:expert``, a fork ``NAME`` or a checkpoint ``NAME@CKPT``): then its
    stored runs on ``taskset``, which defaults to the other side's job's taskset. A string
    without ``:`` or ``@`` that starts a job id is read as that job. A job must have run one
    model; a model's runs must come from one checkpoint (name it as ``NAME@CKPT``
    otherwise), so nothing is pooled silently. Raises :class:`WorkbenchError` with a
    one-line message when a side has no runs or the sides share no task.
    """
    jobs = [side for side in (a, b) if isinstance(side, Job)]
    store = store or (jobs[0].store if jobs else get_store())
    taskset_name = taskset.name if isinstance(taskset, Taskset) else taskset
    a_side, b_side = _resolve(a, store), _resolve(b, store)
    if taskset_name is None:
        taskset_name = a_side.get("taskset") or b_side.get("taskset")
    a_label, a_cells = _cells(a_side, taskset_name, store)
    b_label, b_cells = _cells(b_side, taskset_name, store)
    return compare_cells(a_cells, b_cells, a=a_label, b=b_label)


def _resolve(side: Job | str, store: Store) -> dict[str, Any]:
    """What a side names: {"job": id, "taskset": name, "models": [...]} or {"model": id}."""
    if isinstance(side, Job):
        return {"job": side.id, "taskset": side.taskset.name, "models": list(side.config.models)}
    if ":" not in side and "@" not in side:  # job ids are hex: model ids with ":" never are
        try:
            row = store.get_job(side)
        except NotFoundError:
            pass
        else:
            return {"job": row["id"], "taskset": row["taskset"], "models": row["config"]["models"]}
    return {"model": side}


def _cells(side: dict[str, Any], taskset: str | None, store: Store) -> tuple[str, pd.DataFrame]:
    """A side's label and its runs summed per task (runs, successes, ...)."""
    if "job" in side:
        job_id = side["job"]
        cells = job_cells(store, job_id)
        models = sorted(cells["model"].unique()) if len(cells) else side["models"]
        if len(models) != 1:
            raise WorkbenchError(
                f"job {job_id} ran {len(models)} models ({', '.join(models)}): compare two "
                f"of them by model id with taskset='{side['taskset']}'"
            )
        if cells.empty:
            raise WorkbenchError(f"job {job_id} has no finished runs to compare")
        return f"{models[0]} (job {job_id})", cells
    model = side["model"]
    if taskset is None:
        raise WorkbenchError(
            f"which taskset should '{model}' be compared on? give one (--taskset T)"
        )
    name, _, pinned = model.partition("@")
    by = ["model", "checkpoint", "job_id", "task"]
    cells = store.run_cells(taskset=taskset, models=sorted({model, name}), by=by)
    if pinned:  # runs of NAME@CKPT, or of NAME while CKPT was its HEAD
        ckpt = cells["checkpoint"].fillna("").astype(str)
        cells = cells[(cells["model"] == model) | ckpt.str.startswith(pinned)]
    if cells.empty:
        raise WorkbenchError(
            f"no runs of '{model}' on taskset '{taskset}': "
            f"run `workbench eval {taskset} {model}` first"
        )
    checkpoints = cells["checkpoint"].drop_duplicates()
    if len(checkpoints) > 1:
        names = ", ".join("base" if pd.isna(c) else str(c)[:8] for c in checkpoints)
        raise WorkbenchError(
            f"runs of '{model}' on '{taskset}' come from several checkpoints ({names}): "
            f"name one as {name}@CHECKPOINT"
        )
    jobs = cells["job_id"].astype(object).where(cells["job_id"].notna(), None).unique()
    settings = job_settings(store, jobs)
    varying = varying_settings(settings)
    if varying:  # e.g. group 1 x 10 steps and group 3 x 2 steps: two experiments
        kinds = sorted({settings_label(s, varying) for s in settings.values()})
        raise WorkbenchError(
            f"runs of '{model}' on '{taskset}' come from jobs with different settings "
            f"({'; '.join(kinds)}): compare one job's runs by its id "
            "(`workbench jobs` lists them)"
        )
    return model, cells.drop(columns=["job_id"])


def compare_cells(
    a_cells: pd.DataFrame, b_cells: pd.DataFrame, *, a: str = "a", b: str = "b"
) -> Comparison:
    """:func:`compare` from two :func:`workbench.leaderboard.run_cells` tables (one side
    each; summed per task), e.g. ``run_cells(traces_a)``."""
    a_rate, a_runs = _rates(a_cells)
    b_rate, b_runs = _rates(b_cells)
    common = a_rate.index.intersection(b_rate.index)
    table = pd.DataFrame(
        {
            "task": common,
            "a_rate": a_rate.loc[common].to_numpy(),
            "b_rate": b_rate.loc[common].to_numpy(),
            "a_runs": a_runs.loc[common].to_numpy(),
            "b_runs": b_runs.loc[common].to_numpy(),
        }
    )
    if table.empty:
        raise WorkbenchError(f"{a} and {b} have no task in common: nothing to compare")
    table["diff"] = table["b_rate"] - table["a_rate"]
    up = (table["a_rate"] < 0.5) & (table["b_rate"] > 0.5)
    down = (table["a_rate"] > 0.5) & (table["b_rate"] < 0.5)
    table["flip"] = np.select([up, down], ["up", "down"], default="")
    # Flipped tasks first (up, then down), then the largest changes, each by task name.
    order = np.select([up, down], [0, 1], default=2)
    table = (
        table.assign(_order=order, _size=-table["diff"].abs())
        .sort_values(["_order", "_size", "task"], kind="mergesort")
        .drop(columns=["_order", "_size"])
        .reset_index(drop=True)[PER_TASK_COLUMNS]
    )
    # The smallest change a task's rate can show: 1 with one run per side, 1/k with k runs.
    step = 1.0 / max(int(table["a_runs"].max()), int(table["b_runs"].max()), 1)
    diff, low, high = paired_interval(table["diff"], step=step)
    better = None
    if low > 0 or high < 0:
        better = diff > 0
    return Comparison(
        a=a,
        b=b,
        diff=diff,
        low=low,
        high=high,
        n_tasks=len(table),
        better=better,
        flipped_up=list(table.loc[table["flip"] == "up", "task"]),
        flipped_down=list(table.loc[table["flip"] == "down", "task"]),
        per_task=table,
        a_rate=float(table["a_rate"].mean()),
        b_rate=float(table["b_rate"].mean()),
        only_a=len(a_rate.index.difference(common)),
        only_b=len(b_rate.index.difference(common)),
    )


def _rates(cells: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per task: success rate and runs (cells of one side summed over its other keys)."""
    counts = cells[["runs", "successes"]].astype(np.float64).set_axis(cells["task"])
    per_task = counts.groupby(level=0, sort=True).sum()
    return per_task["successes"] / per_task["runs"], per_task["runs"].round().astype(int)


def render_comparison(c: Comparison, *, max_rows: int = 20) -> Any:
    """A rich renderable for the CLI: the verdict line, then the per-task table (flipped
    tasks first; at most ``max_rows`` rows besides the flipped ones)."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    style = {True: "bold green", False: "bold red"}.get(c.better, "yellow")
    parts: list[Any] = [
        Text.assemble("a: ", (c.a, "bold"), f", success {percent(c.a_rate)}"),
        Text.assemble("b: ", (c.b, "bold"), f", success {percent(c.b_rate)}"),
        Text(c.summary, style=style),
    ]
    if c.only_a or c.only_b:
        parts.append(Text(f"left out: {c.only_a} tasks only a ran, {c.only_b} only b ran"))
    table = Table(title="Per task (flipped first)", title_justify="left")
    for col, justify in (
        ("task", "left"),
        ("a", "right"),
        ("b", "right"),
        ("b - a", "right"),
        ("flipped", "left"),
    ):
        table.add_column(col, justify=justify, overflow="fold")
    flipped = len(c.flipped_up) + len(c.flipped_down)
    shown = c.per_task.head(flipped + max_rows)
    for r in shown.to_dict("records"):
        flip = {"up": "[green]up[/]", "down": "[red]down[/]"}.get(r["flip"], "")
        table.add_row(
            escape(r["task"]),
            f"{percent(r['a_rate'])} of {r['a_runs']}",
            f"{percent(r['b_rate'])} of {r['b_runs']}",
            percent(r["diff"], signed=True),
            flip,
        )
    if len(c.per_task) > len(shown):
        table.caption = f"… {len(c.per_task) - len(shown)} more tasks: Comparison.per_task"
    parts.append(table)
    return Group(*parts)


def compare_command(a: str, b: str, taskset: str | None = None) -> str:
    """The text ``workbench compare A B --taskset T`` prints (plain, no colour codes)."""
    import io

    from rich.console import Console

    comparison = compare(a, b, taskset=taskset)
    console = Console(file=io.StringIO(), width=100, color_system=None, highlight=False)
    console.print(render_comparison(comparison))
    return console.file.getvalue().rstrip() + "\n"
