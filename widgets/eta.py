"""Time left for a training run, known before its first step.

```python
steps = plan(likely_examples(store, None, [job_id], config), config)
overhead, per_step, source = prior(store, config)   # from the newest finished training run
```

The steps come from the runs chosen (summaries only: no conversation is read), the batch
size and the epochs; the time per step and the loading overhead come from the last training
run (scaled to this batch size), or a first guess for a 2-core CPU without one. Once the run
has taken two steps, its own pace replaces the estimate (see ``TrainingPanel``).
"""

from __future__ import annotations

import math

import pandas as pd

from workbench import Store
from workbench.training import TrainConfig, checkpoints, list_forks

# With no training run to learn from: loading SmolLM2 and tokenizing (~20 s on 2 cores),
# then about 0.4 s per example per step on a 2-core CPU.
FIRST_GUESS = {"overhead": 20.0, "per_example": 0.4}


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"


def plan(examples: int, config: TrainConfig) -> int:
    """Optimizer steps a run takes (as the trainer counts them)."""
    per_epoch = max(1, math.ceil(examples / config.batch_size) // config.grad_accum)
    return max(1, math.ceil(per_epoch * config.epochs))


def likely_examples(
    store: Store, taskset: str | None, jobs: list[str] | None, config: TrainConfig
) -> int:
    """How many traces training will take, from run summaries (no conversations read): the
    finished runs that reach ``min_reward``, at most ``max_per_task`` a task. (Training also
    drops duplicate conversations, so this is an upper bound until the traces are read.)"""
    frames = [store.traces_df(job_id=j, taskset=taskset) for j in jobs] if jobs else []
    if not jobs and taskset:
        frames = [store.traces_df(taskset=taskset)]
    runs = pd.concat(frames) if frames else pd.DataFrame()
    if runs.empty:
        return 0
    kept = runs[(runs["stop_reason"] == "done") & (runs["reward"] >= config.min_reward)]
    if config.max_per_task is not None:
        kept = kept.groupby("task").head(config.max_per_task)
    return len(kept)


def prior(store: Store, config: TrainConfig) -> tuple[float, float, str]:
    """(overhead s, s per step, where from): from the newest finished training run."""
    found = [c for f in list_forks(store) for c in checkpoints(f.name, store)]
    for c in sorted(found, key=lambda c: c.created_at, reverse=True):
        m = c.metrics
        if m.get("steps") and m.get("train_seconds") and m.get("seconds"):
            batch = (c.manifest.get("hyperparameters") or {}).get("batch_size") or 8
            per_step = m["train_seconds"] / m["steps"] * config.batch_size / batch
            return max(0.0, m["seconds"] - m["train_seconds"]), per_step, "the last training run"
    per_step = FIRST_GUESS["per_example"] * config.batch_size * config.grad_accum
    return FIRST_GUESS["overhead"], per_step, "a first guess for a 2-core CPU"
