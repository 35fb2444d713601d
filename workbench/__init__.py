"""Workbench: environments, tasksets, evaluation, traces, leaderboards and training for agents.

```python
import workbench
from workbench.environments.shop import env

job = await workbench.evaluate("shop-basics", ["scripted:expert", "scripted:weak"],
                               group_size=4)
job.leaderboard()
```

Importing the package imports nothing else: each name below is loaded from its module when
it is first used (PEP 562), so ``import workbench`` is fast and an environment's process
(a fork server, an MCP server, a container) pays only for what it uses.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType as _ModuleType  # not `types`: workbench.types is a submodule
from typing import TYPE_CHECKING, Any

DISTRIBUTION = "agent-research-workbench"  # the name pip knows it by (pyproject.toml)

# Public name -> the module that defines it.
_EXPORTS = {
    "Agent": "workbench.agent",
    "create_agent": "workbench.agent",
    "Comparison": "workbench.compare",
    "compare": "workbench.compare",
    "Environment": "workbench.environment",
    "Scenario": "workbench.environment",
    "Tool": "workbench.environment",
    "WorkbenchError": "workbench.errors",
    "Job": "workbench.jobs",
    "JobFinished": "workbench.jobs",
    "JobStarted": "workbench.jobs",
    "RunConfig": "workbench.run_config",
    "RunFinished": "workbench.jobs",
    "RunStarted": "workbench.jobs",
    "Step": "workbench.jobs",
    "create_job": "workbench.jobs",
    "evaluate": "workbench.jobs",
    "from_inspect": "workbench.inspect_bridge",  # the inspect extra: imported when used
    "load_job": "workbench.jobs",
    "resume": "workbench.jobs",
    "start": "workbench.jobs",
    "leaderboard": "workbench.leaderboard",
    "per_task": "workbench.leaderboard",
    "LoopResult": "workbench.loop",
    "learning_curve": "workbench.loop",
    "run_loop": "workbench.loop",
    "PolicyContext": "workbench.models",
    "answer": "workbench.models",
    "call": "workbench.models",
    "get_model": "workbench.models",
    "EvalContext": "workbench.runs",
    "eval": "workbench.runs",
    "Store": "workbench.store",
    "get_store": "workbench.store",
    "Task": "workbench.tasks",
    "Taskset": "workbench.tasks",
    "load_taskset": "workbench.tasks",
    "resolve_environment": "workbench.tasks",
    "Trace": "workbench.traces",
    "checkpoints": "workbench.training",
    "fork": "workbench.training",
    "set_head": "workbench.training",
    "train": "workbench.training",
}
__all__ = [  # every name of _EXPORTS (tests/test_package.py checks they agree)
    "Agent",
    "Comparison",
    "Environment",
    "EvalContext",
    "Job",
    "JobFinished",
    "JobStarted",
    "LoopResult",
    "PolicyContext",
    "RunConfig",
    "RunFinished",
    "RunStarted",
    "Scenario",
    "Step",
    "Store",
    "Task",
    "Taskset",
    "Tool",
    "Trace",
    "WorkbenchError",
    "answer",
    "call",
    "checkpoints",
    "compare",
    "create_agent",
    "create_job",
    "eval",
    "evaluate",
    "from_inspect",
    "fork",
    "get_model",
    "get_store",
    "leaderboard",
    "learning_curve",
    "load_job",
    "load_taskset",
    "per_task",
    "resolve_environment",
    "resume",
    "run_loop",
    "set_head",
    "start",
    "train",
]


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # a checkout that is not installed
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()[name] = _installed_version()
        return globals()[name]
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(_ModuleType):
    """Importing ``workbench.compare`` (the module) must not hide ``workbench.compare`` (the
    function): Python binds a submodule as an attribute of its package when it is imported.
    The same for ``workbench.eval``: the function, though ``workbench/eval/`` answers HUD's
    ``from workbench.eval import Task``."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, _ModuleType) and name in _EXPORTS:
            return  # the public function of that name wins; the module is in sys.modules
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

if TYPE_CHECKING:  # for editors and type checkers; nothing is imported at run time
    from workbench.agent import Agent, create_agent
    from workbench.compare import Comparison, compare
    from workbench.environment import Environment, Scenario, Tool
    from workbench.errors import WorkbenchError
    from workbench.inspect_bridge import from_inspect
    from workbench.jobs import (
        Job,
        JobFinished,
        JobStarted,
        RunFinished,
        RunStarted,
        Step,
        create_job,
        evaluate,
        load_job,
        resume,
        start,
    )
    from workbench.leaderboard import leaderboard, per_task
    from workbench.loop import LoopResult, learning_curve, run_loop
    from workbench.models import PolicyContext, answer, call, get_model
    from workbench.run_config import RunConfig
    from workbench.runs import EvalContext, eval
    from workbench.store import Store, get_store
    from workbench.tasks import Task, Taskset, load_taskset, resolve_environment
    from workbench.traces import Trace
    from workbench.training import checkpoints, fork, set_head, train
