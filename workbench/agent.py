"""The tool-calling loop: ask the model, run the tools it calls, stop on a plain answer."""

from __future__ import annotations

import asyncio

from workbench.models import ChatModel, Sampling, get_model
from workbench.runs import EvalContext
from workbench.traces import Trace

DEFAULT_MAX_STEPS = 10


class Agent:
    """A model in a loop. ``await agent.run(ctx)`` plays one run and returns its trace.

    A step is one model call. The loop ends when the model answers without tool calls
    (``done``) or after ``max_steps`` (``max_steps``; the scenario still grades the state).
    Any exception from the model or the scenario ends the run as ``error``, recorded in the
    trace; it is not raised, so one bad run never takes others down.
    """

    def __init__(
        self,
        model: str | ChatModel,
        *,
        max_steps: int = DEFAULT_MAX_STEPS,
        sampling: Sampling | None = None,
        system_prompt: str | None = None,
    ):
        self.model = get_model(model) if isinstance(model, str) else model
        self.max_steps = max_steps
        self.sampling = sampling or Sampling()
        self.system_prompt = system_prompt

    def __repr__(self) -> str:
        return f"Agent({self.model.model_id!r}, max_steps={self.max_steps})"

    def for_task(self, task) -> Agent:
        """This agent with a task's ``agent_config`` applied (``max_steps``, ``system_prompt``),
        as HUD applies per-task agent overrides; itself when the task sets none."""
        config = {k: v for k, v in (task.agent_config or {}).items() if v is not None}
        if not config:
            return self
        return Agent(
            self.model,
            max_steps=int(config.get("max_steps", self.max_steps)),
            sampling=self.sampling,
            system_prompt=config.get("system_prompt", self.system_prompt),
        )

    async def run(self, ctx: EvalContext) -> Trace:
        ctx.trace.model = self.model.model_id
        try:
            await ctx.start()
            if self.system_prompt and ctx.messages[0].get("role") != "system":
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


def create_agent(model_id: str, **options) -> Agent:
    """An agent for a model id (``scripted:expert``, ``openai:gpt-4o-mini``, ...)."""
    return Agent(model_id, **options)
