"""Finding Inspect tasks: environment references, task files, task arguments.

```python
spec = InspectSpec(file="/abs/qa.py", task="sums", args=(("count", 3),), grader=None)
spec.ref  # 'workbench.inspect_bridge:/abs/qa.py@sums?count=3'
InspectSpec.parse(spec.ref.partition(":")[2]) == spec
```

A reference names the task file (and the task's arguments and grader), so that any process
can rebuild the environment: the CLI, a resumed job, a runtime's server, a Ray worker.
``workbench.resolve_environment`` reads the part after the colon as an attribute of
:mod:`workbench.inspect_bridge`, whose module ``__getattr__`` builds it. Loading a task
file runs its code, as ``inspect eval`` does.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from inspect_ai import Task as InspectTask
from inspect_ai.util import registry_info

from workbench.errors import WorkbenchError
from workbench.inspect_bridge.internals import is_registry_object

REF_MODULE = "workbench.inspect_bridge"


class InspectTaskError(WorkbenchError):
    """An Inspect task or dataset that Workbench cannot run (the message says why)."""


@dataclass(frozen=True)
class InspectSpec:
    """What an environment reference names: a task in a file (with arguments), or a dataset
    scorer; and the grader model for scorers that ask for one."""

    file: str | None = None  # absolute path of the task file
    task: str | None = None  # the @task's name (None: the file's only task)
    args: tuple[tuple[str, Any], ...] = ()
    scorer: str | None = None  # a dataset's scorer, when there is no task file
    grader: str | None = None
    grader_max_tokens: int | None = None

    @property
    def ref(self) -> str:
        body = f"{self.file}@{self.task or ''}" if self.file else "dataset"
        query = [(k, _encode(v)) for k, v in self.args]
        # Bridge options have a '-' in their names: no Python parameter can take them.
        for key, value in (
            ("scorer", self.scorer),
            ("grader-model", self.grader),
            ("grader-max-tokens", self.grader_max_tokens),
        ):
            if value is not None:
                query.append((key, str(value)))
        if query:
            body += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
        return f"{REF_MODULE}:{quote(body, safe='/@?=&%-_.~')}"

    @classmethod
    def parse(cls, text: str) -> InspectSpec:
        """From an environment reference's attribute part (everything after the colon)."""
        body, _, query = text.partition("?")
        body = unquote(body)
        options: dict[str, Any] = {}
        args: list[tuple[str, Any]] = []
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key in ("scorer", "grader-model", "grader-max-tokens"):
                options[key] = value
            else:
                args.append((key, _decode(value)))
        max_tokens = options.get("grader-max-tokens")
        common = dict(
            grader=options.get("grader-model"),
            grader_max_tokens=int(max_tokens) if max_tokens else None,
        )
        if body == "dataset":
            return cls(scorer=options.get("scorer", "match"), **common)
        file, _, task = body.rpartition("@")
        return cls(file=file, task=task or None, args=tuple(sorted(args)), **common)


def _encode(value: Any) -> str:

    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value  # plain text stays readable: split=train
    return json.dumps(value)


def _decode(text: str) -> Any:

    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_task_spec(text: str) -> tuple[Path, str | None]:
    """``path/to/file.py@name`` (or ``file.py``: its only task) -> (file, name)."""
    file, at, name = text.rpartition("@")
    if not at:
        file, name = text, ""
    path = Path(file)
    if path.suffix != ".py":
        raise InspectTaskError(f"'{text}' is not an Inspect task: use path/to/file.py@task_name")
    if not path.exists():
        raise InspectTaskError(f"Inspect task file '{file}' does not exist")
    return path.resolve(), name or None


def parse_task_args(pairs: list[str] | None) -> dict[str, Any]:
    """``["n=3", "hard=False", "subjects=math,physics", "max-items=1"]`` (the CLI's ``-T``)
    -> ``{"n": 3, "hard": False, "subjects": ["math", "physics"], "max_items": 1}``, as
    ``inspect eval -T`` reads them: each value as YAML, an unquoted value with commas as a
    list, ``-`` in a key as ``_``."""
    import yaml

    args = {}
    for pair in pairs or []:
        key, eq, raw = pair.partition("=")
        if not eq or not key.strip():
            raise InspectTaskError(f"task argument '{pair}' is not KEY=VALUE (e.g. -T count=3)")
        try:
            value = yaml.safe_load(raw)
            plain = (
                isinstance(value, str) and yaml.compose(raw, Loader=yaml.SafeLoader).style is None
            )
        except yaml.YAMLError as e:
            raise InspectTaskError(f"task argument '{pair}': not a value ({e.problem})") from None
        if plain and "," in value:  # the list shorthand, for unquoted text only
            value = [part.strip() for part in value.split(",")]
        args[key.strip().replace("-", "_")] = value
    return args


def is_task_spec(text: str) -> bool:
    """Whether a taskset argument names an Inspect task (``file.py@task``)."""
    file, at, name = str(text).rpartition("@")
    return bool(at and name and file.endswith(".py"))


# -- task files -------------------------------------------------------------------------


def load_task(file: Path, name: str | None, args: dict[str, Any] | None = None) -> InspectTask:
    """Call the ``@task`` function ``name`` of a task file, in the file's folder (as Inspect
    does, so relative dataset paths work). Importing the file runs its code."""
    module = _import_task_file(file)
    tasks = {
        registry_info(value).name.split("/")[-1]: value
        for value in vars(module).values()
        if is_registry_object(value, type="task")
    }
    if name is None:
        if len(tasks) != 1:
            raise InspectTaskError(
                f"{file} defines {len(tasks)} tasks ({', '.join(tasks) or 'none'}): "
                f"name one, e.g. {file.name}@{next(iter(tasks), 'task_name')}"
            )
        name = next(iter(tasks))
    if name not in tasks:
        raise InspectTaskError(
            f"{file} has no @task '{name}' (it has: {', '.join(tasks) or 'none'})"
        )
    with contextlib.chdir(file.parent):
        try:
            return tasks[name](**(args or {}))
        except TypeError as e:
            raise InspectTaskError(f"{file.name}@{name}: {e}") from None


def _import_task_file(file: Path):
    module_name = f"_workbench_inspect_{hashlib.sha1(str(file).encode()).hexdigest()[:10]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    if str(file.parent) not in sys.path:
        sys.path.append(str(file.parent))  # as `inspect eval` does: sibling imports work
    try:
        with contextlib.chdir(file.parent):
            spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[module_name]
        raise InspectTaskError(f"{file}: importing it failed: {type(e).__name__}: {e}") from e
    return module


def registry_name(obj: Any) -> str:
    """An Inspect solver's, scorer's or task's name without its package (``generate``)."""
    if is_registry_object(obj):
        return registry_info(obj).name.split("/")[-1]
    return getattr(obj, "__name__", type(obj).__name__)
