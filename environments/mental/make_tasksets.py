"""Write mental's shipped tasksets: ``python -m workbench.environments.mental.make_tasksets``.

Every one-digit problem is made once: ``a + b`` for a, b in 1-9 (81) and ``a - b`` for
9 >= a > b >= 1 (36). The held-out taskset takes 30 of them and the training taskset the
rest, split by *problem* so that no held-out sum is a training sum written the other way
round (``3 + 8`` and ``8 + 3`` go to the same side).
"""

from __future__ import annotations

import random
from pathlib import Path

from workbench.environments.mental import env

from workbench.tasks import Task, Taskset

TASKSETS = Path(__file__).parent / "tasksets"
HELDOUT = 30
WORDS = {"+": "plus", "-": "minus"}


def _task(a: int, op: str, b: int) -> Task:
    return env.task("solve", slug=f"{a}-{WORDS[op]}-{b}", a=a, op=op, b=b)


def problems() -> list[list[Task]]:
    """Every problem, as groups of tasks that must stay on one side of the split."""
    groups = []
    for a in range(1, 10):
        for b in range(a, 10):  # a + b and b + a: one group
            groups.append([_task(a, "+", b)] + ([_task(b, "+", a)] if a != b else []))
    groups += [[_task(a, "-", b)] for a in range(2, 10) for b in range(1, a)]
    return groups


def split(seed: int = 14) -> tuple[list[Task], list[Task]]:
    """(training tasks, held-out tasks): disjoint, 87 and 30, each in a shuffled order."""
    groups = problems()
    random.Random(seed).shuffle(groups)
    heldout, train = [], []
    for group in groups:
        if len(heldout) + len(group) <= HELDOUT:
            heldout.extend(group)
        else:
            train.extend(group)
    rng = random.Random(seed + 1)
    rng.shuffle(train)  # the Loop samples consecutive slices: mix sums and differences
    return train, heldout


def mental_train() -> Taskset:
    train, _ = split()
    return Taskset("mental-train", train, description="Self-improvement rounds: training tasks")


def mental_heldout() -> Taskset:
    _, heldout = split()
    return Taskset("mental-heldout", heldout, description="Self-improvement rounds: held out")


def main() -> None:
    for taskset in (mental_train(), mental_heldout()):
        path = taskset.save_jsonl(TASKSETS / f"{taskset.name}.jsonl")
        print(f"wrote {len(taskset)} tasks to {path}")


if __name__ == "__main__":
    main()
