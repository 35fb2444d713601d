"""The Loop, end to end: evaluate, collect successful traces, fork, train, evaluate again.

```python
result = await workbench.run_loop()          # the README's demo, on a 2-core CPU
result.leaderboard                           # before and after, with 95% intervals
```

The demo teaches SmolLM2-135M to use the arithmetic environment's ``calculate`` tool. The
successful traces come from a scripted teacher (``scripted:calculator``), not from the
model's own samples: the base model almost never solves two-digit problems and never calls
the tool, so its few lucky guesses would teach guessing. The teacher shows the skill (pass
the expression to the tool, answer with its result) on the training tasks; the fork is then
evaluated on held-out tasks (other problems from the same scenario) next to the base model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from workbench.compare import Comparison, compare
from workbench.jobs import Job, evaluate, progress_bar
from workbench.leaderboard import leaderboard
from workbench.store import Store, get_store
from workbench.training import registry
from workbench.training.sft import train


@dataclass
class LoopResult:
    base: str
    fork: str
    checkpoint: registry.Checkpoint
    before: Job
    teacher: Job
    after: Job
    leaderboard: pd.DataFrame  # base and fork on the held-out taskset
    comparison: Comparison  # the fork (b) against the base model (a), paired by task

    @property
    def better(self) -> bool:
        """Whether the fork is better: the paired 95% interval of its gain lies above 0."""
        return self.comparison.better is True

    @property
    def separated(self) -> bool:
        """Whether the fork's 95% interval lies wholly above the base model's."""
        rows = self.leaderboard.set_index("model")
        return bool(rows.loc[self.fork, "success_low"] > rows.loc[self.base, "success_high"])


def _free_name(name: str, store: Store) -> str:
    candidate, n = name, 1
    while registry.get_fork(candidate, store) is not None:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


async def run_loop(
    *,
    base: str = "smollm2-135m",
    name: str = "smollm2-calculator",
    train_taskset: str = "arithmetic-train",
    heldout_taskset: str = "arithmetic-heldout",
    teacher: str = "scripted:calculator",
    group_size: int = 2,
    max_tokens: int = 128,
    epochs: float = 2,
    store: Store | None = None,
    say: Callable[[str], None] = print,
    **train_options: Any,
) -> LoopResult:
    """Run the whole Loop and return the before/after leaderboard on held-out tasks."""
    store = store or get_store()
    base_id = f"local:{base}"
    sampling = {"max_tokens": max_tokens}

    say(f"1/5 evaluate {base_id} on {heldout_taskset} (group size {group_size})")
    before = await evaluate(
        heldout_taskset, base_id, group_size=group_size, store=store, **sampling
    )
    say(f"2/5 collect successful traces: {teacher} on {train_taskset}")
    taught = await evaluate(train_taskset, teacher, store=store)
    name = _free_name(name, store)
    say(f"3/5 fork {base} as '{name}'")
    registry.fork(base, name, store)
    say(f"4/5 train '{name}' on the successful traces of job {taught.id} ({epochs:g} epochs)")
    checkpoint = await asyncio.to_thread(
        train, name, jobs=[taught.id], epochs=epochs, store=store, **train_options
    )
    say(f"5/5 evaluate '{name}' (checkpoint {checkpoint.id}) on {heldout_taskset}")
    after = await evaluate(
        heldout_taskset,
        name,
        group_size=group_size,
        store=store,
        on_event=progress_bar(name),
        **sampling,
    )
    board = leaderboard(pd.concat([before.traces_df(), after.traces_df()], ignore_index=True))
    row = board.set_index("model").loc[name]
    registry.record_eval(
        name,
        checkpoint.id,
        heldout_taskset,
        {
            "job": after.id,
            **row[["runs", "success_rate", "success_low", "success_high", "mean_reward"]].to_dict(),
        },
        store,
    )
    comparison = compare(before, after, store=store)
    return LoopResult(base_id, name, checkpoint, before, taught, after, board, comparison)
