"""Chat messages between Workbench's OpenAI format and Inspect's ``ChatMessage`` models.

```python
to_openai([ChatMessageUser(content="Hi")])          # [{"role": "user", "content": "Hi"}]
from_openai([{"role": "user", "content": "Hi"}])    # [ChatMessageUser(content="Hi")]
```

Text only: images and other content parts of an Inspect message are reduced to its text,
which is all Workbench's models take.
"""

from __future__ import annotations

import json
from typing import Any

from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageTool,
    ChatMessageUser,
    ModelOutput,
    ModelUsage,
)
from inspect_ai.tool import ToolCall, ToolCallError, ToolInfo
from pydantic import TypeAdapter

_MESSAGES = TypeAdapter(list[ChatMessage])


def to_openai(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Inspect messages as OpenAI chat messages (what Workbench's models read)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if isinstance(m, ChatMessageAssistant):
            record: dict[str, Any] = {"role": "assistant", "content": m.text or None}
            if m.tool_calls:
                record["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": call.function,
                            "arguments": json.dumps(call.arguments),
                        },
                    }
                    for call in m.tool_calls
                ]
            elif record["content"] is None:
                record["content"] = ""
            out.append(record)
        elif isinstance(m, ChatMessageTool):
            text = m.text or (f"Error: {m.error.message}" if m.error else "")
            out.append({"role": "tool", "tool_call_id": m.tool_call_id or "", "content": text})
        else:
            out.append({"role": m.role, "content": m.text})
    return out


def from_openai(
    messages: list[dict[str, Any]], *, model: str | None = None, errors: set[str] = frozenset()
) -> list[ChatMessage]:
    """OpenAI chat messages as Inspect messages; ``errors``: ids of tool calls that failed."""
    names: dict[str, str] = {}  # tool call id -> function, for the tool messages that answer
    out: list[ChatMessage] = []
    for m in messages:
        role, content = m.get("role"), _text(m.get("content"))
        if role == "system":
            out.append(ChatMessageSystem(content=content))
        elif role == "user":
            out.append(ChatMessageUser(content=content))
        elif role == "assistant":
            calls = [tool_call(c) for c in m.get("tool_calls") or []]
            names.update({c.id: c.function for c in calls})
            out.append(
                ChatMessageAssistant(
                    content=content, tool_calls=calls or None, model=model, source="generate"
                )
            )
        elif role == "tool":
            call_id = m.get("tool_call_id") or ""
            error = ToolCallError("unknown", content) if call_id in errors else None
            out.append(
                ChatMessageTool(
                    content=content, tool_call_id=call_id, function=names.get(call_id), error=error
                )
            )
    return out


def tool_call(call: dict[str, Any]) -> ToolCall:
    """An OpenAI tool call as an Inspect ``ToolCall`` (arguments that are not JSON are kept
    as a parse error, as Inspect keeps them)."""
    function = call.get("function") or {}
    raw = function.get("arguments")
    arguments, error = raw if isinstance(raw, dict) else {}, None
    if isinstance(raw, str) and raw.strip():
        try:
            arguments = json.loads(raw)
        except json.JSONDecodeError as e:
            error = f"arguments are not valid JSON: {e}"
    if not isinstance(arguments, dict):
        arguments, error = {}, "arguments are not a JSON object"
    return ToolCall(
        id=call.get("id") or "", function=function.get("name") or "", arguments=arguments,
        parse_error=error,
    )  # fmt: skip


def tool_schema(info: ToolInfo) -> dict[str, Any]:
    """An Inspect ``ToolInfo`` as an OpenAI function tool."""
    return {
        "type": "function",
        "function": {
            "name": info.name,
            "description": info.description,
            "parameters": info.parameters.model_dump(exclude_none=True),
        },
    }


def message_records(messages: str | list[ChatMessage]) -> str | list[dict[str, Any]]:
    """A sample's input as plain JSON: a string, or messages without their random ids (so
    the same sample always makes the same task)."""
    if isinstance(messages, str):
        return messages
    return [
        m.model_dump(mode="json", exclude_none=True, exclude={"id", "source"}) for m in messages
    ]


def messages_from_records(records: str | list[dict[str, Any]]) -> list[ChatMessage]:
    if isinstance(records, str):
        return [ChatMessageUser(content=records)]
    return _MESSAGES.validate_python(records)


# OpenAI's finish reasons (what Workbench's models report) as Inspect's stop reasons.
STOP_REASONS = {
    "stop": "stop",
    "tool_calls": "tool_calls",
    "length": "max_tokens",
    "content_filter": "content_filter",
}


def stop_reason(finish_reason: str | None, assistant: ChatMessageAssistant) -> str:
    """Inspect's stop reason for a turn: a turn cut off by max_tokens says so (a solver or
    scorer that checks ``output.stop_reason == "max_tokens"`` sees it)."""
    if finish_reason in STOP_REASONS:
        return STOP_REASONS[finish_reason]
    return "tool_calls" if assistant.tool_calls else "stop"


def model_output(
    message: dict[str, Any], model: str, usage: dict[str, int], finish_reason: str | None = None
) -> ModelOutput:
    """A Workbench completion (an OpenAI assistant message and its usage) as a ModelOutput."""
    [assistant] = from_openai([message], model=model)
    return ModelOutput(
        model=model,
        choices=[
            ChatCompletionChoice(
                message=assistant, stop_reason=stop_reason(finish_reason, assistant)
            )
        ],
        usage=model_usage(usage),
    )


def model_usage(usage: dict[str, int]) -> ModelUsage | None:
    """Workbench's usage counts (OpenAI's names) as Inspect's ``ModelUsage``."""
    if not usage:
        return None
    input_tokens = usage.get("prompt_tokens", 0)
    output_tokens = usage.get("completion_tokens", 0)
    return ModelUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=usage.get("total_tokens", input_tokens + output_tokens),
    )


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)
