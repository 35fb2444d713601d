"""ScenarioForm: a form built from a scenario's signature that adds tasks to a taskset.

```python
form = ScenarioForm(env.scenarios["checkout"])   # display it in a notebook
form.fields["product_name"].value = "Gaming Mouse"
form.add_button.click()                           # same as pressing "Add task"
form.taskset                                      # a workbench.Taskset
```

Values are checked by the scenario itself (``Scenario.validate``): a bad value shows the
library's one-line message next to its field and adds nothing.
"""

from __future__ import annotations

import enum
import html
import json
import types
import typing
from typing import Any, Literal, get_args, get_origin

import ipywidgets as w
import traitlets

import workbench
from workbench import Scenario, Store, Taskset, WorkbenchError

from ._live import error_html, note_html, stylesheet

_MISSING = object()


def _unwrap(annotation: Any) -> Any:
    """The annotation without ``Annotated[...]`` and without ``| None``."""
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _choices(annotation: Any) -> list[Any] | None:
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [member.value for member in annotation]
    return None


class Field:
    """One argument's input widget, its help text and its inline error."""

    def __init__(self, name: str, info: Any):
        self.name = name
        self.required = info.is_required()
        default = None if self.required else info.default
        annotation = _unwrap(info.annotation)
        choices = _choices(annotation)
        item = _unwrap(get_args(annotation)[0]) if get_origin(annotation) is list else None
        label = name.replace("_", " ") + ("" if not self.required else " *")
        style = {"description_width": "130px"}
        layout = w.Layout(width="420px")
        self.kind = "text"
        self.default = default
        if choices is not None:
            self.kind = "choice"
            value = default.value if isinstance(default, enum.Enum) else default
            self.widget = w.Dropdown(
                options=[(str(c), c) for c in choices],
                value=value if value in choices else None,
                description=label,
                style=style,
                layout=layout,
            )
        elif annotation is bool and default is None:  # required, or `bool | None = None`:
            self.kind = "choice"  # a checkbox cannot say "not given"
            self.widget = w.Dropdown(
                options=[("(not given)" if self.required else "(default: None)", None)]
                + [("true", True), ("false", False)],
                value=None,
                description=label,
                style=style,
                layout=layout,
            )
        elif annotation is bool:
            self.kind = "bool"
            self.widget = w.Checkbox(value=bool(default), description=label, style=style)
        elif get_origin(annotation) is list:
            self.kind = "list"
            values = list(default or [])
            if item is int:
                self.widget = w.IntsInput(value=values)
            elif item is float:
                self.widget = w.FloatsInput(value=values)
            else:
                self.widget = w.TagsInput(value=values, allowed_tags=_choices(item) or [])
            self.widget = w.HBox([w.Label(label, layout=w.Layout(width="134px")), self.widget])
        elif annotation in (int, float, str):
            placeholder = {int: "an integer", float: "a number", str: "text"}[annotation]
            self.widget = w.Text(
                value="" if default is None else str(default),
                placeholder=placeholder,
                description=label,
                style=style,
                layout=layout,
            )
        else:  # dicts, nested models, anything else: JSON
            self.kind = "json"
            self.widget = w.Textarea(
                value="" if default is None else json.dumps(default, default=str),
                placeholder="JSON",
                description=label,
                style=style,
                layout=layout,
            )
        self.help = w.HTML(
            f'<div class="wb-help" style="margin-left:134px">{html.escape(info.description)}</div>'
            if info.description
            else ""
        )
        self.error = w.HTML()
        self.box = w.VBox([self.widget, self.help, self.error])

    @property
    def input(self) -> w.Widget:
        return self.widget.children[1] if self.kind == "list" else self.widget

    @property
    def value(self) -> Any:
        return self.input.value

    @value.setter
    def value(self, value: Any) -> None:
        self.input.value = value

    def read(self) -> Any:
        """The value to hand to the scenario, or ``_MISSING`` (left empty: use the default)."""
        value = self.input.value
        if self.kind == "list":  # empty and nothing else given: the default (or "required")
            return _MISSING if not value and not self.default else list(value)
        if self.kind in ("text", "json") and value.strip() == "":
            # a text cleared where the default is other text is the empty text asked for
            keep = self.kind == "text" and isinstance(self.default, str) and self.default
            return value if keep else _MISSING
        if self.kind == "choice" and value is None:
            return _MISSING
        if self.kind == "json":
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return value  # the scenario's check names the argument and the problem
        return value


class ScenarioForm(w.VBox):
    """A form for one scenario: fill the arguments, "Add task", "Save taskset"."""

    errors = traitlets.Dict(help="argument name -> message shown next to its field")
    message = traitlets.Unicode(help="the last outcome, shown under the buttons")

    def __init__(
        self,
        scenario: Scenario,
        taskset: Taskset | None = None,
        *,
        store: Store | None = None,
    ):
        self.scenario = scenario
        self.store = store
        # An empty Taskset is falsy (len 0): test for None, or the given one would be lost.
        self.taskset = (
            taskset if taskset is not None else Taskset(f"{scenario.env.name}-{scenario.name}")
        )
        self.fields = {name: Field(name, info) for name, info in scenario.parameters.items()}
        self.slug = w.Text(
            placeholder="optional (derived from the arguments)",
            description="slug",
            style={"description_width": "130px"},
            layout=w.Layout(width="420px"),
        )
        self.add_button = w.Button(description="Add task", icon="plus", button_style="primary")
        self.name = w.Text(
            value=self.taskset.name, description="taskset", layout=w.Layout(width="300px")
        )
        self.save_button = w.Button(description="Save taskset", icon="save")
        self.status = w.HTML()
        self.table = w.HTML()
        self.add_button.on_click(lambda _: self.add())
        self.save_button.on_click(lambda _: self.save())
        self.observe(self._show_errors, "errors")
        self.observe(lambda c: setattr(self.status, "value", c.new), "message")
        title = f'<div class="wb-title">{html.escape(scenario.env.name)} · {html.escape(scenario.name)}</div>'
        about = f'<div class="wb-help">{html.escape(scenario.description)}</div>'
        super().__init__(
            [
                stylesheet(),
                w.HTML(title + (about if scenario.description else "")),
                *(f.box for f in self.fields.values()),
                self.slug,
                w.HBox([self.add_button]),
                self.status,
                self.table,
                w.HBox([self.name, self.save_button]),
            ]
        )
        self._show_table()

    # -- actions ------------------------------------------------------------------------

    def arguments(self) -> dict[str, Any]:
        """The arguments as entered (empty fields left out, so defaults apply)."""
        values = {name: f.read() for name, f in self.fields.items()}
        return {name: v for name, v in values.items() if v is not _MISSING}

    def add(self) -> workbench.Task | None:
        """Make a task from the form and append it; on a bad value, show why and add nothing."""
        try:
            task = self.scenario(slug=self.slug.value.strip() or None, **self.arguments())
        except WorkbenchError as e:
            found = getattr(e, "errors", {})  # per argument, from ScenarioArgumentError
            self.errors = {k: v for k, v in found.items() if k in self.fields}
            self.message = error_html(str(e) if not self.errors else "fix the fields marked above")
            return None
        self.errors = {}
        try:
            self.taskset.add(task)
        except WorkbenchError as e:
            self.message = error_html(str(e))
            return None
        self.slug.value = ""
        self.message = note_html(f"added task '{task.slug}' ({len(self.taskset)} in the taskset)")
        self._show_table()
        return task

    def save(self) -> Taskset | None:
        """Store the taskset under the name in the form (replacing one of the same name)."""
        name = self.name.value.strip()
        if not name:
            self.message = error_html("give the taskset a name")
            return None
        self.taskset.name = name
        (self.store or workbench.get_store()).save_taskset(self.taskset)
        self.message = note_html(f"saved taskset '{name}' ({len(self.taskset)} tasks)")
        return self.taskset

    # -- views --------------------------------------------------------------------------

    def _show_errors(self, change) -> None:
        for name, field in self.fields.items():
            message = change.new.get(name, "")
            field.error.value = (
                f'<div style="margin-left:134px">{error_html(message)}</div>' if message else ""
            )

    def _show_table(self) -> None:
        self.save_button.disabled = not len(self.taskset)
        if not len(self.taskset):
            self.table.value = note_html("no tasks yet")
            return
        rows = "".join(
            f"<tr><td>{i}</td><td>{html.escape(t.slug)}</td><td>{html.escape(t.scenario)}</td>"
            f"<td><code>{html.escape(json.dumps(t.args))}</code></td></tr>"
            for i, t in enumerate(self.taskset, 1)
        )
        self.table.value = (
            f'<table class="wb-table"><tr><th>#</th><th>slug</th><th>scenario</th>'
            f"<th>arguments</th></tr>{rows}</table>"
        )
