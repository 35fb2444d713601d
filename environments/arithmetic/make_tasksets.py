"""Write arithmetic's shipped tasksets: ``python -m environments.arithmetic.make_tasksets``."""

from __future__ import annotations

from pathlib import Path

from environments.arithmetic import env
from workbench.tasks import Taskset

TASKSETS = Path(__file__).parent / "tasksets"


def arithmetic_basics() -> Taskset:
    """One-digit sums and differences, then two-digit ones and a few with two operations.

    A 135M-parameter model gets some of the one-digit problems right and few of the others,
    so the leaderboard shows a spread rather than 0% or 100%.
    """
    tiny = [env.task("solve", seed=seed, difficulty=0) for seed in range(1, 7)]
    easy = [env.task("solve", seed=seed, difficulty=1) for seed in range(7, 11)]
    medium = [env.task("solve", seed=seed, difficulty=2) for seed in range(11, 13)]
    return Taskset(
        "arithmetic-basics", tiny + easy + medium, description="Short arithmetic problems"
    )


def main() -> None:
    for taskset in (arithmetic_basics(),):
        path = taskset.save_jsonl(TASKSETS / f"{taskset.name}.jsonl")
        print(f"wrote {len(taskset)} tasks to {path}")


if __name__ == "__main__":
    main()
