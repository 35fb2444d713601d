"""Workbench: environments, tasksets, evaluation, traces, leaderboards and training for agents.

```python
import workbench
from environments.shop import env

job = await workbench.evaluate("shop-basics", ["scripted:expert", "scripted:weak"],
                               group_size=4)
job.leaderboard()
```
"""

from workbench.agent import Agent, create_agent
from workbench.compare import Comparison, compare
from workbench.environment import Environment, Scenario, Tool
from workbench.errors import WorkbenchError
from workbench.jobs import (
    Job,
    JobFinished,
    JobStarted,
    RunConfig,
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
from workbench.loop import LoopResult, run_loop
from workbench.models import PolicyContext, answer, call, get_model
from workbench.runs import EvalContext, eval
from workbench.store import Store, get_store
from workbench.tasks import Task, Taskset, load_taskset, resolve_environment
from workbench.traces import Trace
from workbench.training import checkpoints, fork, set_head, train

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "Environment",
    "EvalContext",
    "Job",
    "JobFinished",
    "JobStarted",
    "PolicyContext",
    "RunConfig",
    "RunFinished",
    "RunStarted",
    "Comparison",
    "compare",
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
    "create_agent",
    "create_job",
    "eval",
    "evaluate",
    "get_model",
    "get_store",
    "LoopResult",
    "checkpoints",
    "fork",
    "leaderboard",
    "run_loop",
    "set_head",
    "train",
    "load_job",
    "load_taskset",
    "per_task",
    "resolve_environment",
    "resume",
    "start",
]
