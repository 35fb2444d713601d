"""References to environments: how ``shop``, ``package.module:attr`` or
``path/to/file.py:attr`` find an :class:`~workbench.environment.Environment` in any process.

A task stores its environment as a reference, so a job, a fork server, a Ray worker or a
container can find the same environment again. A name made in this process (a notebook's
``Environment("mine")``) resolves here only; names are claimed, so a notebook cannot
silently replace a shipped environment for every stored task.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.errors import UnknownEnvironmentError, WorkbenchError

if TYPE_CHECKING:
    from workbench.environment import Environment

# The example environments (the repository's environments/ folder), by folder name.
SHIPPED = "workbench.environments"

# Environments created in this process, by reference: lets a notebook-defined environment
# be resolved by name without being importable.
_LOCAL_ENVIRONMENTS: dict[str, Environment] = {}


def claim_name(env: Environment) -> None:
    """Refuse a name another environment has: stored tasks name their environment by it, so
    a notebook's ``Environment("shop")`` would silently replace the shipped shop for them.
    The same module defining it again (a notebook cell run twice) replaces it."""
    import importlib.util

    from workbench.errors import WorkbenchError

    ours = env._module == f"{SHIPPED}.{env.name}"
    if not ours and env.name.isidentifier():
        if importlib.util.find_spec(f"{SHIPPED}.{env.name}") is not None:
            raise WorkbenchError(
                f"'{env.name}' is the name of a shipped environment (environments/{env.name}): "
                "give yours another name"
            )
    taken = _LOCAL_ENVIRONMENTS.get(env.name)
    if taken is not None and taken._module != env._module:
        raise WorkbenchError(
            f"an environment named '{env.name}' already exists (made in {taken._module}): "
            "give this one another name"
        )


def find_ref(env: Environment) -> str:
    """A reference any process can resolve: ``shop``, ``pkg.module:attr``, or the name."""
    module = env._module
    if module.startswith(f"{SHIPPED}."):
        return module.removeprefix(f"{SHIPPED}.").split(".")[0]
    loaded = sys.modules.get(module)
    if module != "__main__" and loaded is not None:
        for attr, value in vars(loaded).items():
            if value is env:
                return f"{module}:{attr}"
    return env.name  # defined in a notebook or script: resolvable in this process only


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
    from workbench.environment import Environment

    if ":" in ref:
        target, attr = ref.rsplit(":", 1)
        module = import_path(target) if target.endswith(".py") else _import_module(target, ref)
    else:
        module = _import_module(f"{SHIPPED}.{ref}", ref)
        attr = "env"
    env = getattr(module, attr, None)
    if not isinstance(env, Environment):
        raise UnknownEnvironmentError(
            f"'{ref}' does not name an Environment (no attribute '{attr}' of that type)"
        )
    return env


def _on_path(folder: Path) -> None:
    if str(folder) not in sys.path and not (folder == Path.cwd() and "" in sys.path):
        sys.path.append(str(folder))


def _import_module(name: str, ref: str):
    # `module:attr` names a module in the current directory, as a user expects (and as
    # `python -m` would find it); the `workbench` command does not put it on the path.
    _on_path(Path.cwd())
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


def import_path(path: str):
    from workbench.environment import Environment

    file = Path(path).resolve()
    if not file.exists():
        raise UnknownEnvironmentError(f"environment file '{path}' does not exist")
    name = f"_workbench_env_{hashlib.sha1(str(file).encode()).hexdigest()[:10]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # As `python file.py` would: the file's folder is on the path, so a HUD project's
    # tasks.py can `from env import scenario`.
    _on_path(file.parent)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise WorkbenchError(f"{path}: importing it failed: {type(e).__name__}: {e}") from e
    for attr, value in vars(module).items():
        if isinstance(value, Environment) and value._ref is None:
            value.ref = f"{file}:{attr}"  # so tasks made from it resolve in any process
    return module


def environments_dir() -> Path:
    return Path(importlib.import_module(SHIPPED).__file__).parent


def builtin_environments() -> list[str]:
    return sorted(p.name for p in environments_dir().iterdir() if (p / "__init__.py").exists())
