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
import importlib
import importlib.util
import json
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic

from workbench.environment import _LOCAL_ENVIRONMENTS, Environment
from workbench.errors import UnknownEnvironmentError, UnknownTasksetError, WorkbenchError

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
        else:
            parts.append(_slugify(value if not isinstance(value, dict | list) else name))
    slug = "-".join(p for p in parts if p)
    if len(slug) > 60:
        slug = f"{slug[:50].rstrip('-')}-{_args_hash(scenario, args)[:8]}"
    return slug


def _args_hash(scenario: str, args: dict[str, Any]) -> str:
    canonical = json.dumps([scenario, args], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class Task(pydantic.BaseModel):
    """A scenario of an environment with its arguments; ``slug`` names it in a taskset."""

    model_config = pydantic.ConfigDict(frozen=True)

    env: str
    scenario: str
    args: dict[str, Any] = {}
    slug: str = ""

    def model_post_init(self, _context: Any) -> None:
        if not self.slug:
            object.__setattr__(self, "slug", default_slug(self.scenario, self.args))

    @property
    def id(self) -> str:
        """A content hash of (environment, scenario, arguments): equal tasks, equal ids."""
        return hashlib.sha256(
            json.dumps([self.env, self.scenario, self.args], sort_keys=True).encode()
        ).hexdigest()[:16]

    def environment(self) -> Environment:
        return resolve_environment(self.env)

    def validate_args(self) -> Task:
        """Check the arguments against the scenario's signature (raises a one-line error)."""
        self.environment().get_scenario(self.scenario).validate(self.args)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"env": self.env, "scenario": self.scenario, "args": self.args, "slug": self.slug}


class Taskset:
    """A named list of tasks with unique slugs."""

    def __init__(self, name: str, tasks: Iterable[Task] = (), description: str = ""):
        self.name = name
        self.description = description
        self.tasks: list[Task] = []
        self._by_slug: dict[str, Task] = {}
        for task in tasks:
            self.add(task)

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

    # -- files and datasets ---------------------------------------------------------------

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
        with path.open() as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    tasks.append(Task.model_validate(json.loads(line)))
                except (json.JSONDecodeError, pydantic.ValidationError) as e:
                    first = str(e).splitlines()[0]
                    raise WorkbenchError(f"{path}:{lineno}: not a task ({first})") from None
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


# -- resolving references -----------------------------------------------------------------


def resolve_environment(ref: str) -> Environment:
    """Find an environment by reference.

    ``shop`` (an environment in ``environments/`` or one made in this process),
    ``package.module:attr`` or ``path/to/file.py:attr``.
    """
    if ref in _LOCAL_ENVIRONMENTS and ":" not in ref:
        return _LOCAL_ENVIRONMENTS[ref]
    if ref not in _RESOLVED:
        _RESOLVED[ref] = _resolve(ref)
    return _RESOLVED[ref]


_RESOLVED: dict[str, Environment] = {}


def _resolve(ref: str) -> Environment:
    if ":" in ref:
        target, attr = ref.rsplit(":", 1)
        module = _import_path(target) if target.endswith(".py") else _import_module(target, ref)
    else:
        module = _import_module(f"environments.{ref}", ref)
        attr = "env"
    env = getattr(module, attr, None)
    if not isinstance(env, Environment):
        raise UnknownEnvironmentError(
            f"'{ref}' does not name an Environment (no attribute '{attr}' of that type)"
        )
    return env


def _import_module(name: str, ref: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and name.startswith(e.name):
            raise UnknownEnvironmentError(
                f"unknown environment '{ref}': use a name from environments/ "
                f"({', '.join(builtin_environments())}), 'package.module:attr' or "
                "'path/to/file.py:attr'"
            ) from None
        raise


def _import_path(path: str):
    file = Path(path).resolve()
    if not file.exists():
        raise UnknownEnvironmentError(f"environment file '{path}' does not exist")
    name = f"_workbench_env_{hashlib.sha1(str(file).encode()).hexdigest()[:10]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    for attr, value in vars(module).items():
        if isinstance(value, Environment) and value._ref is None:
            value.ref = f"{file}:{attr}"  # so tasks made from it resolve in any process
    return module


def _environments_dir() -> Path:
    import environments

    return Path(environments.__file__).parent


def builtin_environments() -> list[str]:
    return sorted(p.name for p in _environments_dir().iterdir() if (p / "__init__.py").exists())


def builtin_tasksets() -> dict[str, Path]:
    """Tasksets shipped with the example environments: name -> JSONL file."""
    return {p.stem: p for p in sorted(_environments_dir().glob("*/tasksets/*.jsonl"))}


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
    if path.suffix == ".jsonl" and path.exists():
        return Taskset.load_jsonl(path)
    known = sorted(set(store.list_tasksets()) | set(shipped))
    raise UnknownTasksetError(
        f"unknown taskset '{text}': use a stored name ({', '.join(known) or 'none'}) "
        "or a path to a JSONL file (`workbench tasks import FILE` stores one)"
    )
