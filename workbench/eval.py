"""HUD's ``hud.eval`` import paths: ``from workbench.eval import Task, Taskset, Job`` and
``from workbench.eval.task import Task``.

``workbench.eval`` itself stays the function (``async with workbench.eval(task) as ctx``):
the package keeps the function under that name (see ``workbench/__init__.py``); this module
only answers ``from workbench.eval import ...``. ``Job`` is loaded when used.
"""

import sys
from typing import Any

from workbench.runs import EvalContext
from workbench.tasks import Task, Taskset

__all__ = ["EvalContext", "Job", "Task", "Taskset"]  # noqa: F822 - Job: loaded when used

__path__: list[str] = []  # `workbench.eval.task` is this module too
sys.modules[f"{__name__}.task"] = sys.modules[__name__]


def __getattr__(name: str) -> Any:
    if name == "Job":
        from workbench.jobs import Job

        return Job
    raise AttributeError(f"module 'workbench.eval' has no attribute {name!r}")
