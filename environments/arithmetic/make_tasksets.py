"""Write arithmetic's shipped tasksets: ``python -m workbench.environments.arithmetic.make_tasksets``."""

from __future__ import annotations

from pathlib import Path

from workbench.environments.arithmetic import env

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


def _mixed(name: str, seeds: range, description: str) -> Taskset:
    # two-digit sums and differences, and two-operation problems, alternating
    tasks = [env.task("solve", seed=s, difficulty=1 + s % 2) for s in seeds]
    return Taskset(name, tasks, description=description)


def arithmetic_train() -> Taskset:
    """The Loop demo's training tasks: 80 problems a 135M model almost never solves alone."""
    return _mixed("arithmetic-train", range(100, 180), "Training tasks for the Loop demo")


def arithmetic_heldout() -> Taskset:
    """The Loop demo's held-out tasks: the same scenario, different problems (other seeds)."""
    return _mixed("arithmetic-heldout", range(1000, 1030), "Held-out tasks for the Loop demo")


def main() -> None:
    for taskset in (arithmetic_basics(), arithmetic_train(), arithmetic_heldout()):
        path = taskset.save_jsonl(TASKSETS / f"{taskset.name}.jsonl")
        print(f"wrote {len(taskset)} tasks to {path}")


if __name__ == "__main__":
    main()
