"""Write arithmetic's shipped tasksets: ``python -m environments.arithmetic.make_tasksets``."""

from __future__ import annotations

from pathlib import Path

from environments.arithmetic import env
from workbench.tasks import Taskset

TASKSETS = Path(__file__).parent / "tasksets"


def arithmetic_basics() -> Taskset:
    """Mostly one-operation problems, a few with two: a small model gets some of them."""
    easy = [env.task("solve", seed=seed, difficulty=1) for seed in range(1, 10)]
    medium = [env.task("solve", seed=seed, difficulty=2) for seed in range(10, 13)]
    return Taskset("arithmetic-basics", easy + medium, description="Short arithmetic problems")


def main() -> None:
    for taskset in (arithmetic_basics(),):
        path = taskset.save_jsonl(TASKSETS / f"{taskset.name}.jsonl")
        print(f"wrote {len(taskset)} tasks to {path}")


if __name__ == "__main__":
    main()
