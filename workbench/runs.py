"""One run of one task: the episode, the conversation so far, and the trace it leaves.

Drive a run yourself, as on the platform this mirrors:

```python
agent = create_agent("scripted:expert")
async with workbench.eval(task) as ctx:
    result = await agent.run(ctx)
print(ctx.reward, ctx.trace.stop_reason)
```

The trace is written to the store when the ``async with`` block ends, however it ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from workbench.environment import Episode, ToolOutcome
from workbench.models.base import Completion, RunInfo
from workbench.runtimes import open_episode
from workbench.tasks import Task
from workbench.traces import StopReason, ToolCallRecord, Trace


class EvalContext:
    """The live state of one run; agents read ``messages``/``tools`` and call back into it."""

    def __init__(
        self,
        task: Task,
        *,
        job_id: str | None = None,
        taskset: str | None = None,
        group_index: int = 0,
        on_step: Callable[[EvalContext, dict[str, Any]], None] | None = None,
        runtime: str | None = None,
    ):
        self.task = task
        self.runtime = runtime
        self.group_index = group_index
        self.on_step = on_step
        self.episode: Episode | None = None
        self.finished = False
        self.graded = False
        self.trace = Trace(
            job_id=job_id,
            taskset=taskset,
            task=task.slug,
            task_id=task.id,
            env=task.env,
            scenario=task.scenario,
            args=task.args,
            model="",
            group_index=group_index,
        )

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.trace.messages

    @property
    def tools(self) -> list[dict[str, Any]]:
        return self.trace.tools

    @property
    def reward(self) -> float:
        return self.trace.reward

    @property
    def run_info(self) -> RunInfo:
        return RunInfo(task=self.task, group_index=self.group_index, job_id=self.trace.job_id)

    async def start(self) -> list[dict[str, Any]]:
        """Fresh state, the scenario's prompt; returns the messages to send to the model."""
        if self.episode is None:
            self.episode = open_episode(self.task, self.runtime)
            self.trace.messages = await self.episode.start()
            self.trace.tools = self.episode.tool_schemas
        return self.trace.messages

    def add_assistant(self, completion: Completion) -> dict[str, Any]:
        message = completion.message
        self.trace.messages.append(message)
        self.trace.steps += 1
        for key, value in completion.usage.items():
            self.trace.usage[key] = self.trace.usage.get(key, 0) + value
        if completion.checkpoint:
            self.trace.checkpoint = completion.checkpoint
        if self.on_step is not None:
            self.on_step(self, message)
        return message

    async def call_tool(self, tool_call: dict[str, Any]) -> ToolOutcome:
        """Execute one OpenAI-format tool call; its result joins the conversation."""
        function = tool_call.get("function") or {}
        name = function.get("name") or ""
        arguments = function.get("arguments")
        started = time.perf_counter()
        outcome = await self.episode.call_tool(name, arguments)
        call_id = tool_call.get("id") or f"call_{len(self.trace.tool_calls)}"
        self.trace.messages.append(
            {"role": "tool", "tool_call_id": call_id, "content": outcome.content}
        )
        self.trace.tool_calls.append(
            ToolCallRecord(
                step=self.trace.steps,
                id=call_id,
                name=name,
                arguments=arguments if isinstance(arguments, str) else str(arguments),
                result=outcome.content,
                error=outcome.error,
                seconds=time.perf_counter() - started,
            )
        )
        return outcome

    async def submit(self, answer: str | None) -> float:
        """Send the final answer to the scenario and record the reward."""
        reward, info = await self.episode.grade(answer)
        self.trace.reward, self.trace.info, self.graded = reward, info, True
        return reward

    def finish(
        self, stop_reason: StopReason, error: BaseException | None = None, *, force: bool = False
    ) -> Trace:
        """Close the trace with a stop reason (once, unless ``force``)."""
        if self.finished and not force:
            return self.trace
        self.finished = True
        self.trace.stop_reason = stop_reason
        self.trace.ended_at = time.time()
        if error is not None:
            self.trace.error_type = type(error).__name__
            self.trace.error_message = str(error) or type(error).__name__
        if stop_reason in ("error", "timeout", "cancelled") and not self.graded:
            self.trace.reward = 0.0
        return self.trace

    async def close(self) -> None:
        if self.episode is not None:
            try:
                await self.episode.close()
            except Exception:  # a scenario's cleanup must not lose the trace
                pass


@asynccontextmanager
async def eval(  # noqa: A001 - mirrors the platform's `hud.eval(task)`
    task: Task,
    *,
    group_index: int = 0,
    store=None,
    record: bool = True,
    runtime: str | None = None,
) -> AsyncIterator[EvalContext]:
    """Run one task by hand; the trace is stored when the block exits.

    ``runtime``: ``inprocess``, ``subprocess`` or ``docker`` (default: the environment's).
    """
    from workbench.store import get_store

    ctx = EvalContext(task, group_index=group_index, runtime=runtime)
    try:
        await ctx.start()
        yield ctx
        if not ctx.finished:
            ctx.finish("done" if ctx.graded else "error", None if ctx.graded else _NoAnswer())
    except asyncio.CancelledError:
        ctx.finish("cancelled")
        raise
    except BaseException as e:
        ctx.finish("error", e)
        raise
    finally:
        await ctx.close()
        if record:
            (store or get_store()).add_trace(ctx.trace)


class _NoAnswer(Exception):
    def __str__(self) -> str:
        return "the run ended before an answer was submitted"
