"""Scripted models: deterministic policies that environments ship for tests and demos.

``scripted:expert`` and ``scripted:weak`` look up the policy of that name in the environment
of the task being run. A policy is a plain function of a :class:`PolicyContext` that returns
the next assistant message, built with :func:`call` or :func:`answer`:

```python
@env.policy("expert")
def expert(ctx: PolicyContext) -> dict:
    if ctx.step == 0:
        return call("search", query=ctx.task.args["product_name"])
    return answer("done")
```

Policies are deterministic: ``ctx.rng`` is seeded from the task, the group index and the
step, so a weak policy can fail on some runs of a group and not others, the same way every
time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import UnknownModelError, WorkbenchError
from workbench.models.base import Completion, RunInfo, Sampling
from workbench.tasks import Task


@dataclass
class PolicyContext:
    """What a scripted policy sees: the task, the conversation so far, a seeded RNG."""

    task: Task
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    group_index: int = 0
    rng: random.Random = field(default_factory=random.Random)

    @property
    def args(self) -> dict[str, Any]:
        return self.task.args

    @property
    def step(self) -> int:
        """How many assistant turns came before this one."""
        return sum(1 for m in self.messages if m.get("role") == "assistant")

    @property
    def prompt(self) -> str:
        """The text of the first user message."""
        for m in self.messages:
            if m.get("role") == "user":
                return m.get("content") or ""
        return ""

    def tool_results(self) -> list[str]:
        return [m.get("content") or "" for m in self.messages if m.get("role") == "tool"]

    @property
    def last_result(self) -> Any:
        """The last tool result, parsed from JSON when it is JSON."""
        results = self.tool_results()
        if not results:
            return None
        try:
            return json.loads(results[-1])
        except (json.JSONDecodeError, TypeError):
            return results[-1]


def call(name: str, **arguments: Any) -> dict[str, Any]:
    """An assistant message that calls one tool."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"call_{name}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
        ],
    }


def answer(text: Any) -> dict[str, Any]:
    """An assistant message with a final answer (no tool calls)."""
    return {"role": "assistant", "content": str(text)}


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big")


class ScriptedModel:
    """``scripted:NAME``: runs the environment's policy called NAME.

    ``scripted:NAME?latency=SECONDS`` waits that long before every answer, like a remote
    model's round trip: for load tests and benchmarks of concurrency.
    """

    def __init__(self, name: str):
        self.model_id = f"scripted:{name}"
        self.name, _, options = name.partition("?")
        self.latency = 0.0
        for option in filter(None, options.split("&")):
            key, _, value = option.partition("=")
            try:
                latency = float(value)
            except ValueError:
                latency = -1.0
            if key != "latency" or not 0 <= latency <= 3600:  # also refuses nan and inf
                raise UnknownModelError(
                    f"bad option '{option}' in {self.model_id}: the one option is latency=SECONDS, 0 to 3600"
                )
            self.latency = latency

    def policy_for(self, task: Task) -> Callable[[PolicyContext], dict[str, Any]]:
        env = task.environment()
        policy = env.policies.get(self.name)
        if policy is None:
            known = ", ".join(f"scripted:{p}" for p in env.policies) or "none"
            raise UnknownModelError(
                f"environment '{env.name}' has no scripted policy '{self.name}' (it has: {known})"
            )
        return policy

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        sampling: Sampling,
        run: RunInfo,
    ) -> Completion:
        if run.task is None:
            raise WorkbenchError(
                f"{self.model_id} plays a task's scripted policy: send the task with the request "
                "(through the gateway: extra_body={'task': {'env': ..., 'scenario': ..., "
                "'args': {...}}})"
            )
        policy = self.policy_for(run.task)
        if self.latency:
            await asyncio.sleep(self.latency)
        step = sum(1 for m in messages if m.get("role") == "assistant")
        ctx = PolicyContext(
            task=run.task,
            messages=messages,
            tools=tools,
            group_index=run.group_index,
            rng=random.Random(_seed(run.task.id, run.group_index, step, sampling.seed)),
        )
        message = policy(ctx)
        for i, tool_call in enumerate(message.get("tool_calls") or []):
            tool_call["id"] = f"call_{step}_{i}"  # unique within the conversation
        finish = "tool_calls" if message.get("tool_calls") else "stop"  # a policy never runs out
        return Completion(message=message, usage={}, finish_reason=finish)
