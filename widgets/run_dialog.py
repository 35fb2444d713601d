"""RunDialog: configure and start an evaluation job from an overlay over the notebook.

```python
dialog = RunDialog("shop-basics")       # shows a "New run…" button and the job's progress
dialog.show()                           # the overlay: models, tasks, group size, sampling…
dialog.models.value = ("scripted:expert", "scripted:weak")
dialog.tasks.value = dialog.tasks.options[:3]    # a subset of the tasks (all by default)
dialog.size.value                       # "3 tasks × 2 models × group 1 = 6 runs"
job = dialog.run()                      # workbench.start(...): runs on the kernel's loop
dialog.cancel()                         # stops it; finished runs stay stored, "Resume" appears
```

The form fills one :class:`workbench.RunConfig`, the options object the API and the CLI use.
The model list offers only what can play the taskset: the scripted policies every one of
its environments has, the bundled local models, forks, and the OpenAI / Anthropic models
when their keys are set; configured endpoints are named in the hint (``NAME:MODEL``). Every
bad entry is reported at once, and a number out of range (a group size of 0) is an error,
never silently clamped.
"""

from __future__ import annotations

import html
import os

import ipywidgets as w
import pydantic
import traitlets
from tqdm.notebook import tqdm  # what tqdm.auto picks in Jupyter; embeddable (display=False)

import workbench
from workbench import Job, JobFinished, JobStarted, RunConfig, RunFinished, Store, Taskset
from workbench.config import endpoints
from workbench.errors import WorkbenchError
from workbench.models import ALIASES, ScriptedModel, get_model

from ._live import error_html, note_html, stylesheet

_DEFAULTS = {name: f.default for name, f in RunConfig.model_fields.items()}


def known_models() -> list[str]:
    """Model ids the gateway knows: bundled, scripted (of every environment) and forked."""
    from workbench.gateway import known_models as known

    return known()


def playable_models(taskset: Taskset, store: Store | None = None) -> list[str]:
    """Model ids that can play every task of ``taskset``: scripted policies that each of its
    environments has, bundled local models, forks, and hosted models whose keys are set."""
    from workbench.models.local import BUNDLED, bundled_path
    from workbench.training import list_forks

    environments = {task.env: task.environment() for task in taskset}.values()
    policies = [set(env.policies) for env in environments]
    ids = [f"scripted:{p}" for p in sorted(set.intersection(*policies) if policies else ())]
    for name in BUNDLED:
        try:
            bundled_path(name)
        except WorkbenchError:
            continue
        ids.append(f"local:{name}")
    ids += [f.name for f in list_forks(store)]
    hosted = {
        "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
        "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
    }
    for alias, variables in hosted.items():
        if any(os.environ.get(v) for v in variables) or alias in endpoints():
            ids.append(ALIASES[alias])
    return list(dict.fromkeys(ids))


def _optional(text: str) -> str | None:
    """Empty means "the default"; other text is checked and converted by RunConfig."""
    return text.strip() or None


def describe(error: pydantic.ValidationError) -> str:
    """A RunConfig validation error as one line a user can act on (the first problem)."""
    return describe_all(error)[0]


def describe_all(error: pydantic.ValidationError) -> list[str]:
    """Every problem of a RunConfig validation error, one line each."""
    lines = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]).replace("_", " ")
        if item["loc"] == ("models",) and item["type"] == "too_short":
            lines.append("choose at least one model (or type a model id)")
        elif not item["loc"]:
            lines.append(str(item["msg"]).removeprefix("Value error, "))
        else:
            lines.append(f"{field}: {item['msg']} (got {item.get('input')!r})")
    return lines


class RunDialog(w.VBox):
    """A "New run…" button, an overlay that configures the run, and the running job's bar."""

    is_open = traitlets.Bool(False)
    job = traitlets.Instance(Job, allow_none=True, help="the job started last")
    error = traitlets.Unicode()
    status = traitlets.Unicode()

    def __init__(
        self,
        taskset: Taskset | str,
        *,
        store: Store | None = None,
        models: list[str] | None = None,
    ):
        self.store = store
        self._models_given = models
        self._taskset: Taskset | str = taskset
        self._loaded: Taskset | None = None
        style = {"description_width": "120px"}
        wide = w.Layout(width="500px")
        self.models = w.SelectMultiple(
            options=[], rows=6, description="models", style=style, layout=wide
        )
        self.other_models = w.Text(
            placeholder="more model ids, comma separated",
            description="other models",
            style=style,
            layout=wide,
        )
        self.model_hint = w.HTML()
        self.tasks = w.SelectMultiple(
            options=[], rows=5, description="tasks", style=style, layout=wide
        )
        self.all_tasks = w.Button(description="all tasks", layout=w.Layout(width="auto"))
        self.size = w.HTML()
        # Plain integer fields: a value out of range is reported, never clamped.
        self.group_size = w.IntText(
            value=_DEFAULTS["group_size"], description="group size", style=style
        )
        self.max_steps = w.IntText(
            value=_DEFAULTS["max_steps"], description="max steps", style=style
        )
        self.max_concurrent = w.IntText(
            value=_DEFAULTS["max_concurrent"], description="max concurrent", style=style
        )
        self.backend = w.ToggleButtons(
            options=[("this kernel", "asyncio"), ("Ray", "ray")],
            value=_DEFAULTS["backend"],
            description="backend",
            style=style,
            tooltips=["runs in this kernel's event loop", "runs on Ray actors, streamed back"],
        )
        self.address = w.Text(
            placeholder="local Ray on 127.0.0.1",
            description="Ray address",
            style=style,
            layout=wide,
            disabled=True,
        )
        self.backend.observe(lambda c: setattr(self.address, "disabled", c.new != "ray"), "value")
        self.timeout = w.Text(placeholder="none", description="timeout (s)", style=style)
        self.temperature = w.Text(
            placeholder="model default", description="temperature", style=style
        )
        self.top_p = w.Text(placeholder="model default", description="top-p", style=style)
        self.max_tokens = w.Text(placeholder="model default", description="max tokens", style=style)
        self.seed = w.Text(placeholder="none", description="seed", style=style)
        self.title = w.HTML()
        self.error_line = w.HTML()
        self.run_button = w.Button(description="Run", icon="play", button_style="primary")
        self.close_button = w.Button(description="Close", icon="times")
        self.panel = w.VBox(
            [
                self.title,
                self.models,
                self.other_models,
                self.model_hint,
                self.tasks,
                w.HBox([w.HTML(layout=w.Layout(width="124px")), self.all_tasks]),
                self.group_size,
                self.max_steps,
                self.max_concurrent,
                self.backend,
                self.address,
                w.HTML('<div class="wb-help">sampling and limits (empty: the defaults)</div>'),
                self.timeout,
                self.temperature,
                self.top_p,
                self.max_tokens,
                self.seed,
                self.size,
                self.error_line,
                w.HBox([self.run_button, self.close_button]),
            ]
        ).add_class("wb-dialog")
        self.overlay = w.Box([self.panel], layout=w.Layout(display="none")).add_class("wb-overlay")
        self.open_button = w.Button(description="New run…", icon="play")
        self.cancel_button = w.Button(description="Cancel", icon="stop", button_style="danger")
        self.resume_button = w.Button(description="Resume", icon="redo")
        self.status_line = w.HTML()
        self.progress = w.Box()
        self.job_bar = w.HBox(
            [self.progress, self.status_line, self.cancel_button, self.resume_button],
            layout=w.Layout(align_items="center"),
        )
        self._bar = None
        self._unsubscribe = None
        self.open_button.on_click(lambda _: self.show())
        self.close_button.on_click(lambda _: self.hide())
        self.run_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.resume_button.on_click(lambda _: self.resume())
        self.all_tasks.on_click(lambda _: setattr(self.tasks, "value", self.tasks.options))
        for control in (self.models, self.other_models, self.tasks, self.group_size):
            control.observe(lambda _: self._show_size(), "value")
        self.observe(self._show_open, "is_open")
        self.observe(lambda c: setattr(self.error_line, "value", error_html(c.new)), "error")
        self.observe(lambda c: setattr(self.status_line, "value", note_html(c.new)), "status")
        super().__init__([stylesheet(), w.HBox([self.open_button, self.job_bar]), self.overlay])
        self._show_job_buttons()
        self._offer()

    # -- the taskset --------------------------------------------------------------------

    @property
    def taskset(self) -> Taskset | str:
        return self._taskset

    @taskset.setter
    def taskset(self, taskset: Taskset | str) -> None:
        if taskset is self._taskset or (isinstance(taskset, str) and taskset == self._taskset):
            return
        self._taskset, self._loaded = taskset, None
        self._offer()

    @property
    def taskset_name(self) -> str:
        return self._taskset.name if isinstance(self._taskset, Taskset) else str(self._taskset)

    def loaded(self) -> Taskset | None:
        """The taskset's tasks (None, with the reason in ``error``, if it cannot be read)."""
        if self._loaded is None:
            try:
                self._loaded = (
                    self._taskset
                    if isinstance(self._taskset, Taskset)
                    else workbench.load_taskset(self._taskset, store=self.store)
                )
            except WorkbenchError as e:
                self.error = str(e)
        return self._loaded

    def _offer(self) -> None:
        """Fill the model and task lists for the taskset (choices that still fit stay)."""
        taskset = self.loaded()
        if self._models_given is not None:
            offered = list(self._models_given)
        else:
            try:
                offered = playable_models(taskset, self.store) if taskset is not None else []
            except WorkbenchError as e:  # an environment that cannot be imported
                self.error, offered = str(e), []
        chosen = [m for m in self.models.value if m in offered]
        self.models.options = offered
        self.models.value = tuple(chosen)
        named = ", ".join(f"{name}:MODEL" for name in endpoints())
        self.model_hint.value = (
            '<div class="wb-help" style="margin-left:124px">'
            + (f"configured endpoints: {html.escape(named)} · " if named else "")
            + "any model id can be typed above (a fork, openai:MODEL, NAME@CHECKPOINT)</div>"
        )
        slugs = taskset.slugs if taskset is not None else []
        kept = self.tasks.value if list(self.tasks.options) == slugs else ()
        self.tasks.options = slugs
        self.tasks.value = tuple(kept or slugs)  # the same taskset keeps the tasks picked
        self._show_size()

    def _show_size(self) -> None:
        models = len(self._chosen_models())
        tasks, group = len(self.tasks.value), self.group_size.value
        self.size.value = (
            f'<div class="wb-title wb-size">{tasks} tasks × {models} models × group {group} = '
            f"{tasks * models * max(group, 0):,} runs</div>"
        )

    # -- the dialog ---------------------------------------------------------------------

    def show(self) -> None:
        """Open the overlay (the \"New run…\" button does this)."""
        self.error = ""
        self._offer()
        self.title.value = (
            f'<div class="wb-title">New run on {html.escape(self.taskset_name)}</div>'
        )
        self.is_open = True

    def hide(self) -> None:
        self.is_open = False

    def _show_open(self, change) -> None:
        self.overlay.layout.display = "flex" if change.new else "none"

    def _chosen_models(self) -> list[str]:
        chosen = list(self.models.value)
        chosen += [m.strip() for m in self.other_models.value.split(",") if m.strip()]
        return list(dict.fromkeys(chosen))

    def config(self) -> RunConfig:
        """The :class:`RunConfig` the form describes (raises pydantic's error if invalid)."""
        everything = set(self.tasks.value) == set(self.tasks.options)
        return RunConfig(
            models=self._chosen_models(),
            group_size=self.group_size.value,
            max_steps=self.max_steps.value,
            max_concurrent=self.max_concurrent.value,
            timeout=_optional(self.timeout.value),
            task_ids=None if everything else list(self.tasks.value),
            temperature=_optional(self.temperature.value),
            top_p=_optional(self.top_p.value),
            max_tokens=_optional(self.max_tokens.value),
            seed=_optional(self.seed.value),
            backend=self.backend.value,
            address=_optional(self.address.value) if self.backend.value == "ray" else None,
        )

    def problems(self) -> list[str]:
        """Everything wrong with the form, one line each (empty: it can run)."""
        found: list[str] = []
        try:
            self.config()
        except pydantic.ValidationError as e:
            found += describe_all(e)
        if self.tasks.options and not self.tasks.value:
            found.append("choose at least one task")
        taskset = self.loaded()
        envs = {task.env: task for task in taskset} if taskset is not None else {}
        for model_id in self._chosen_models():
            try:
                model = get_model(model_id)
                if isinstance(model, ScriptedModel):
                    for task in envs.values():
                        model.policy_for(task)
            except WorkbenchError as e:
                found.append(str(e))
        return found

    def run(self) -> Job | None:
        """Start the job in the background of the kernel's event loop; the overlay closes."""
        found = self.problems()
        if found:
            self.error = "\n".join(found)
            return None
        try:
            job = workbench.start(
                self.loaded() or self._taskset, store=self.store, config=self.config()
            )
        except WorkbenchError as e:
            self.error = str(e)
            return None
        except RuntimeError as e:  # no running event loop: not inside a kernel
            self.error = f"cannot start a job here ({e}): use the dialog in a notebook"
            return None
        self.error = ""
        self.is_open = False
        self.follow(job)
        return job

    # -- the job ------------------------------------------------------------------------

    def follow(self, job: Job) -> None:
        """Show a job's progress here (its events drive the bar and the status line)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._bar = None
        self.progress.children = ()
        self.status = f"job {job.id}: starting"
        self._unsubscribe = job.subscribe(self._on_event, steps=False)
        self.job = job
        self._show_job_buttons()

    def cancel(self) -> None:
        """Stop the running job; finished runs stay in the store and it can be resumed."""
        if self.job is not None:
            self.job.cancel()

    def resume(self) -> Job | None:
        """Run the missing runs of a cancelled or failed job (none twice)."""
        if self.job is None:
            return None
        job = workbench.start(self.job.taskset, store=self.store, resume=self.job.id)
        self.follow(job)
        return job

    def _on_event(self, event) -> None:
        job = self.job
        if isinstance(event, JobStarted):
            self._bar = tqdm(
                total=event.total,
                initial=event.already_done,
                desc=f"job {event.job_id}",
                unit="run",
                display=False,
            )
            self.progress.children = (self._bar.container,)
            self.status = "running"
        elif isinstance(event, RunFinished):
            if self._bar is not None:
                self._bar.update(1)
            self.status = f"{job.done}/{job.total} runs · {job.errors} errors"
        elif isinstance(event, JobFinished):
            if self._bar is not None:
                self._bar.close()
            self.status = (
                f"{event.status}: {event.done}/{job.total} runs stored · {event.errors} errors"
            )
            if event.status != "finished":
                self.status += " · Resume runs the rest"
            self._show_job_buttons(finished=event.status)

    def _show_job_buttons(self, finished: str | None = None) -> None:
        running = self.job is not None and finished is None and not self.job.is_done()
        status = finished or (self.job.status if self.job is not None else None)
        self.cancel_button.layout.display = None if running else "none"
        resumable = status in ("cancelled", "failed")
        self.resume_button.layout.display = None if resumable else "none"
