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
    ToolOutcome,
    claude_tools,
    parse_reward,
    tool_call_parts,
    tool_reply,
    warn_about_reward,
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
        name: str | None = None,
        group_id: str | None = None,
    ):
        self.task = task
        self.runtime = runtime
        self.group_index = group_index
        self.on_step = on_step
        self.episode: Episode | None = None
        self.finished = False
        self.graded = False
        self.error: BaseException | None = None  # HUD: ``ctx.error``, what ended the run
        self.eval_name = name or task.slug  # HUD: ``ctx.eval_name``
        self.group_id = group_id  # HUD: shared by the runs of one ``eval(..., group=N)``
        self.variants: dict[str, Any] = {}  # HUD: ``ctx.variants``; none here (see eval())
        self._answer: str | None = None
        self._by_hand = False  # tool calls came from a loop the user drives (see call_tool)
        self._hand_turn: dict[str, Any] | None = None
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
    def reward(self) -> float | None:
        """The run's reward; None until it is graded or ended (as HUD's ``ctx.reward``)."""
        if not (self.graded or self.finished):
            return None
        return self.trace.reward

    @property
    def trace_id(self) -> str:
        """The trace's id (HUD: ``ctx.trace_id``): ``workbench trace ID`` shows it."""
        return self.trace.id

    @property
    def index(self) -> int:
        """The run's index in its group (HUD: ``ctx.index``)."""
        return self.group_index

    @property
    def job_id(self) -> str | None:
        return self.trace.job_id

    @property
    def headers(self) -> dict[str, str]:
        """HUD's trace headers for an inference gateway; the trace id here."""
        return {"Trace-Id": self.trace.id}

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
            self.episode = _Blank() if not self.task.env else open_episode(self.task, self.runtime)
            self.trace.messages = await self.episode.start()
            self.trace.tools = [
                t for t in self.episode.tool_schemas if self.task.offers_tool(t["function"]["name"])
            ]
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
        if self.task.offers_tool(name):
            outcome = await self.episode.call_tool(name, args)
        else:  # hidden by the task's tool filters: as if it did not exist
            known = ", ".join(t["function"]["name"] for t in self.tools) or "none"
            outcome = ToolOutcome(f"Error: unknown tool '{name}'. Available tools: {known}.", True)
        call_id = call_id or f"call_{len(self.trace.tool_calls)}"
        if fmt == "openai":
            self._record_call_made_by_hand(name, args, call_id)
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

    def _record_call_made_by_hand(self, name: str, args: Any, call_id: str) -> None:
        """A loop the user drives (HUD's integrations guide: the user keeps the messages and
        calls the model) passes the model's tool calls here, but never the assistant message
        that made them. Without it the trace would be ``[user, tool, ...]``: unreadable, and
        no training example. So record the assistant turn the call came from. Calls of one
        turn join one assistant message; calls of consecutive turns that said nothing else
        are merged into it too (the model's text between them never reaches us)."""
        for message in self.trace.messages:
            for made in message.get("tool_calls") or ():
                if made.get("id") == call_id:
                    return  # the agent loop (or the user) recorded its assistant turn
        self._by_hand = True
        made = {
            "id": call_id,
            "type": "function",
            "function": {
                "name": name,
                "arguments": args if isinstance(args, str) else json.dumps(args or {}),
            },
        }
        turn = self._open_by_hand_turn()
        if turn is not None:
            turn["tool_calls"].append(made)
            return
        self._hand_turn = {"role": "assistant", "content": None, "tool_calls": [made]}
        self.trace.messages.append(self._hand_turn)
        self.trace.steps += 1
        self.trace.finish_reasons.append("tool_calls")

    def _open_by_hand_turn(self) -> dict[str, Any] | None:
        """The assistant turn recorded by hand that only tool results follow, if any."""
        for message in reversed(self.trace.messages):
            if message.get("role") != "tool":
                return message if message is self._hand_turn else None
        return None

    async def submit(self, answer: str | None) -> float:
        """Send the final answer to the scenario and record the reward.

        A task with no scenario (``env()``) has nothing to grade: the answer is kept and the
        reward is what was set by hand (``ctx.reward = ...``).
        """
        self._answer = answer
        if self._by_hand and answer and self.trace.messages[-1].get("role") != "assistant":
            # the final answer of a loop the user drives: the assistant turn that ends it
            self.trace.messages.append({"role": "assistant", "content": answer})
            self.trace.steps += 1
            self.trace.finish_reasons.append("stop")
        if not self.task.scenario:
            return self.trace.reward
        reward, info = await self.episode.grade(answer)
        self.trace.reward, self.graded = reward, True
        self.trace.info = {**self.trace.info, **info}
        warn_about_reward(info, self.task.scenario)
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
            self.error = error
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
    source: Task | list[Task] | Any = None,
    *,
    group: int = 1,
    group_index: int = 0,
    max_concurrent: int = 16,
    store=None,
    record: bool = True,
    runtime: str | None = None,
    name: str | None = None,
    variants: dict[str, Any] | None = None,
    job_id: str | None = None,
    group_id: str | None = None,
    **hud_options: Any,
) -> AsyncIterator[EvalContext]:
    """Run tasks by hand; each run's trace is stored when its block exits.

    ``source``: a task, or (as in HUD) a list of tasks or a taskset; none (``eval()``, HUD's
    blank eval) is a run with no environment, graded by hand (``ctx.reward = ...``). With one
    task and ``group=1`` the block runs once, on that run's context. With several tasks or
    ``group=N``, the block's body runs once per task and group index, concurrently (at most
    ``max_concurrent`` at once), each on its own context, as ``hud.eval`` does; then the
    block gets a summary whose ``results`` are those contexts and whose ``reward`` is their
    mean (the body's first use of the summary ends the block).

    ``runtime``: ``isolated``, ``inprocess``, ``subprocess`` or ``docker`` (default: the
    environment's). ``name`` is the run's ``ctx.eval_name``; ``job_id`` (a HUD platform job)
    is kept in the trace's info. HUD's ``trace``, ``quiet`` and ``api_key`` concern its hosted
    platform: accepted and ignored (everything here is recorded locally). ``variants`` (A/B
    runs over settings) are not supported: refused, never silently dropped.
    """
    if variants:
        raise WorkbenchError(
            "workbench.eval() does not run variants: run each setting in its own "
            "`async with workbench.eval(...)` block, or compare models with workbench.evaluate"
        )
    _note_platform_options(hud_options)
    tasks = _tasks_of(source)
    if group < 1:
        raise WorkbenchError(f"group must be at least 1 (got {group})")
    if len(tasks) * group > 1:
        import uuid

        from workbench.parallel_eval import ParallelDone, run_body_in_parallel

        group_ids = {task.id: group_id or uuid.uuid4().hex for task in tasks}
        summary = await run_body_in_parallel(
            [(task, g) for g in range(group) for task in tasks],
            lambda task, g: eval(
                task,
                group_index=g,
                store=store,
                record=record,
                runtime=runtime,
                name=name,
                job_id=job_id,
                group_id=group_ids[task.id] if group > 1 else group_id,
            ),
            max_concurrent=max_concurrent,
        )
        try:
            yield summary
        except ParallelDone:
            pass  # the body ran once per run already; its use of the summary ends it
        return

    from workbench.store import get_store

    ctx = EvalContext(
        tasks[0], group_index=group_index, runtime=runtime, name=name, group_id=group_id
    )
    if job_id:  # a HUD platform job's id; Workbench's jobs are made by workbench.evaluate
        ctx.trace.info["hud_job_id"] = job_id
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


# HUD's eval() options for its hosted platform: nothing to do here, where every run is
# recorded in the local store. `trace` and `quiet` (telemetry and its console output) go
# without a word; an API key or URL given is noted once, so no one thinks it was used.
_PLATFORM_OPTIONS = ("trace", "quiet", "api_key", "api_url")
_NOTED: set[str] = {"trace", "quiet"}


def _note_platform_options(options: dict[str, Any]) -> None:
    unknown = [k for k in options if k not in _PLATFORM_OPTIONS]
    if unknown:
        raise TypeError(f"workbench.eval() got unexpected keyword arguments {unknown}")
    new = [k for k in options if k not in _NOTED]
    if new:
        import warnings

        _NOTED.update(new)
        warnings.warn(
            f"workbench.eval(): {', '.join(new)} (HUD's hosted platform) not used: "
            "Workbench runs and records everything locally",
            stacklevel=4,
        )


def _tasks_of(source: Any) -> list[Task]:
    if source is None:  # HUD's blank eval: no environment, a reward set by hand
        return [Task(env="", scenario="", slug="blank")]
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


class _Blank:
    """The episode of HUD's blank eval (``eval()``): no environment, no tools, no prompt."""

    tool_schemas: list[dict[str, Any]] = []

    async def start(self) -> list[dict[str, Any]]:
        return []

    async def call_tool(self, name: str, arguments: Any) -> ToolOutcome:
        return ToolOutcome(f"Error: unknown tool '{name}'. Available tools: none.", True)

    async def close(self) -> None:
        pass


class _NoAnswer(Exception):
    def __str__(self) -> str:
        return "the run ended before an answer was submitted"
