"""How a local model sees tools and calls them: one text format, for inference and training.

Tools are offered in the system prompt, one JSON function schema per line inside
``<tools>…</tools>``; the model calls a tool by writing::

    <tool_call>
    {"name": "search_products", "arguments": {"query": "laptop"}}
    </tool_call>

Tool results come back in a user turn as ``<tool_response>…</tool_response>``. This is the
Hermes/Qwen convention, so models trained on it elsewhere recognise it. :func:`render`
turns OpenAI-format messages into plain chat messages in this format, and
:func:`parse` reads a completion back into OpenAI ``tool_calls``; training data is rendered
with the same :func:`render`, so a trained model learns exactly what the parser reads.
Text that does not parse as a tool call is a plain answer, never an error, and stays in the
message's content beside any call that did parse: what the model wrote is never lost.
"""

from __future__ import annotations

import json
import re
from typing import Any

TOOLS_HEADER = (
    "You can call functions to help with the user's request. The functions are:\n<tools>\n"
)
TOOLS_FOOTER = (
    "\n</tools>\nTo call a function, reply with only:\n<tool_call>\n"
    '{"name": "<function name>", "arguments": {<arguments as JSON>}}\n</tool_call>\n'
    "When you have the final answer, reply with the answer alone."
)

_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def tools_prompt(tools: list[dict[str, Any]]) -> str:
    lines = [json.dumps(t.get("function", t), separators=(", ", ": ")) for t in tools]
    return TOOLS_HEADER + "\n".join(lines) + TOOLS_FOOTER


def format_call(name: str, arguments: Any) -> str:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            pass  # keep what the model wrote: training shows it verbatim
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


def render(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> list[dict[str, str]]:
    """OpenAI-format messages (tool calls, tool results) -> plain ``{role, content}`` turns."""
    out: list[dict[str, str]] = []
    system = tools_prompt(tools) if tools else None
    for message in messages:
        role = message.get("role")
        content = _text(message.get("content"))
        if role == "system":
            system = content + ("\n\n" + system if system else "")
            continue
        if role == "assistant":
            calls = [
                format_call(c["function"]["name"], c["function"].get("arguments", "{}"))
                for c in message.get("tool_calls") or []
            ]
            out.append(
                {"role": "assistant", "content": "\n".join([content] * bool(content) + calls)}
            )
        elif role == "tool":
            block = f"<tool_response>\n{content}\n</tool_response>"
            if (
                out
                and out[-1]["role"] == "user"
                and out[-1]["content"].startswith("<tool_response>")
            ):
                out[-1]["content"] += "\n" + block  # several results of one turn: one message
            else:
                out.append({"role": "user", "content": block})
        else:
            out.append({"role": "user", "content": content})
    if system is not None:
        out.insert(0, {"role": "system", "content": system})
    return out


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, list):  # OpenAI content parts: keep the text ones
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def parse(text: str, step: int = 0) -> dict[str, Any]:
    """A completion's text -> an OpenAI assistant message (with ``tool_calls`` if any parse).

    Call ids are ``call_{step}_{i}``: unique in a conversation (``step`` counts the assistant
    turns before this one) and the same wherever the text is parsed, in-process or gateway.
    """
    calls, rest, done = [], [], 0
    for match in _CALL.finditer(text):
        call = _parse_call(match.group(1), f"call_{step}_{len(calls)}")
        if call is not None:  # a block that did not parse stays in the text: it is what
            calls.append(call)  # the model wrote, for the researcher to read
            rest.append(text[done : match.start()])
            done = match.end()
    if not calls:
        return {"role": "assistant", "content": text}
    content = "".join(rest + [text[done:]]).strip()
    return {"role": "assistant", "content": content or None, "tool_calls": calls}


def _parse_call(body: str, call_id: str) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    arguments = data.get("arguments", data.get("parameters", {}))
    if isinstance(arguments, str):
        arguments_text = arguments
    else:
        arguments_text = json.dumps(arguments)
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": data["name"], "arguments": arguments_text},
    }


def may_become_call(text: str) -> bool:
    """Whether streamed text so far could still turn into a tool call (so hold it back)."""
    stripped = text.lstrip()
    return "<tool_call>" in text or "<tool_call>".startswith(stripped[:11]) and bool(stripped)
