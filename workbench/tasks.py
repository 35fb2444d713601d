"""Tasks (a scenario with arguments) and tasksets (a named list of tasks).

```python
task = env.task("checkout", product_name="laptop")      # or env.scenarios["checkout"](...)
ts = Taskset("shop-basics", [task, ...])
ts.save_jsonl("shop-basics.jsonl"); Taskset.load_jsonl("shop-basics.jsonl")
ds = ts.to_dataset(); Taskset.from_dataset(ds, "shop-basics")
```
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic

from workbench.environment import Environment
from workbench.errors import UnknownTasksetError, WorkbenchError
from workbench.references import (  # noqa: F401 - resolve_environment, builtin_environments: public here too
    builtin_environments,
    environments_dir,
    import_path,
    resolve_environment,
)

if TYPE_CHECKING:
    import datasets

_SLUG_UNSAFE = re.compile(r"[^a-z0-9]+")


def _slugify(value: Any) -> str:
    return _SLUG_UNSAFE.sub("-", str(value).lower()).strip("-")


def default_slug(scenario: str, args: dict[str, Any]) -> str:
    """A readable, stable slug: ``checkout-laptop-apply-coupon``.

    True booleans add their name, false ones nothing; long or empty slugs get a short hash.
    """
    parts = [_slugify(scenario)]
    for name, value in args.items():
        if value is True:
            parts.append(_slugify(name))
        elif value is False or value is None:
            continue
        elif isinstance(value, int | float) and value < 0:  # -4 and 4 are different tasks
            parts.append("minus-" + _slugify(-value))
        else:
            parts.append(_slugify(value if not isinstance(value, dict | list) else name))
    slug = "-".join(p for p in parts if p)
    if len(slug) > 60:
        slug = f"{slug[:50].rstrip('-')}-{_args_hash(scenario, args)[:8]}"
    return slug


def _args_hash(scenario: str, args: dict[str, Any]) -> str:
    canonical = json.dumps([scenario, args], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# Task fields HUD users set that Workbench keeps, stores and shows.
_KEPT_FIELDS = (
    "columns",
    "metadata",
    "agent_config",
    "validation",
    "include_tools",
    "exclude_tools",
)

# agent_config keys a run applies (see workbench.agent.Agent.for_task and Task.offers_tool).
AGENT_CONFIG_APPLIED = (
    "max_steps",
    "system_prompt",
    "timeout_seconds",
    "allowed_tools",
    "disallowed_tools",
)


class Task(pydantic.BaseModel):
    """A scenario of an environment with its arguments; ``slug`` names it in a taskset.

    As on the HUD platform, a task may carry ``columns`` (facets for filtering and
    leaderboards), ``metadata``, ``agent_config`` (per-task agent settings: ``max_steps``,
    ``system_prompt``, ``timeout_seconds``, ``allowed_tools`` and ``disallowed_tools`` are
    applied; other keys are kept with a warning) and ``validation``; they are stored with the
    task and shown by ``workbench tasks show``. Fields may be set after the task is made
    (``task.slug = ...``) until it joins a taskset. ``env`` may be given as an
    :class:`Environment` or HUD's ``{"name": ..., "include": [...], "exclude": [...]}``
    (the tool filters become ``include_tools`` / ``exclude_tools``, fnmatch patterns); HUD
    v6's ``id`` names the scenario. A task with no scenario (``env()``) has tools only, for
    driving an environment by hand.
    """

    model_config = pydantic.ConfigDict(extra="allow", validate_assignment=True)

    env: str
    scenario: str = ""
    args: dict[str, Any] = {}
    slug: str = ""
    columns: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    agent_config: dict[str, Any] | None = None
    validation: list[Any] | None = None
    include_tools: list[str] | None = None
    exclude_tools: list[str] | None = None

    @pydantic.model_validator(mode="before")
    @classmethod
    def _hud_spellings(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        env = data.get("env")
        if isinstance(env, Environment):
            data["env"] = env.ref
        elif isinstance(env, dict):
            if not isinstance(env.get("name"), str):
                raise ValueError("env given as a mapping needs a 'name' (HUD: {'name': 'shop'})")
            data["env"] = env["name"]
            # HUD v5's EnvConfig filters the tools the agent sees
            for key, field in (("include", "include_tools"), ("exclude", "exclude_tools")):
                if env.get(key) is not None and data.get(field) is None:
                    data[field] = list(env[key])
            other = [k for k in env if k not in ("name", "include", "exclude")]
            if other:
                warnings.warn(
                    f"env settings {', '.join(map(repr, other))} of a task are not supported by "
                    "Workbench and are ignored",
                    stacklevel=4,
                )
        if "id" in data and not data.get("scenario"):  # HUD v6: Task(env=..., id="template")
            data["scenario"] = data.pop("id")
        if data.get("slug") is None:
            data["slug"] = ""
        unknown = [k for k in data if k not in cls.model_fields]
        if unknown:
            warnings.warn(
                f"task fields {', '.join(map(repr, unknown))} are not used by Workbench; "
                "they are kept with the task (stored and exported) but change nothing",
                stacklevel=4,
            )
        return data

    @pydantic.field_validator("agent_config")
    @classmethod
    def _agent_settings(cls, config: dict[str, Any] | None) -> dict[str, Any] | None:
        """The settings Workbench applies must be usable: a bad one fails here, with the
        task, not as every run's error. ``None`` (HUD's ``null``) means "not set"."""
        steps = (config or {}).get("max_steps")
        if steps is not None and (
            isinstance(steps, bool) or not isinstance(steps, int) or steps < 1
        ):
            raise ValueError(f"agent_config max_steps must be a whole number >= 1, got {steps!r}")
        prompt = (config or {}).get("system_prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise ValueError(
                f"agent_config system_prompt must be text, got {type(prompt).__name__}"
            )
        seconds = (config or {}).get("timeout_seconds")
        if seconds is not None and (
            isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0
        ):
            raise ValueError(f"agent_config timeout_seconds must be > 0, got {seconds!r}")
        for key in ("allowed_tools", "disallowed_tools"):
            names = (config or {}).get(key)
            if names is not None and (
                isinstance(names, str) or not all(isinstance(n, str) for n in names)
            ):
                raise ValueError(f"agent_config {key} must be a list of tool names")
        ignored = [k for k, v in (config or {}).items() if k not in AGENT_CONFIG_APPLIED]
        if ignored:
            warnings.warn(
                f"agent_config {', '.join(map(repr, ignored))} not supported by Workbench: "
                f"kept with the task but change nothing (applied: "
                f"{', '.join(AGENT_CONFIG_APPLIED)})",
                stacklevel=2,
            )
        return config

    def model_post_init(self, _context: Any) -> None:
        if not self.slug:
            object.__setattr__(self, "slug", default_slug(self.scenario or "tools", self.args))

    @property
    def id(self) -> str:
        """A content hash of (environment, scenario, arguments): equal tasks, equal ids."""
        return hashlib.sha256(
            json.dumps([self.env, self.scenario, self.args], sort_keys=True).encode()
        ).hexdigest()[:16]

    def environment(self) -> Environment:
        return resolve_environment(self.env)

    def offers_tool(self, name: str) -> bool:
        """Whether a run of this task shows the agent this tool: HUD's ``env`` filters
        (``include_tools``, ``exclude_tools``) and ``agent_config``'s ``allowed_tools`` /
        ``disallowed_tools``, all fnmatch patterns (``"*"``: every tool)."""
        from fnmatch import fnmatch

        config = self.agent_config or {}
        for only in (self.include_tools, config.get("allowed_tools")):
            if only is not None and not any(fnmatch(name, p) for p in only):
                return False
        for hidden in (self.exclude_tools, config.get("disallowed_tools")):
            if hidden and any(fnmatch(name, p) for p in hidden):
                return False
        return True

    def validate_args(self) -> Task:
        """Check the arguments against the scenario's signature (raises a one-line error)."""
        if self.scenario:
            self.environment().get_scenario(self.scenario).validate(self.args)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The task as a JSON-able record: HUD's fields and any extra ones only when set."""
        record = {"env": self.env, "scenario": self.scenario, "args": self.args, "slug": self.slug}
        for name in _KEPT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                record[name] = value
        record.update(self.model_extra or {})
        return record

    async def run(
        self, model: Any = "scripted:expert", *, max_steps: int | None = None, **options: Any
    ):
        """Run this task once with a model or agent; returns the trace (HUD's
        ``await task.run("claude-sonnet-4-5")``, ``task.run(agent, max_steps=5)``).

        The task's ``agent_config`` applies; ``max_steps`` given here wins over it. Other
        options go to :func:`workbench.eval` (``runtime=``, HUD's ``trace=``, ...).
        """
        from workbench.agent import Agent, create_agent
        from workbench.runs import eval as eval_context

        agent = model if isinstance(model, Agent) else create_agent(model)
        async with eval_context(self, **options) as ctx:
            return await agent.run(ctx, max_steps=max_steps)

    async def __aenter__(self):
        """``async with task as ctx:`` is ``async with workbench.eval(task) as ctx:`` (HUD v5:
        ``async with env("count", word=...) as ctx``)."""
        from workbench.runs import eval as eval_context

        block = eval_context(self)
        _OPEN_BLOCKS.setdefault(id(self), []).append(block)
        return await block.__aenter__()

    async def __aexit__(self, *exc_info: Any):
        blocks = _OPEN_BLOCKS[id(self)]
        block = blocks.pop()
        if not blocks:
            del _OPEN_BLOCKS[id(self)]
        return await block.__aexit__(*exc_info)


# `async with task:` blocks in progress, by task (a pydantic model compares its private
# attributes, so the block is not kept on the task itself)
_OPEN_BLOCKS: dict[int, list[Any]] = {}


class Taskset:
    """A named list of tasks with unique slugs."""

    def __init__(self, name: str, tasks: Iterable[Task] = (), description: str = ""):
        self.name = name
        self.description = description
        self.tasks: list[Task] = []
        self._by_slug: dict[str, Task] = {}
        for task in tasks:
            self.add(task)

    @classmethod
    def of(cls, tasks: Iterable[Task]) -> Taskset:
        """A taskset of a plain list of tasks, named after their environments and content
        (the same tasks give the same name, so their runs share a leaderboard)."""
        tasks = list(tasks)
        if not all(isinstance(t, Task) for t in tasks):
            raise WorkbenchError("a taskset is made of Task objects (e.g. env('checkout', ...))")
        envs = sorted(
            {t.env.rsplit(":", 1)[0].rsplit("/", 1)[-1].removesuffix(".py") for t in tasks}
        )
        digest = hashlib.sha256("\n".join(t.id + t.slug for t in tasks).encode()).hexdigest()
        return cls(f"{'+'.join(envs)[:40]}-{len(tasks)}-{digest[:6]}", tasks)

    def add(self, task: Task) -> Task:
        if task.slug in self._by_slug:
            raise WorkbenchError(
                f"taskset '{self.name}' already has a task '{task.slug}': give it another slug"
            )
        self.tasks.append(task)
        self._by_slug[task.slug] = task
        return task

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __getitem__(self, key: int | str) -> Task:
        if isinstance(key, str):
            try:
                return self._by_slug[key]
            except KeyError:
                raise KeyError(f"taskset '{self.name}' has no task '{key}'") from None
        return self.tasks[key]

    def __repr__(self) -> str:
        return f"Taskset({self.name!r}, {len(self)} tasks)"

    @property
    def slugs(self) -> list[str]:
        return [t.slug for t in self.tasks]

    def select(self, slugs: Iterable[str]) -> Taskset:
        """A taskset of only these tasks, in this taskset's order."""
        wanted = list(slugs)
        missing = [s for s in wanted if s not in self._by_slug]
        if missing:
            raise WorkbenchError(
                f"taskset '{self.name}' has no task {', '.join(repr(m) for m in missing)} "
                f"(see `workbench tasks show {self.name}`)"
            )
        keep = set(wanted)
        return Taskset(self.name, [t for t in self.tasks if t.slug in keep], self.description)

    def filter(self, slugs: Iterable[str]) -> Taskset:
        """HUD v6: a taskset of only the tasks with these slugs (unknown slugs: ignored)."""
        keep = set(slugs)
        return Taskset(self.name, [t for t in self.tasks if t.slug in keep], self.description)

    def exclude(self, slugs: Iterable[str]) -> Taskset:
        """HUD v6: a taskset without the tasks with these slugs."""
        drop = set(slugs)
        return Taskset(self.name, [t for t in self.tasks if t.slug not in drop], self.description)

    async def run(
        self,
        agent: Any,
        *,
        group: int | None = None,
        max_concurrent: int | None = None,
        max_steps: int | None = None,
        **options: Any,
    ):
        """HUD v6's ``job = await ts.run(agent, group=8, max_concurrent=10)``: a job of every
        task (:func:`workbench.evaluate`); ``job.reward`` is its mean reward, counted as the
        leaderboard counts it (an error is 0). ``agent`` is an agent or a model id; an
        agent's ``max_steps`` applies, and the tasks' ``agent_config`` as always. HUD's
        ``runtime`` is where runs go here too: ``"isolated"``, ``"inprocess"``, ..."""
        from workbench.agent import Agent, hud_model_id
        from workbench.jobs import evaluate

        if isinstance(agent, Agent):
            if agent.system_prompt or agent.timeout:
                warnings.warn(
                    "Taskset.run() runs the agent's model with the job's settings: its "
                    "system_prompt and timeout apply only per task, through agent_config",
                    stacklevel=2,
                )
            max_steps = max_steps or agent.max_steps
            model = agent.model.model_id
        else:
            model = hud_model_id(str(agent))
        job = await evaluate(
            self,
            model,
            group_size=group,
            max_concurrent=max_concurrent,
            max_steps=max_steps,
            **options,
        )
        return job

    # -- files and datasets ---------------------------------------------------------------

    def to_file(self, path: str | Path) -> Path:
        """HUD v6: write the tasks to ``.json`` (a list) or ``.jsonl`` (one per line)."""
        path = Path(path)
        if path.suffix == ".json":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps([t.to_dict() for t in self.tasks], indent=2) + "\n")
            return path
        return self.save_jsonl(path)

    def save_jsonl(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as f:
            for task in self.tasks:
                f.write(json.dumps(task.to_dict(), sort_keys=False) + "\n")
        return path

    @classmethod
    def load_jsonl(cls, path: str | Path, name: str | None = None) -> Taskset:
        path = Path(path)
        tasks = []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise WorkbenchError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        except OSError as e:
            raise WorkbenchError(f"{path}: cannot be read ({e.strerror or e})") from None
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                tasks.append(Task.model_validate(json.loads(line)))
            except (json.JSONDecodeError, pydantic.ValidationError) as e:
                first = str(e).splitlines()[0]
                raise WorkbenchError(f"{path}:{lineno}: not a task ({first})") from None
        return cls(name or path.stem, tasks)

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None) -> Taskset:
        """A taskset from a file, as HUD's ``Taskset.from_file``.

        ``.jsonl``: one task per line. ``.json``: a list of tasks (HUD's task files: ``env``
        as a name or ``{"name": ...}``, the scenario as ``scenario`` or ``id``). ``.py``: a
        Python file that defines tasks: a list named ``tasks``, or else every :class:`Task`
        and :class:`Taskset` at module level, in order. A Python file is run to find them,
        and the environment references in any task file name code that runs when the task
        does: open files you did not write before you run them.
        """
        path = Path(path)
        if path.suffix == ".py":
            return cls._from_python(path, name)
        if path.suffix == ".json":
            try:
                rows = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise WorkbenchError(f"{path}: not a JSON task file ({e})") from None
            if isinstance(rows, dict):
                rows = rows.get("tasks", [rows])
            tasks = []
            for i, row in enumerate(rows):
                try:
                    tasks.append(Task.model_validate(row))
                except pydantic.ValidationError as e:
                    first = str(e).splitlines()[0]
                    raise WorkbenchError(f"{path}: task {i}: not a task ({first})") from None
            return cls(name or path.stem, tasks)
        return cls.load_jsonl(path, name=name)

    @classmethod
    def _from_python(cls, path: Path, name: str | None) -> Taskset:
        module = import_path(str(path))
        found = getattr(module, "tasks", None)
        if isinstance(found, Taskset):
            return cls(name or found.name, found.tasks, found.description)
        if not isinstance(found, list | tuple):
            found = []
            for value in vars(module).values():
                if isinstance(value, Task):
                    found.append(value)
                elif isinstance(value, Taskset):
                    found.extend(value.tasks)
        tasks = [t for t in found if isinstance(t, Task)]
        if not tasks:
            raise WorkbenchError(
                f"{path} defines no tasks: make a list named `tasks`, or Task objects at "
                "module level (e.g. `task = env('checkout', product_name='laptop')`)"
            )
        return cls(name or path.stem, tasks)

    def to_dataset(self) -> datasets.Dataset:
        """A ``datasets.Dataset`` with columns env, scenario, args (JSON text), slug."""
        import datasets

        rows = [dict(t.to_dict(), args=json.dumps(t.args)) for t in self.tasks]
        features = datasets.Features(
            {k: datasets.Value("string") for k in ("env", "scenario", "args", "slug")}
        )
        return datasets.Dataset.from_list(rows, features=features)

    @classmethod
    def from_dataset(cls, dataset: datasets.Dataset, name: str) -> Taskset:
        """A taskset from a ``datasets.Dataset`` written by :meth:`to_dataset`, or from one
        with Inspect AI's field names (``input``, ``target``, ``id``, ``metadata``)."""
        if "args" not in dataset.column_names and "input" in dataset.column_names:
            from workbench.inspect_bridge import from_inspect_dataset

            return from_inspect_dataset(dataset, name)
        tasks = []
        for row in dataset:
            args = row["args"]
            tasks.append(
                Task(
                    env=row["env"],
                    scenario=row["scenario"],
                    args=json.loads(args) if isinstance(args, str) else dict(args),
                    slug=row.get("slug") or "",
                )
            )
        return cls(name, tasks)


def builtin_tasksets() -> dict[str, Path]:
    """Tasksets shipped with the example environments: name -> JSONL file."""
    return {p.stem: p for p in sorted(environments_dir().glob("*/tasksets/*.jsonl"))}


def load_taskset(name_or_path: str | Path, store=None) -> Taskset:
    """A taskset by stored name, shipped name, or JSONL path (stored name first)."""
    from workbench.store import get_store

    text = str(name_or_path)
    store = store or get_store()
    found = store.load_taskset(text)
    if found is not None:
        return found
    shipped = builtin_tasksets()
    if text in shipped:  # read from the file each time: it changes with the code
        return Taskset.load_jsonl(shipped[text], name=text)
    path = Path(text)
    if path.suffix in (".jsonl", ".json", ".py") and path.exists():
        return Taskset.from_file(path)
    known = sorted(set(store.list_tasksets()) | set(shipped))
    raise UnknownTasksetError(
        f"unknown taskset '{text}': use a stored name ({', '.join(known) or 'none'}) "
        "or a path to a task file: .jsonl, .json or a .py that defines tasks "
        "(`workbench tasks import FILE` stores one)"
    )
