"""TrainingPanel: fork a base model, train it on successful traces, evaluate and pick checkpoints.

```python
panel = TrainingPanel()                          # or TrainingPanel("my-model")
panel.fork_name.value = "my-model"; panel.fork_button.click()
panel.jobs.value = (teacher_job.id,)             # which traces to learn from
panel.method.value = "grpo"                      # sft (default), rft, or grpo on grouped runs
panel.params["epochs"].value = "1"
await panel.train()                              # "Train": workbench.train in a thread
panel.stop()                                     # "Stop": ends after the current step, saves nothing
panel.tree.value = "base"; panel.head_button.click()   # "Set HEAD" back to the base model
job = panel.evaluate("arithmetic-heldout")       # "Evaluate this checkpoint": results join the tree
```

Each control calls the library (:func:`workbench.fork`, :func:`workbench.train`,
:func:`workbench.checkpoints`, :func:`workbench.set_head`, :func:`workbench.start`);
hyper-parameters are the fields of :class:`workbench.training.TrainConfig`. The loss curve is
fed by ``train(on_step=...)``; for GRPO the mean reward of each step's rollouts is drawn
beside it. The progress bar knows the number of steps before the first
one (from the traces selected, the batch size and the epochs) and estimates the time left
from the last training run until this one's steps give a better figure.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from typing import Any

import ipywidgets as w
import plotly.graph_objects as go
import pydantic
import traitlets

import workbench
from workbench import Job, JobFinished, Store, WorkbenchError
from workbench.formatting import percent, rate_interval
from workbench.tasks import builtin_tasksets
from workbench.training import METHODS, TrainConfig, checkpoints, list_forks, select_traces
from workbench.training.registry import BASE_MODELS, get_fork, record_eval

from ._live import error_html, later, note_html, stylesheet
from .charts import Chart
from .eta import duration, likely_examples, plan, prior

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
    "beta",
    "epsilon",
)
GRPO_ONLY = ("beta", "epsilon")  # shown for grpo; sft and rft ignore them
SFT_ONLY = ("min_reward", "max_per_task")  # grpo learns from every run of a group
BASE = "base"  # the tree's entry for the base model (checkpoint ids are timestamps)


class TrainingStopped(WorkbenchError):
    """Raised inside the training thread at the next step after "Stop" was pressed."""


class TrainingPanel(w.VBox):
    """Fork, choose data and hyper-parameters, train with a live loss curve and ETA, stop,
    evaluate checkpoints, set HEAD."""

    model = traitlets.Unicode("", help="the fork being trained")
    training = traitlets.Bool(False)
    error = traitlets.Unicode()
    status = traitlets.Unicode()
    eta = traitlets.Unicode(help="steps done and time left, while training")

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
        self.method = w.ToggleButtons(
            options=METHODS,
            value=defaults.method,
            description="method",
            style={**style, "button_width": "70px"},
            tooltips=(
                "supervised fine-tuning on successful runs (a teacher's, say)",
                "rejection sampling: the fork's own successful runs, once per task",
                "group-relative policy optimisation on grouped runs (group size ≥ 2)",
            ),
        )
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
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="danger")
        self.progress = w.FloatProgress(value=0, min=0, max=1, layout=w.Layout(width="320px"))
        self.eta_line = w.HTML()
        self.message = w.HTML()
        self.loss = Chart(
            go.Figure(
                [
                    go.Scatter(x=[], y=[], mode="lines+markers", name="loss"),
                    go.Scatter(x=[], y=[], mode="lines+markers", name="reward", yaxis="y2"),
                ],
                layout={
                    "title": {"text": "training loss"},
                    "xaxis": {"title": {"text": "step"}},
                    "yaxis2": {
                        "title": {"text": "mean reward"},
                        "overlaying": "y",
                        "side": "right",
                        "range": [0, 1.05],
                    },
                    "legend": {"orientation": "h", "y": -0.25},
                    "height": 260,
                    "margin": {"l": 50, "r": 20, "t": 40, "b": 40},
                },
            )
        )
        self.tree = w.Select(
            description="checkpoints", rows=6, style=style, layout=w.Layout(width="720px")
        )
        self.head_button = w.Button(description="Set HEAD", icon="flag")
        self.eval_taskset = w.Dropdown(description="held-out", style=style)
        self.eval_button = w.Button(description="Evaluate this checkpoint", icon="play")
        self.details = w.HTML()
        self.fork_button.on_click(lambda _: self.fork())
        self.train_button.on_click(lambda _: self.train())
        self.stop_button.on_click(lambda _: self.stop())
        self.head_button.on_click(lambda _: self.set_head())
        self.eval_button.on_click(lambda _: self.evaluate())
        self.models.observe(lambda c: setattr(self, "model", c.new or ""), "value")
        self.observe(self._on_model, "model")
        self.taskset.observe(lambda _: self._list_jobs(), "value")
        self.method.observe(lambda _: self._show_params(), "value")
        self.tree.observe(lambda _: self._show_details(), "value")
        self.observe(self._on_training, "training")
        self.observe(lambda c: setattr(self.eta_line, "value", note_html(c.new)), "eta")
        for name in ("error", "status"):
            self.observe(self._show_message, name)
        grid = w.GridBox(
            list(self.params.values()), layout=w.Layout(grid_template_columns="repeat(3, 240px)")
        )
        self._stop_requested = False
        self._clock: dict[str, Any] = {}
        self._evaluating: dict[str, tuple[str, str | None, str]] = {}
        super().__init__(
            [
                stylesheet(),
                w.HTML('<div class="wb-title">Training</div>'),
                w.HBox([self.base, self.fork_name, self.fork_button]),
                self.models,
                self.taskset,
                self.jobs,
                self.method,
                grid,
                w.HBox(
                    [self.train_button, self.stop_button, self.progress, self.eta_line],
                    layout=w.Layout(align_items="center"),
                ),
                self.message,
                self.loss,
                self.tree,
                w.HBox([self.head_button, self.eval_taskset, self.eval_button]),
                self.details,
            ]
        )
        self._on_training(None)
        self._show_params()
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
        values["method"] = self.method.value
        return TrainConfig(**{k: v for k, v in values.items() if v is not None})

    def _show_params(self) -> None:
        hidden = SFT_ONLY if self.method.value == "grpo" else GRPO_ONLY
        for name, field in self.params.items():
            field.layout.display = "none" if name in hidden else None

    def train(self) -> asyncio.Task | None:
        """Start training in a thread; returns the task (await it for the checkpoint)."""
        self.error = ""
        if not self.model:
            self.error = "fork a model first (or choose one)"
            return None
        try:
            config = self.config()
        except pydantic.ValidationError as e:
            self.error = "\n".join(
                f"{item['loc'][0]}: {item['msg']} (got {item.get('input')!r})"
                for item in e.errors()
            )
            return None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.error = "train from a notebook (a running event loop), or call workbench.train"
            return None
        self._stop_requested = False
        self.training = True
        with self.loss.batch_update():
            for trace in self.loss.data:
                trace.x, trace.y = [], []
        self.status = f"training '{self.model}'…"
        jobs = [self._store.get_job(j)["id"] for j in self.jobs.value] or None
        self._start_clock(config, likely_examples(self._store, self.taskset.value, jobs, config))
        return loop.create_task(self._train(self.model, config, loop))

    def stop(self) -> None:
        """Stop training at the next step; the checkpoint is not written (nothing half-way
        stays on disk or in the tree)."""
        if self.training:
            self._stop_requested = True
            self.status = "stopping after the current step…"

    async def _train(self, name: str, config: TrainConfig, loop) -> Any:
        def on_step(step: dict[str, Any]) -> None:  # called in the training thread
            loop.call_soon_threadsafe(self._add_step, step)
            if self._stop_requested:
                raise TrainingStopped("training stopped: no checkpoint was written")

        taskset, jobs = self.taskset.value or None, list(self.jobs.value) or None
        try:
            examples = await asyncio.to_thread(self._examples, config, taskset, jobs)
            self._clock["steps"] = plan(examples, config)
            self._tick()
            checkpoint = await asyncio.to_thread(
                workbench.train,
                name,
                taskset=taskset,
                jobs=jobs,
                store=self._store,
                on_step=on_step,
                progress=False,
                **config.model_dump(),
            )
        except TrainingStopped as e:
            self.status = str(e)
            return None
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

    def _examples(self, config: TrainConfig, taskset, jobs) -> int:
        """How many examples training will take (for the progress bar's steps)."""
        if config.method == "grpo":
            from workbench.training.grpo import select_groups

            groups = select_groups(taskset, jobs, config.scale_rewards, self._store)
            return len(groups.rollouts)
        traces = select_traces(
            taskset=taskset,
            jobs=jobs,
            min_reward=config.min_reward,
            max_per_task=config.max_per_task,
            store=self._store,
        )
        return len(traces)

    def _add_step(self, step: dict[str, Any]) -> None:
        loss, reward = self.loss.data
        with self.loss.batch_update():
            loss.x = [*loss.x, step["step"]]
            loss.y = [*loss.y, step["loss"]]
            if step.get("reward") is not None:
                reward.x = [*reward.x, step["step"]]
                reward.y = [*reward.y, step["reward"]]
        clock = self._clock
        clock.setdefault("first_step", time.monotonic())
        clock["done"] = step["step"]
        clock["last_step"] = time.monotonic()
        if not self._stop_requested:
            self.status = f"training '{self.model}': step {step['step']}, loss {step['loss']:.4f}"
        self._tick(schedule=False)

    # -- the clock: progress and time left, from the first second ------------------------

    def _start_clock(self, config: TrainConfig, examples: int) -> None:
        overhead, per_step, source = prior(self._store, config)
        self._clock = {
            "started": time.monotonic(), "overhead": overhead, "per_step": per_step,
            "source": source, "steps": plan(examples, config) if examples else None, "done": 0,
        }  # fmt: skip
        self._tick()

    def _tick(self, schedule: bool = True) -> None:
        if not self.training or not self._clock:
            return
        c, now = self._clock, time.monotonic()
        elapsed = now - c["started"]
        steps, done = c["steps"], c["done"]
        if done >= 2:  # this run's own pace, from its first step on
            per_step = (c["last_step"] - c["first_step"]) / (done - 1)
            source = "this run's steps"
        else:
            per_step, source = c["per_step"], c["source"]
        if steps is None:
            self.eta = f"selecting traces… · {duration(elapsed)} so far"
        else:
            if done == 0:
                left = c["overhead"] + steps * per_step - elapsed
            else:
                left = (steps - done) * per_step - (now - c["last_step"])
            self.progress.max, self.progress.value = steps, min(done, steps)
            self.eta = (
                f"step {done} of {steps} · about {duration(max(left, 1))} left "
                f"(estimated from {source}) · {duration(elapsed)} so far"
            )
        if schedule:
            later(1.0, self._tick)

    def _on_training(self, change) -> None:
        running = self.training
        self.train_button.disabled = running
        self.stop_button.layout.display = None if running else "none"
        self.progress.layout.display = None if running else "none"
        if not running:
            self.eta = ""

    # -- checkpoints --------------------------------------------------------------------

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

    def evaluate(self, taskset: str | None = None, **options: Any) -> Job | None:
        """Evaluate the checkpoint selected in the tree on a (held-out) taskset; when the job
        finishes its results are recorded on the checkpoint and shown in the tree."""
        taskset = taskset or self.eval_taskset.value
        if not self.model or self.tree.value is None or not taskset:
            self.error = "choose a checkpoint in the tree and a taskset to evaluate it on"
            return None
        fork = get_fork(self.model, self._store)
        checkpoint = None if self.tree.value == BASE else self.tree.value
        model_id = f"{self.model}@{checkpoint}" if checkpoint else f"local:{fork.base}"
        try:
            job = workbench.start(taskset, model_id, store=self._store, **options)
        except WorkbenchError as e:
            self.error = str(e)
            return None
        except RuntimeError:
            self.error = "evaluate from a notebook (a running event loop), or call workbench.start"
            return None
        self._evaluating[job.id] = (self.model, checkpoint, taskset)
        job.subscribe(lambda e: self._evaluated(job, e), steps=False)
        self.error = ""
        self.status = f"evaluating {model_id} on {taskset}: job {job.id}"
        return job

    def _evaluated(self, job: Job, event) -> None:
        if not isinstance(event, JobFinished):
            return
        model, checkpoint, taskset = self._evaluating.pop(job.id)
        board = job.leaderboard()
        if event.status != "finished" or board.empty:
            self.status = f"evaluation job {job.id} {event.status}: nothing recorded"
            return
        row = board.iloc[0]
        results = {"job": job.id, "runs": int(row["runs"])}
        for key in ("success_rate", "success_low", "success_high", "mean_reward"):
            results[key] = float(row[key])
        if checkpoint is not None:
            record_eval(model, checkpoint, taskset, results, self._store)
        self.status = (
            f"{model}{'@' + checkpoint if checkpoint else ' (base)'} on {taskset}: "
            f"{rate_interval(row['success_rate'], row['success_low'], row['success_high'])} "
            f"over {row['runs']} runs (job {job.id})"
        )
        if model == self.model:
            self._draw_tree()

    # -- views --------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the forks, tasksets and jobs (after work done outside the panel)."""
        store = self._store
        self.models.options = [f.name for f in list_forks(store)]
        names = sorted(set(store.list_tasksets()) | set(builtin_tasksets()))
        self.taskset.options = [("(any: use the jobs)", None), *[(n, n) for n in names]]
        self.eval_taskset.options = names
        held_out = [n for n in names if "heldout" in n or "held-out" in n]
        if held_out:
            self.eval_taskset.value = held_out[0]
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
                traces = c.manifest.get("data", {}).get("traces", "?")
                label = (
                    f"{mark(c.id)}{'   ' * depth}└ {c.id} · {c.method} on {traces} traces · loss "
                    f"{m.get('final_loss')} · {m.get('steps')} steps"
                )
                for taskset, result in c.evals.items():
                    rate = result.get("success_rate")
                    if rate is not None:
                        low, high = result.get("success_low"), result.get("success_high")
                        interval = f" [{percent(low)}, {percent(high)}]" if low is not None else ""
                        label += f" · {taskset}: {percent(rate)}{interval}"
                options.append((label, c.id))
                walk(c.id, depth + 1)

        walk(None, 1)
        selected = self.tree.value
        self.tree.options = options
        ids = [value for _, value in options]
        self.tree.value = selected if selected in ids and selected != BASE else (fork.head or BASE)
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
            f"<pre style='font-size:11px'>"
            f"{html.escape(json.dumps(keep, indent=1, default=str), quote=False)}</pre>"
        )

    def _show_message(self, change) -> None:
        self.message.value = error_html(self.error) if self.error else note_html(self.status)
