"""TrainingPanel: fork a base model, train it on successful traces, pick the HEAD checkpoint.

```python
panel = TrainingPanel()                          # or TrainingPanel("my-model")
panel.fork_name.value = "my-model"; panel.fork_button.click()
panel.jobs.value = (teacher_job.id,)             # which traces to learn from
panel.params["epochs"].value = "1"
await panel.train()                              # "Train": workbench.train in a thread
panel.tree.value = "base"; panel.head_button.click()   # "Set HEAD" back to the base model
```

Each control calls the library (:func:`workbench.fork`, :func:`workbench.train`,
:func:`workbench.checkpoints`, :func:`workbench.set_head`); hyper-parameters are the fields
of :class:`workbench.training.TrainConfig`. The loss curve is fed by ``train(on_step=...)``.
"""

from __future__ import annotations

import asyncio
import html
import json
from typing import Any

import ipywidgets as w
import plotly.graph_objects as go
import pydantic
import traitlets

import workbench
from workbench import Store, WorkbenchError
from workbench.tasks import builtin_tasksets
from workbench.training import TrainConfig, checkpoints, list_forks
from workbench.training.registry import BASE_MODELS, get_fork

from ._live import error_html, note_html, stylesheet

# The hyper-parameters the panel offers (every other TrainConfig field keeps its default).
PARAMS = (
    "epochs",
    "lr",
    "lora_r",
    "lora_alpha",
    "batch_size",
    "max_length",
    "min_reward",
    "max_per_task",
    "seed",
)
BASE = "base"  # the tree's entry for the base model (checkpoint ids are timestamps)


class TrainingPanel(w.VBox):
    """Fork, choose data and hyper-parameters, train with a live loss curve, set HEAD."""

    model = traitlets.Unicode("", help="the fork being trained")
    training = traitlets.Bool(False)
    error = traitlets.Unicode()
    status = traitlets.Unicode()

    def __init__(self, model: str | None = None, *, store: Store | None = None):
        self.store = store
        style = {"description_width": "110px"}
        self.base = w.Dropdown(options=list(BASE_MODELS), description="base", style=style)
        self.fork_name = w.Text(placeholder="new model name", description="name", style=style)
        self.fork_button = w.Button(description="Fork", icon="code-branch")
        self.models = w.Dropdown(description="model", style=style)
        self.taskset = w.Dropdown(description="taskset", style=style)
        self.jobs = w.SelectMultiple(
            description="jobs", rows=4, style=style, layout=w.Layout(width="520px")
        )
        defaults = TrainConfig()
        self.params = {
            name: w.Text(
                value="" if getattr(defaults, name) is None else str(getattr(defaults, name)),
                description=name.replace("_", " "),
                style=style,
                layout=w.Layout(width="230px"),
            )
            for name in PARAMS
        }
        self.train_button = w.Button(
            description="Train", icon="graduation-cap", button_style="primary"
        )
        self.message = w.HTML()
        self.loss = go.FigureWidget(
            data=[go.Scatter(x=[], y=[], mode="lines+markers", name="loss")],
            layout=go.Layout(
                title="training loss",
                xaxis_title="step",
                height=260,
                margin={"l": 50, "r": 20, "t": 40, "b": 40},
            ),
        )
        self.tree = w.Select(
            description="checkpoints", rows=6, style=style, layout=w.Layout(width="620px")
        )
        self.head_button = w.Button(description="Set HEAD", icon="flag")
        self.details = w.HTML()
        self.fork_button.on_click(lambda _: self.fork())
        self.train_button.on_click(lambda _: self.train())
        self.head_button.on_click(lambda _: self.set_head())
        self.models.observe(lambda c: setattr(self, "model", c.new or ""), "value")
        self.observe(self._on_model, "model")
        self.taskset.observe(lambda _: self._list_jobs(), "value")
        self.tree.observe(lambda _: self._show_details(), "value")
        self.observe(lambda c: setattr(self.train_button, "disabled", c.new), "training")
        for name in ("error", "status"):
            self.observe(self._show_message, name)
        grid = w.GridBox(
            list(self.params.values()), layout=w.Layout(grid_template_columns="repeat(3, 240px)")
        )
        super().__init__(
            [
                stylesheet(),
                w.HTML('<div class="wb-title">Training</div>'),
                w.HBox([self.base, self.fork_name, self.fork_button]),
                self.models,
                self.taskset,
                self.jobs,
                grid,
                w.HBox([self.train_button]),
                self.message,
                self.loss,
                self.tree,
                w.HBox([self.head_button]),
                self.details,
            ]
        )
        self.refresh()
        if model:
            self.model = model

    @property
    def _store(self) -> Store:
        return self.store or workbench.get_store()

    # -- actions ------------------------------------------------------------------------

    def fork(self) -> str | None:
        """Fork the chosen base model under the typed name, and select it."""
        try:
            name = workbench.fork(self.base.value, self.fork_name.value.strip(), store=self._store)
        except WorkbenchError as e:
            self.error = str(e)
            return None
        self.refresh()
        self.model = name
        self.error = ""
        self.status = f"forked {self.base.value} as '{name}'"
        return name

    def config(self) -> TrainConfig:
        """The hyper-parameters as a TrainConfig (raises pydantic's error if one is bad)."""
        values = {name: field.value.strip() or None for name, field in self.params.items()}
        return TrainConfig(**{k: v for k, v in values.items() if v is not None})

    def train(self) -> asyncio.Task | None:
        """Start training in a thread; returns the task (await it for the checkpoint)."""
        self.error = ""
        if not self.model:
            self.error = "fork a model first (or choose one)"
            return None
        try:
            config = self.config()
        except pydantic.ValidationError as e:
            item = e.errors()[0]
            self.error = f"{item['loc'][0]}: {item['msg']} (got {item.get('input')!r})"
            return None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.error = "train from a notebook (a running event loop), or call workbench.train"
            return None
        self.training = True
        with self.loss.batch_update():
            self.loss.data[0].x, self.loss.data[0].y = [], []
        self.status = f"training '{self.model}'…"
        return loop.create_task(self._train(self.model, config, loop))

    async def _train(self, name: str, config: TrainConfig, loop) -> Any:
        def on_step(step: dict[str, Any]) -> None:  # called in the training thread
            loop.call_soon_threadsafe(self._add_step, step)

        try:
            checkpoint = await asyncio.to_thread(
                workbench.train,
                name,
                taskset=self.taskset.value or None,
                jobs=list(self.jobs.value) or None,
                store=self._store,
                on_step=on_step,
                progress=False,
                **config.model_dump(),
            )
        except WorkbenchError as e:
            self.error = str(e)
            return None
        except Exception as e:  # a training failure is shown, not lost in a thread
            self.error = f"training failed: {type(e).__name__}: {e}"
            return None
        finally:
            self.training = False
        loss = checkpoint.metrics.get("final_loss")
        self.status = f"checkpoint {checkpoint.id} is HEAD of '{name}' (final loss {loss})"
        self._draw_tree()
        return checkpoint

    def _add_step(self, step: dict[str, Any]) -> None:
        trace = self.loss.data[0]
        with self.loss.batch_update():
            trace.x = [*trace.x, step["step"]]
            trace.y = [*trace.y, step["loss"]]
        self.status = f"training '{self.model}': step {step['step']}, loss {step['loss']:.4f}"

    def set_head(self) -> str | None:
        """Point the fork at the checkpoint selected in the tree (or back to the base)."""
        if not self.model or self.tree.value is None:
            self.error = "choose a checkpoint in the tree"
            return None
        target = None if self.tree.value == BASE else self.tree.value
        try:
            head = workbench.set_head(self.model, target, store=self._store)
        except WorkbenchError as e:
            self.error = str(e)
            return None
        self.error = ""
        self.status = f"HEAD of '{self.model}' is now {head or 'the base model'}"
        self._draw_tree()
        return head

    # -- views --------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the forks, tasksets and jobs (after work done outside the panel)."""
        store = self._store
        self.models.options = [f.name for f in list_forks(store)]
        names = sorted(set(store.list_tasksets()) | set(builtin_tasksets()))
        self.taskset.options = [("(any: use the jobs)", None), *[(n, n) for n in names]]
        self._list_jobs()
        self._draw_tree()

    def _on_model(self, change) -> None:
        self.error = ""
        if change.new and change.new not in self.models.options:
            self.models.options = [*self.models.options, change.new]
        self.models.value = change.new or None
        self._draw_tree()

    def _list_jobs(self) -> None:
        jobs = self._store.jobs()
        if self.taskset.value:
            jobs = jobs[jobs["taskset"] == self.taskset.value]
        chosen = set(self.jobs.value)
        self.jobs.options = [
            (f"{r.id} · {r.taskset} · {r.models} · {r.done}/{r.total} runs", r.id)
            for r in jobs.itertuples()
        ]
        self.jobs.value = tuple(j for j in chosen if j in {r.id for r in jobs.itertuples()})

    def _draw_tree(self) -> None:
        fork = get_fork(self.model, self._store) if self.model else None
        if fork is None:
            self.tree.options = []
            self.details.value = ""
            return
        found = checkpoints(self.model, self._store)
        children: dict[str | None, list] = {}
        for c in found:
            children.setdefault(c.parent, []).append(c)
        mark = lambda cid: "● HEAD  " if fork.head == cid else "        "  # noqa: E731
        options = [(f"{mark(None)}{fork.base} (base)", BASE)]

        def walk(parent: str | None, depth: int) -> None:
            for c in children.get(parent, []):
                m = c.metrics
                label = (
                    f"{mark(c.id)}{'   ' * depth}└ {c.id} · {c.manifest.get('data', {}).get('traces', '?')}"
                    f" traces · loss {m.get('final_loss')} · {m.get('steps')} steps"
                )
                for taskset, result in c.evals.items():
                    rate = result.get("success_rate")
                    if rate is not None:
                        label += f" · {taskset} {rate:.0%}"
                options.append((label, c.id))
                walk(c.id, depth + 1)

        walk(None, 1)
        self.tree.options = options
        self.tree.value = fork.head or BASE
        self._show_details()

    def _show_details(self) -> None:
        if not self.model or self.tree.value in (None, BASE):
            self.details.value = ""
            return
        c = next((c for c in checkpoints(self.model, self._store) if c.id == self.tree.value), None)
        if c is None:
            return
        keep = {k: c.manifest.get(k) for k in ("parent", "backend", "hyperparameters", "metrics")}
        keep["data"] = {k: v for k, v in c.manifest.get("data", {}).items() if k != "trace_ids"}
        keep["evals"] = c.evals
        self.details.value = (
            f'<div class="wb-help">checkpoint {html.escape(c.id)}</div>'
            f"<pre style='font-size:11px'>{html.escape(json.dumps(keep, indent=1, default=str), quote=False)}</pre>"
        )

    def _show_message(self, change) -> None:
        self.message.value = error_html(self.error) if self.error else note_html(self.status)
