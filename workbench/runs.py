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
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from workbench.episode import (
    Episode,
    claude_tools,
    parse_reward,
    tool_call_parts,
    tool_reply,
)
from workbench.errors import WorkbenchError
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
        self._answer: str | None = None
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

    @reward.setter
    def reward(self, value: float) -> None:
        """Set the reward by hand (HUD: ``ctx.reward = 1.0``); it is the run's grade."""
        reward, info = parse_reward(value, self.task.scenario or "by hand")
        self.trace.reward, self.graded = reward, True
        self.trace.info.update(info)

    @property
    def prompt(self) -> str:
        """The prompt's text: its user messages, joined (HUD: ``ctx.prompt``)."""
        return "\n\n".join(
            m["content"]
            for m in self.trace.messages
            if m.get("role") == "user" and isinstance(m.get("content"), str)
        )

    @property
    def answer(self) -> str | None:
        """The answer submitted, if any."""
        return self._answer

    def as_openai_chat_tools(self) -> list[dict[str, Any]]:
        """The run's tools in the OpenAI chat completions format."""
        return self.tools

    def as_claude_tools(self) -> list[dict[str, Any]]:
        """The run's tools in the Anthropic Messages format."""
        return claude_tools(self.tools)

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
        self.trace.finish_reasons.append(completion.finish_reason)
        for key, value in completion.usage.items():
            self.trace.usage[key] = self.trace.usage.get(key, 0) + value
        if completion.checkpoint:
            self.trace.checkpoint = completion.checkpoint
        if self.on_step is not None:
            self.on_step(self, message)
        return message

    async def call_tool(self, call: Any, /, **arguments: Any) -> Any:
        """Execute a tool call; it is recorded in the trace.

        ``call`` is what HUD users pass: a tool name with keyword arguments (returns a
        :class:`~workbench.environment.ToolResult`), an OpenAI tool call, SDK object or dict
        (returns the tool message, which also joins this run's conversation), or an Anthropic
        ``tool_use`` block (returns the ``tool_result`` block).
        """
        name, args, call_id, fmt = tool_call_parts(call, arguments)
        started = time.perf_counter()
        outcome = await self.episode.call_tool(name, args)
        call_id = call_id or f"call_{len(self.trace.tool_calls)}"
        if fmt == "openai":
            self.trace.messages.append(
                {"role": "tool", "tool_call_id": call_id, "content": outcome.content}
            )
        self.trace.tool_calls.append(
            ToolCallRecord(
                step=self.trace.steps,
                id=call_id,
                name=name,
                arguments=args if isinstance(args, str) else json.dumps(args, default=str),
                result=outcome.content,
                error=outcome.error,
                seconds=time.perf_counter() - started,
            )
        )
        return tool_reply(outcome, call_id, fmt)

    async def submit(self, answer: str | None) -> float:
        """Send the final answer to the scenario and record the reward.

        A task with no scenario (``env()``) has nothing to grade: the answer is kept and the
        reward is what was set by hand (``ctx.reward = ...``).
        """
        self._answer = answer
        if not self.task.scenario:
            return self.trace.reward
        reward, info = await self.episode.grade(answer)
        self.trace.reward, self.graded = reward, True
        self.trace.info = {**self.trace.info, **info}
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
    source: Task | list[Task] | Any,
    *,
    group: int = 1,
    group_index: int = 0,
    max_concurrent: int = 16,
    store=None,
    record: bool = True,
    runtime: str | None = None,
) -> AsyncIterator[EvalContext]:
    """Run tasks by hand; each run's trace is stored when its block exits.

    ``source``: a task, or (as in HUD) a list of tasks or a taskset. With one task and
    ``group=1`` the block runs once, on that run's context. With several tasks or
    ``group=N``, the block's body runs once per task and group index, concurrently (at most
    ``max_concurrent`` at once), each on its own context, as ``hud.eval`` does; then the
    block gets a summary whose ``results`` are those contexts and whose ``reward`` is their
    mean (the body's first use of the summary ends the block).

    ``runtime``: ``isolated``, ``inprocess``, ``subprocess`` or ``docker`` (default: the
    environment's).
    """
    tasks = _tasks_of(source)
    if group < 1:
        raise WorkbenchError(f"group must be at least 1 (got {group})")
    if len(tasks) * group > 1:
        from workbench.parallel_eval import ParallelDone, run_body_in_parallel

        summary = await run_body_in_parallel(
            [(task, g) for g in range(group) for task in tasks],
            lambda task, g: eval(task, group_index=g, store=store, record=record, runtime=runtime),
            max_concurrent=max_concurrent,
        )
        try:
            yield summary
        except ParallelDone:
            pass  # the body ran once per run already; its use of the summary ends it
        return

    from workbench.store import get_store

    ctx = EvalContext(tasks[0], group_index=group_index, runtime=runtime)
    try:
        await ctx.start()
        yield ctx
        if not ctx.finished:
            done = ctx.graded or not ctx.task.scenario  # tools only: graded by hand, or not
            ctx.finish("done" if done else "error", None if done else _NoAnswer())
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


def _tasks_of(source: Any) -> list[Task]:
    if isinstance(source, Task):
        return [source]
    if isinstance(source, str):
        raise WorkbenchError(
            "workbench.eval() takes Task objects: load a taskset first "
            "(workbench.load_taskset(name)) and pass it or its tasks"
        )
    tasks = list(source or [])
    if not tasks or not all(isinstance(t, Task) for t in tasks):
        raise WorkbenchError("workbench.eval() needs a Task, a list of tasks or a Taskset")
    return tasks


class _NoAnswer(Exception):
    def __str__(self) -> str:
        return "the run ended before an answer was submitted"
