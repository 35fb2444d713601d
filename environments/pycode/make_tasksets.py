"""Write pycode's shipped taskset: ``python -m workbench.environments.pycode.make_tasksets``."""

from __future__ import annotations

from pathlib import Path

from workbench.environments.pycode import env
from workbench.environments.pycode.problems import PROBLEMS

from workbench.tasks import Taskset

TASKSETS = Path(__file__).parent / "tasksets"


def pycode_basics() -> Taskset:
    tasks = [env.task("implement", problem=name) for name in PROBLEMS]
    return Taskset("pycode-basics", tasks, description="Ten small functions, hidden tests")


def main() -> None:
    for taskset in (pycode_basics(),):
        path = taskset.save_jsonl(TASKSETS / f"{taskset.name}.jsonl")
        print(f"wrote {len(taskset)} tasks to {path}")


if __name__ == "__main__":
    main()
