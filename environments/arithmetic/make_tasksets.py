"""Write arithmetic's shipped tasksets: ``python -m workbench.environments.arithmetic.make_tasksets``."""

from __future__ import annotations

from pathlib import Path

from workbench.environments.arithmetic import env
from workbench.environments.arithmetic.problems import make_problem

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


def expression(task) -> str:
    """The problem a task of the ``solve`` scenario poses (two seeds can pose the same)."""
    return make_problem(task.args["seed"], task.args["difficulty"]).expression


def _mixed(name: str, first_seed: int, count: int, description: str, not_in=()) -> Taskset:
    """``count`` problems from seeds ``first_seed``, ``first_seed + 1``, ...: two-digit sums
    and differences, and two-operation problems, alternating. A seed whose problem is in
    ``not_in`` or already taken is skipped: a problem is never posed twice, and a held-out
    problem is never one the model trained on."""
    seen, tasks, seed = set(not_in), [], first_seed
    while len(tasks) < count:
        task = env.task("solve", seed=seed, difficulty=1 + seed % 2)
        if expression(task) not in seen:
            seen.add(expression(task))
            tasks.append(task)
        seed += 1
    return Taskset(name, tasks, description=description)


def arithmetic_train() -> Taskset:
    """The Loop demo's training tasks: 80 problems a 135M model almost never solves alone."""
    return _mixed("arithmetic-train", 100, 80, "Training tasks for the Loop demo")


def arithmetic_heldout() -> Taskset:
    """The Loop demo's held-out tasks: the same scenario, 30 problems none of which is a
    training problem (a seed's problem can repeat another seed's: compared by expression)."""
    train = {expression(t) for t in arithmetic_train()}
    return _mixed("arithmetic-heldout", 1000, 30, "Held-out tasks for the Loop demo", train)


def main() -> None:
    for taskset in (arithmetic_basics(), arithmetic_train(), arithmetic_heldout()):
        path = taskset.save_jsonl(TASKSETS / f"{taskset.name}.jsonl")
        print(f"wrote {len(taskset)} tasks to {path}")


if __name__ == "__main__":
    main()
