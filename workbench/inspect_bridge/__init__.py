"""Inspect AI in and out: Inspect tasks and datasets as tasksets, jobs as Inspect ``.eval`` logs.

```python
import workbench
from workbench.inspect_bridge import from_inspect, to_inspect_log

ts = from_inspect("security_guide.py@security_guide", grader="scripted:grader")
job = await workbench.evaluate(ts, ["scripted:target", "local:smollm2-135m"], max_tokens=64)
to_inspect_log(job, "logs")  # one .eval per model: `inspect view --log-dir logs`
```

- An Inspect ``Task`` becomes a taskset, one task per ``Sample`` (input, target, id and
  metadata kept as the task's arguments). Its setup solvers (``system_message``,
  ``user_message``, ``assistant_message``, ``prompt_template``, ``chain_of_thought``,
  ``use_tools``) make the prompt and offer the tools; ``generate()`` is Workbench's agent
  loop; the reward is the task's own scorer on the final answer and the conversation, its
  value mapped to [0, 1] by Inspect's ``value_to_float`` and its explanation in the info.
  Other solvers and sandboxes are refused with a one-line error that names them.
- Every Inspect environment has two scripted policies: ``scripted:target`` answers each
  sample's target; ``scripted:grader`` grades with Inspect's default ``model_graded_*``
  templates (C when the submission contains the target).
- Logs out: :func:`to_inspect_log` writes one ``.eval`` per model that Inspect's
  ``read_eval_log`` and ``inspect view`` read: samples (group index = epoch), messages,
  tool calls, scores and model usage.

Needs the ``inspect`` extra: ``pip install 'agent-research-workbench[inspect]'``.
"""

from __future__ import annotations

from typing import Any

from workbench.errors import WorkbenchError


class InspectNotInstalled(WorkbenchError, ImportError):
    """The ``inspect_ai`` package is missing."""


try:
    import inspect_ai  # noqa: F401
except ImportError as e:  # pragma: no cover - the extra is installed in CI
    raise InspectNotInstalled(
        f"Inspect AI is not installed ({e}): pip install 'agent-research-workbench[inspect]'"
    ) from None

from workbench.inspect_bridge.environment import (  # noqa: E402
    SUPPORTED_SOLVERS,
    InspectScoreError,
)
from workbench.inspect_bridge.loading import (  # noqa: E402
    InspectSpec,
    InspectTaskError,
    is_task_spec,
    parse_task_args,
)
from workbench.inspect_bridge.logs import to_inspect_log  # noqa: E402 - after the check
from workbench.inspect_bridge.models import GraderMissing, WorkbenchModelAPI  # noqa: E402
from workbench.inspect_bridge.tasks import (  # noqa: E402
    DATASET_SCORERS,
    from_inspect,
    from_inspect_dataset,
    inspect_environment,
)

__all__ = [
    "DATASET_SCORERS",
    "GraderMissing",
    "InspectNotInstalled",
    "InspectScoreError",
    "InspectTaskError",
    "SUPPORTED_SOLVERS",
    "WorkbenchModelAPI",
    "from_inspect",
    "from_inspect_dataset",
    "inspect_environment",
    "is_task_spec",
    "parse_task_args",
    "to_inspect_log",
]


def __getattr__(name: str) -> Any:
    """Environment references ``workbench.inspect_bridge:FILE@TASK?...`` resolve here, in
    any process (``workbench.resolve_environment`` reads the part after the colon as an
    attribute of this module)."""
    file, at, _ = name.partition("?")[0].rpartition("@")
    if not (at and file.endswith(".py")) and not name.startswith("dataset"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from workbench.inspect_bridge.tasks import environment_for

    return environment_for(InspectSpec.parse(name))
