"""Running an environment: one episode of a scenario, its tool calls and its grade.

```python
episode = env.episode(task)          # a fresh state; the scenario ready to start
messages = await episode.start()     # the prompt, as chat messages
outcome = await episode.call_tool("search", {"query": "mouse"})   # ToolOutcome(content, error)
reward, info = await episode.grade("I bought it")
await episode.close()
```

What an environment *is* (tools, scenarios, their schemas) is declared in
:mod:`workbench.environment`; how a reference such as ``shop`` or ``pkg.mod:env`` finds one
is :mod:`workbench.references`; where an episode runs (this process, a fork, a container) is
:mod:`workbench.runtimes`. This module is what every runtime executes.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import ToolArgumentError

if TYPE_CHECKING:
    from workbench.environment import Environment, Scenario


def _tool_output(result: Any) -> str:
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(result)


@dataclass
class ToolOutcome:
    """What a tool call returned to the model: text, and whether it was an error."""

    content: str
    error: bool = False


def parse_arguments(name: str, arguments: str | dict[str, Any] | None) -> dict | ToolOutcome:
    """A tool call's arguments as a dict, or the error outcome the model should see."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as e:
            return ToolOutcome(f"Error: arguments for '{name}' are not valid JSON ({e}).", True)
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        return ToolOutcome(f"Error: arguments for '{name}' must be a JSON object.", True)
    return arguments


class ScenarioError(RuntimeError):
    """The scenario itself misbehaved (bad prompt, bad reward, wrong number of yields)."""


class Episode:
    """One run of a scenario in this process: its state, prompt, tool calls and grade.

    ``scenario`` None: tools only (a task made with ``env()``), no prompt and no grade.
    """

    def __init__(self, env: Environment, scenario: Scenario | None, args: dict[str, Any]):
        self.env = env
        self.scenario = scenario
        self.args = args
        self.state: Any = None
        self._gen = None

    @property
    def tool_schemas(self) -> list[dict[str, Any]]:
        if self.scenario is None or not (
            self.scenario.exclude_tools or self.scenario.allowed_tools
        ):
            return self.env.tool_schemas
        return [t.schema for t in self.env.tools.values() if self.scenario.offers(t.name)]

    async def start(self) -> list[dict[str, Any]]:
        """Create the state, run the scenario to its first yield; returns the prompt messages."""
        await self.env.run_initialize()
        self.state = self.env.new_state()
        if self.scenario is None:
            return []
        kwargs = dict(self.scenario.arguments.model_validate(self.args))
        if self.scenario.state_param:
            kwargs[self.scenario.state_param] = self.state
        self._gen = self.scenario.fn(**kwargs)
        try:
            prompt = await self._gen.__anext__()
        except StopAsyncIteration:
            raise ScenarioError(f"scenario '{self.scenario.name}' ended without a prompt") from None
        return prompt_messages(prompt, self.scenario.name)

    async def call_tool(self, name: str, arguments: str | dict[str, Any] | None) -> ToolOutcome:
        """Call a tool by name. Bad names, bad JSON and exceptions become error outcomes."""
        tool = self.env.tools.get(name)
        if tool is None or (self.scenario is not None and not self.scenario.offers(name)):
            known = ", ".join(t["function"]["name"] for t in self.tool_schemas) or "none"
            return ToolOutcome(f"Error: unknown tool '{name}'. Available tools: {known}.", True)
        arguments = parse_arguments(name, arguments)
        if isinstance(arguments, ToolOutcome):
            return arguments
        try:
            result = await tool.call(self.state, arguments)
        except ToolArgumentError as e:
            return ToolOutcome(f"Error: {e}", True)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the model sees the failure and may recover
            return ToolOutcome(f"Error: {type(e).__name__}: {e}", True)
        return ToolOutcome(_tool_output(result))

    async def grade(self, answer: str | None) -> tuple[float, dict[str, Any]]:
        """Send the final answer into the scenario; returns (reward, info)."""
        if self.scenario is None:
            raise ScenarioError(
                "this task has no scenario to grade it: set ctx.reward yourself "
                "(a task made with env() drives the tools by hand)"
            )
        if self._gen is None:
            raise ScenarioError("grade() called before start()")
        try:
            value = await self._gen.asend(answer)
        except StopAsyncIteration:
            # HUD grades a scenario that stops after its prompt 0.0; say so in the trace
            return 0.0, {"no_reward": "the scenario ended without yielding a reward"}
        return parse_reward(value, self.scenario.name)

    async def close(self) -> None:
        if self._gen is not None:
            await self._gen.aclose()


def _block_text(block: Any) -> str | None:
    """The text of an MCP content block (object or dict), or None if it is not text."""
    kind = block.get("type") if isinstance(block, dict) else getattr(block, "type", None)
    text = block.get("text") if isinstance(block, dict) else getattr(block, "text", None)
    return text if kind == "text" and isinstance(text, str) else None


def prompt_messages(prompt: Any, scenario: str) -> list[dict[str, Any]]:
    """A scenario's first yield as chat messages.

    A string becomes one user message; chat messages are kept; MCP content blocks (text
    blocks, as objects or dicts, alone or in a list) become one user message of their text.
    As in HUD: a list of strings is one user message each, an MCP ``PromptMessage`` (role
    and a text block) a message of that role, and HUD v6's frame ``{"prompt": ...}`` is its
    prompt.
    """
    if isinstance(prompt, dict) and "prompt" in prompt and "role" not in prompt:
        prompt = prompt["prompt"]  # HUD v6 templates: `yield {"prompt": ...}`
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if _is_prompt_message(prompt):
        return [_prompt_message(prompt, scenario)]
    if isinstance(prompt, list) and prompt and all(isinstance(m, str) for m in prompt):
        return [{"role": "user", "content": m} for m in prompt]
    if isinstance(prompt, list) and prompt and all(_is_prompt_message(m) for m in prompt):
        return [_prompt_message(m, scenario) for m in prompt]
    if isinstance(prompt, list) and all(isinstance(m, dict) and "role" in m for m in prompt):
        return [dict(m) for m in prompt]
    blocks = prompt if isinstance(prompt, list | tuple) else [prompt]
    texts = [_block_text(b) for b in blocks]
    if blocks and all(t is not None for t in texts):
        return [{"role": "user", "content": "\n\n".join(texts)}]
    raise ScenarioError(
        f"scenario '{scenario}' yielded a prompt of type {type(prompt).__name__}: "
        "yield a string, a list of chat messages or MCP text content blocks"
    )


def _is_prompt_message(value: Any) -> bool:
    """An MCP ``PromptMessage`` (an object with a role and one content block)."""
    return not isinstance(value, dict) and hasattr(value, "role") and hasattr(value, "content")


def _prompt_message(message: Any, scenario: str) -> dict[str, Any]:
    text = message.content if isinstance(message.content, str) else _block_text(message.content)
    if text is None:
        raise ScenarioError(
            f"scenario '{scenario}' yielded a {type(message).__name__} without text: "
            "only text prompts are supported"
        )
    return {"role": str(message.role), "content": text}


# What HUD's EvaluationResult carries beside the reward; kept in the trace's info.
_RESULT_FIELDS = ("done", "content", "subscores", "isError")


def _plain(value: Any) -> Any:
    """A JSON-able copy of a subscore list or similar (pydantic models and dataclasses)."""
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    return value


def parse_reward(value: Any, scenario: str) -> tuple[float, dict[str, Any]]:
    """A scenario's second yield: the reward and the info kept with it.

    A number in [0, 1] (a bool counts: True is 1.0); a dict with ``reward`` (or HUD v6's
    ``score``) and optional ``info``; or an object with a ``.reward`` (HUD's
    ``EvaluationResult``). ``done``, ``content``, ``subscores`` and ``isError`` of a dict or
    object are kept in the info, never dropped.

    HUD v6 takes any number. Here a reward is in [0, 1], because success rates, intervals and
    pass@k are computed on that scale, and a number outside it is the run's error (clipped,
    a reward of 7 on a 0-10 scale would count as a full success and every mean would be
    wrong): the message says how to scale it. A number that is not finite is an error too.
    """
    info: dict[str, Any] = {}
    if not isinstance(value, int | float | dict) and hasattr(value, "reward"):
        fields = {k: getattr(value, k) for k in ("info", *_RESULT_FIELDS) if hasattr(value, k)}
        value = {"reward": value.reward, **fields}
    if isinstance(value, dict):
        info = dict(value.get("info") or {})
        for key in _RESULT_FIELDS:
            if value.get(key) is not None:
                info[key] = _plain(value[key])
        value = value.get("reward", value.get("score"))
    if not isinstance(value, int | float):  # bool is an int: True -> 1.0
        raise ScenarioError(
            f"scenario '{scenario}' yielded reward {value!r}: yield a number in [0, 1]"
        )
    reward = float(value)
    if not math.isfinite(reward):
        raise ScenarioError(f"scenario '{scenario}' yielded reward {reward}: not a number")
    if not 0.0 <= reward <= 1.0:
        raise ScenarioError(
            f"scenario '{scenario}' yielded reward {reward}, outside [0, 1]: success rates and "
            "intervals need rewards in [0, 1] (HUD v6 takes any number); scale it, e.g. "
            "yield score / MAX_SCORE"
        )
    return reward, info


def warn_about_reward(info: dict[str, Any], scenario: str) -> None:
    """Warn, in the user's process, about a reward :func:`parse_reward` had to change."""
    import warnings

    if "no_reward" in info:
        warnings.warn(
            f"scenario '{scenario}' ended without yielding a reward: graded 0.0, as HUD does",
            stacklevel=3,
        )


# -- tool calls as HUD users make them ----------------------------------------------------------


@dataclass
class ToolResult:
    """What ``call_tool("name", ...)`` returns: MCP-like ``content`` blocks and ``isError``."""

    text: str
    isError: bool = False  # noqa: N815 - the MCP field name HUD users read

    @property
    def content(self) -> list[Any]:
        from types import SimpleNamespace

        return [SimpleNamespace(type="text", text=self.text)]

    @property
    def is_error(self) -> bool:
        return self.isError

    def __str__(self) -> str:
        return self.text


def tool_call_parts(call: Any, arguments: dict[str, Any]) -> tuple[str, Any, str | None, str]:
    """(name, arguments, call id, format) of a tool call given the ways HUD users give one:
    a name and keyword arguments, an OpenAI tool call (SDK object or dict), or an Anthropic
    ``tool_use`` block (object or dict). Format: ``name``, ``openai`` or ``claude``."""
    if isinstance(call, str):
        return call, arguments, None, "name"
    if not isinstance(call, dict):
        if hasattr(call, "model_dump"):
            call = call.model_dump()
        else:
            call = {
                k: getattr(call, k)
                for k in ("id", "type", "function", "name", "input")
                if hasattr(call, k)
            }
            if call.get("function") is not None and not isinstance(call["function"], dict):
                fn = call["function"]
                call["function"] = {"name": fn.name, "arguments": fn.arguments}
    if call.get("type") == "tool_use":
        return call["name"], call.get("input") or {}, call.get("id"), "claude"
    function = call.get("function") or call
    return function.get("name") or "", function.get("arguments"), call.get("id"), "openai"


def tool_reply(outcome: ToolOutcome, call_id: str | None, fmt: str) -> Any:
    """The reply to a tool call, in the format it came in."""
    if fmt == "openai":
        return {"role": "tool", "tool_call_id": call_id or "", "content": outcome.content}
    if fmt == "claude":
        return {
            "type": "tool_result",
            "tool_use_id": call_id or "",
            "content": outcome.content,
            "is_error": outcome.error,
        }
    return ToolResult(outcome.content, outcome.error)


async def call_tool_in(episode: Any, call: Any, arguments: dict[str, Any]) -> Any:
    name, args, call_id, fmt = tool_call_parts(call, arguments)
    return tool_reply(await episode.call_tool(name, args), call_id, fmt)


def claude_tools(schemas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI function tools in the Anthropic Messages format."""
    return [
        {
            "name": t["function"]["name"],
            "description": t["function"].get("description", ""),
            "input_schema": t["function"].get("parameters") or {"type": "object"},
        }
        for t in schemas
    ]
