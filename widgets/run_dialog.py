"""RunDialog: configure and start an evaluation job from an overlay over the notebook.

```python
dialog = RunDialog("shop-basics")       # shows a "New run…" button and the job's progress
dialog.show()                           # the overlay: models, group size, steps, concurrency
dialog.models.value = ("scripted:expert", "scripted:weak")
job = dialog.run()                      # workbench.start(...): runs on the kernel's loop
dialog.cancel()                         # stops it; finished runs stay stored, "Resume" appears
```

The form fills one :class:`workbench.RunConfig`, the options object the API and the CLI use.
"""

from __future__ import annotations

import html

import ipywidgets as w
import pydantic
import traitlets
from tqdm.notebook import tqdm  # what tqdm.auto picks in Jupyter; embeddable (display=False)

import workbench
from workbench import Job, JobFinished, JobStarted, RunConfig, RunFinished, Store, Taskset
from workbench.errors import WorkbenchError

from ._live import error_html, note_html, stylesheet

_DEFAULTS = {name: f.default for name, f in RunConfig.model_fields.items()}


def known_models() -> list[str]:
    """Model ids offered in the dialog: bundled, scripted and forked models."""
    from workbench.gateway import known_models as known

    return known()


def _optional(text: str) -> str | None:
    """Empty means "the default"; other text is checked and converted by RunConfig."""
    return text.strip() or None


def describe(error: pydantic.ValidationError) -> str:
    """A RunConfig validation error as one line a user can act on."""
    item = error.errors()[0]
    field = ".".join(str(p) for p in item["loc"]).replace("_", " ")
    if item["loc"] == ("models",) and item["type"] == "too_short":
        return "choose at least one model (or type a model id)"
    return f"{field}: {item['msg']} (got {item.get('input')!r})"


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
        self.taskset = taskset
        style = {"description_width": "120px"}
        wide = w.Layout(width="460px")
        self.models = w.SelectMultiple(
            options=models if models is not None else known_models(),
            rows=6,
            description="models",
            style=style,
            layout=wide,
        )
        self.other_models = w.Text(
            placeholder="more model ids, comma separated (openai:gpt-4o-mini, my-fork…)",
            description="other models",
            style=style,
            layout=wide,
        )
        self.group_size = w.BoundedIntText(
            value=_DEFAULTS["group_size"], min=1, max=100_000, description="group size", style=style
        )
        self.max_steps = w.BoundedIntText(
            value=_DEFAULTS["max_steps"], min=1, max=100_000, description="max steps", style=style
        )
        self.max_concurrent = w.BoundedIntText(
            value=_DEFAULTS["max_concurrent"],
            min=1,
            max=100_000,
            description="max concurrent",
            style=style,
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
        self.max_tokens = w.Text(placeholder="model default", description="max tokens", style=style)
        self.title = w.HTML()
        self.error_line = w.HTML()
        self.run_button = w.Button(description="Run", icon="play", button_style="primary")
        self.close_button = w.Button(description="Close", icon="times")
        self.panel = w.VBox(
            [
                self.title,
                self.models,
                self.other_models,
                self.group_size,
                self.max_steps,
                self.max_concurrent,
                self.backend,
                self.address,
                w.HTML('<div class="wb-help">advanced (leave empty for defaults)</div>'),
                self.timeout,
                self.temperature,
                self.max_tokens,
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
        self.observe(self._show_open, "is_open")
        self.observe(lambda c: setattr(self.error_line, "value", error_html(c.new)), "error")
        self.observe(lambda c: setattr(self.status_line, "value", note_html(c.new)), "status")
        super().__init__([stylesheet(), w.HBox([self.open_button, self.job_bar]), self.overlay])
        self._show_job_buttons()

    # -- the dialog ---------------------------------------------------------------------

    @property
    def taskset_name(self) -> str:
        return self.taskset.name if isinstance(self.taskset, Taskset) else str(self.taskset)

    def show(self) -> None:
        """Open the overlay (the \"New run…\" button does this)."""
        self.error = ""
        self.title.value = (
            f'<div class="wb-title">New run on {html.escape(self.taskset_name)}</div>'
        )
        self.is_open = True

    def hide(self) -> None:
        self.is_open = False

    def _show_open(self, change) -> None:
        self.overlay.layout.display = "flex" if change.new else "none"

    def config(self) -> RunConfig:
        """The :class:`RunConfig` the form describes (raises pydantic's error if invalid)."""
        chosen = list(self.models.value)
        chosen += [m.strip() for m in self.other_models.value.split(",") if m.strip()]
        return RunConfig(
            models=list(dict.fromkeys(chosen)),
            group_size=self.group_size.value,
            max_steps=self.max_steps.value,
            max_concurrent=self.max_concurrent.value,
            timeout=_optional(self.timeout.value),
            temperature=_optional(self.temperature.value),
            max_tokens=_optional(self.max_tokens.value),
            backend=self.backend.value,
            address=_optional(self.address.value) if self.backend.value == "ray" else None,
        )

    def run(self) -> Job | None:
        """Start the job in the background of the kernel's event loop; the overlay closes."""
        try:
            config = self.config()
            job = workbench.start(self.taskset, store=self.store, config=config)
        except pydantic.ValidationError as e:
            self.error = describe(e)
            return None
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
