"""Backends: where a job's runs are played. One small protocol, two implementations.

```python
backend = await open_backend(job_id, "shop-basics", config)   # config.backend: asyncio | ray
trace = await backend.play(task, "scripted:expert", group_index=0, on_step=None)
await backend.close()
```

A :class:`Job` owns everything around a run: which runs are pending, how many are in flight
(``max_concurrent`` workers: the one queue-and-wait loop), storing traces, events, status
and resume. A backend only *plays* a run and hands back its trace, calling ``on_step`` with
each step as it happens when the job's watchers follow steps:

- :class:`LocalBackend` plays runs on this process's event loop, one
  :class:`~workbench.agent.Agent` per model;
- :class:`~workbench.ray_backend.RayBackend` plays them on Ray actors and streams the steps
  back (``workbench/ray_backend.py``).

The rules of a run are in one place, :func:`play`, whichever backend calls it: the run's
timeout (``stop_reason="timeout"``), errors (a crashing model, tool or environment ends the
run as an ``error`` trace, never an exception), cancellation (``cancelled``: not stored, a
resume plays it again) and the containers a run starts carrying its job's id. A run that
could not be played at all (a Ray worker died twice) is :func:`error_trace`.

Where the *environment* of a run executes (this process, a copy-on-write fork per run, a
subprocess, a container) is a different choice, the runtime (:mod:`workbench.runtimes`):
any backend plays runs in any runtime.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from workbench.agent import Agent
from workbench.runs import EvalContext

if TYPE_CHECKING:
    from workbench.run_config import RunConfig
    from workbench.tasks import Task
    from workbench.traces import Trace

# on_step(step number, the model's message, messages new since the last step, usage so far)
OnStep = Callable[..., None]


class Backend(Protocol):
    """Plays one run of a job at a time (many concurrently) and hands back its trace."""

    async def play(
        self, task: Task, model: str, group_index: int, on_step: OnStep | None = None
    ) -> Trace: ...

    async def close(self) -> None: ...


async def open_backend(job_id: str, taskset: str, config: RunConfig) -> Backend:
    """The backend ``config.backend`` names, ready to play the job's runs."""
    if config.backend == "ray":
        from workbench.ray_backend import RayBackend

        return await RayBackend.open(job_id, taskset, config)
    return LocalBackend(job_id, taskset, config)


def check_backend(config: RunConfig) -> None:
    """Fail before a job exists if its backend cannot run here (Ray not installed)."""
    if config.backend == "ray":
        from workbench.ray_backend import import_ray

        import_ray()


class LocalBackend:
    """Runs on this process's event loop (the ``asyncio`` backend)."""

    def __init__(self, job_id: str, taskset: str, config: RunConfig):
        self.job_id, self.taskset, self.config = job_id, taskset, config
        self.agents = {m: make_agent(m, config) for m in config.models}

    async def play(
        self, task: Task, model: str, group_index: int, on_step: OnStep | None = None
    ) -> Trace:
        return await play(
            self.agents[model],
            task,
            group_index,
            job_id=self.job_id,
            taskset=self.taskset,
            config=self.config,
            on_step=on_step,
        )

    async def close(self) -> None:
        pass


def make_agent(model: str, config: RunConfig) -> Agent:
    """The agent that plays a model's runs under a job's settings."""
    return Agent(model, max_steps=config.max_steps, sampling=config.sampling)


def _step_reporter(on_step: OnStep) -> Callable:
    """``on_step(step, message, new_messages, usage)`` from a run's step callback."""
    reported = 0

    def step(ctx, message: dict[str, Any]) -> None:
        nonlocal reported
        new = tuple(ctx.trace.messages[reported:])
        reported = len(ctx.trace.messages)
        on_step(ctx.trace.steps, message, new, dict(ctx.trace.usage))

    return step


async def play(
    agent: Agent,
    task: Task,
    group_index: int,
    *,
    job_id: str,
    taskset: str,
    config: RunConfig,
    on_step: OnStep | None = None,
) -> Trace:
    """One run of a job, wherever it executes (this process or a Ray actor); its trace."""
    ctx = EvalContext(
        task,
        job_id=job_id,
        taskset=taskset,
        group_index=group_index,
        on_step=None if on_step is None else _step_reporter(on_step),
        runtime=config.runtime,
    )
    from workbench.runtimes.docker import job_scope

    with job_scope(job_id):  # the containers this run starts carry the job's id
        try:
            try:
                agent = agent.for_task(task)
            except Exception as e:  # a task's bad settings end its runs, not the job
                ctx.trace.model = agent.model.model_id
                return ctx.finish("error", e)
            if config.timeout is None:
                await agent.run(ctx)
            else:
                async with asyncio.timeout(config.timeout):
                    await agent.run(ctx)
        except TimeoutError:
            ctx.finish("timeout", TimeoutError(f"run exceeded {config.timeout} s"), force=True)
        finally:
            await ctx.close()
    return ctx.trace


def error_trace(
    task: Task, model: str, group_index: int, *, job_id: str, taskset: str, error: BaseException
) -> Trace:
    """The trace of a run that could not be played (its worker died): an ``error``."""
    ctx = EvalContext(task, job_id=job_id, taskset=taskset, group_index=group_index)
    ctx.trace.model = model
    return ctx.finish("error", error)
