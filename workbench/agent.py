"""The tool-calling loop: ask the model, run the tools it calls, stop on a plain answer."""

from __future__ import annotations

import asyncio
import re
import warnings
from typing import Any

from workbench.models import ChatModel, Sampling, get_model
from workbench.runs import EvalContext
from workbench.traces import Trace

DEFAULT_MAX_STEPS = 10


class Agent:
    """A model in a loop. ``await agent.run(ctx)`` plays one run and returns its trace.

    A step is one model call. The loop ends when the model answers without tool calls
    (``done``), after ``max_steps`` (``max_steps``; the scenario still grades the state) or
    after ``timeout`` seconds (``timeout``). Any exception from the model or the scenario ends
    the run as ``error``, recorded in the trace; it is not raised, so one bad run never takes
    others down. The task's ``agent_config`` applies to each run (see :meth:`for_task`).
    """

    def __init__(
        self,
        model: str | ChatModel,
        *,
        max_steps: int = DEFAULT_MAX_STEPS,
        sampling: Sampling | None = None,
        system_prompt: str | None = None,
        timeout: float | None = None,
    ):
        self.model = get_model(hud_model_id(model)) if isinstance(model, str) else model
        self.max_steps = max_steps
        self.sampling = sampling or Sampling()
        self.system_prompt = system_prompt
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Agent({self.model.model_id!r}, max_steps={self.max_steps})"

    def _with(self, **changes: Any) -> Agent:
        settings = {
            "max_steps": self.max_steps,
            "sampling": self.sampling,
            "system_prompt": self.system_prompt,
            "timeout": self.timeout,
        }
        return Agent(self.model, **{**settings, **changes})

    def for_task(self, task) -> Agent:
        """This agent with a task's ``agent_config`` applied (``max_steps``, ``system_prompt``,
        ``timeout_seconds``), as HUD applies per-task agent overrides; itself when the task
        sets none. (``allowed_tools`` / ``disallowed_tools`` filter the run's tools:
        :meth:`workbench.tasks.Task.offers_tool`.)"""
        config = {k: v for k, v in (task.agent_config or {}).items() if v is not None}
        changes: dict[str, Any] = {}
        if "max_steps" in config:
            changes["max_steps"] = int(config["max_steps"])
        if "system_prompt" in config:
            changes["system_prompt"] = config["system_prompt"]
        if "timeout_seconds" in config:
            changes["timeout"] = float(config["timeout_seconds"])
        return self._with(**changes) if changes else self

    async def run(self, ctx: EvalContext, *, max_steps: int | None = None) -> Trace:
        """Play the run of ``ctx`` (HUD: ``await agent.run(ctx, max_steps=10)``): the task's
        ``agent_config`` applies, and ``max_steps`` given here wins over it."""
        agent = self.for_task(ctx.task)
        if max_steps is not None:
            agent = agent._with(max_steps=max_steps)
        if agent.timeout is None:
            return await agent._play(ctx)
        try:
            async with asyncio.timeout(agent.timeout):
                return await agent._play(ctx)
        except TimeoutError:
            error = TimeoutError(f"run exceeded the task's timeout_seconds ({agent.timeout:g} s)")
            return ctx.finish("timeout", error, force=True)

    async def _play(self, ctx: EvalContext) -> Trace:
        ctx.trace.model = self.model.model_id
        try:
            await ctx.start()
            if self.system_prompt and (not ctx.messages or ctx.messages[0].get("role") != "system"):
                ctx.messages.insert(0, {"role": "system", "content": self.system_prompt})
            for _ in range(self.max_steps):
                completion = await self.model.complete(
                    ctx.messages, ctx.tools, self.sampling, ctx.run_info
                )
                message = ctx.add_assistant(completion)
                tool_calls = message.get("tool_calls")
                if not tool_calls:
                    await ctx.submit(message.get("content") or "")
                    return ctx.finish("done")
                for tool_call in tool_calls:
                    await ctx.call_tool(tool_call)
            await ctx.submit(_last_text(ctx))
            return ctx.finish("max_steps")
        except asyncio.CancelledError:
            ctx.finish("cancelled")
            raise
        except Exception as e:
            return ctx.finish("error", e)


def _last_text(ctx: EvalContext) -> str:
    for message in reversed(ctx.messages):
        if message.get("role") == "assistant" and message.get("content"):
            return message["content"]
    return ""


# Model names as HUD's docs write them (`create_agent("claude-sonnet-4-5")`,
# `task.run("gpt-4o")`): a bare provider model name, which Workbench spells with its provider.
_PROVIDER_OF = (
    (re.compile(r"claude-"), "anthropic"),
    (re.compile(r"(gpt-|chatgpt-|o\d(-|$)|text-davinci)"), "openai"),
)


def hud_model_id(model: str) -> str:
    """``claude-sonnet-4-5`` -> ``anthropic:claude-sonnet-4-5``, ``gpt-4o`` / ``o3`` ->
    ``openai:...``; any other id (``scripted:expert``, an alias, a fork) as it is."""
    if ":" in model:
        return model
    for pattern, provider in _PROVIDER_OF:
        if pattern.match(model):
            return f"{provider}:{model}"
    return model


# create_agent options of HUD's agents that have no meaning here (display, telemetry).
_IGNORED_AGENT_OPTIONS = ("verbose", "auto_trace", "auto_respond", "trace")


def create_agent(model_id: str, **options: Any) -> Agent:
    """An agent for a model id (``scripted:expert``, ``openai:gpt-4o-mini``, or a model name
    as HUD writes it: ``claude-sonnet-4-5``, ``gpt-4o``).

    Options: ``max_steps``, ``system_prompt``, ``sampling``, ``timeout``. HUD's
    ``verbose``/``auto_trace``/``auto_respond`` are ignored with a warning; an unknown option
    is an error.
    """
    ignored = [k for k in options if k in _IGNORED_AGENT_OPTIONS]
    if ignored:
        warnings.warn(
            f"create_agent(): {', '.join(ignored)} not supported by Workbench and ignored",
            stacklevel=2,
        )
    options = {k: v for k, v in options.items() if k not in _IGNORED_AGENT_OPTIONS}
    return Agent(model_id, **options)
