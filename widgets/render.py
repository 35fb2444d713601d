"""Traces as HTML: a conversation, a finished run, a running one, and two runs side by side."""

from __future__ import annotations

import html
import json
from typing import Any

from workbench import Trace
from workbench.formatting import reward as reward_text


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, indent=1, default=str)  # as stored
    return html.escape(value, quote=False)


def render_messages(
    messages: list[dict[str, Any]], finish_reasons: list[str | None] | None = None
) -> str:
    """A conversation as HTML: each message, tool calls and tool results marked, and an
    answer the token limit cut off (``finish_reasons``: one per assistant turn) said so."""
    names: dict[str, str] = {}
    parts = []
    turns = [m for m in messages if m.get("role") == "assistant"]
    reasons = finish_reasons if finish_reasons and len(finish_reasons) == len(turns) else []
    turn = 0
    for message in messages:
        role = message.get("role", "?")
        body = f'<div class="wb-role">{html.escape(role)}</div>'
        if role == "assistant":
            if reasons and reasons[turn] == "length":
                body = (
                    f'<div class="wb-role">{html.escape(role)} '
                    '<span class="wb-badge wb-bad">cut off by max_tokens</span></div>'
                )
            turn += 1
        if message.get("content"):
            body += f"<pre>{_text(message['content'])}</pre>"
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            names[call.get("id", "")] = function.get("name", "?")
            body += (
                f'<div class="wb-toolcall">tool call → {html.escape(function.get("name", "?"))}'
                f"({_text(function.get('arguments'))})</div>"
            )
        if role == "tool":
            name = names.get(message.get("tool_call_id", ""), "tool")
            body = f'<div class="wb-role">tool result ← {html.escape(name)}</div>' + (
                f"<pre>{_text(message.get('content'))}</pre>"
            )
        parts.append(f'<div class="wb-msg wb-msg-{html.escape(role)}">{body}</div>')
    return "".join(parts)


def usage_text(usage: dict[str, Any] | None) -> str:
    """Token usage in words ("" when the model reported none)."""
    if not usage:
        return ""
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if prompt is None and completion is None:
        return ""
    return f"{prompt or 0} prompt + {completion or 0} completion tokens"


def render_trace(trace: Trace) -> str:
    """One finished run: what, who, how it ended, the reward, any error, the conversation."""
    ok = "wb-ok" if trace.success else "wb-bad"
    head = (
        f'<div class="wb-title">{html.escape(trace.task)} · {html.escape(trace.model)} '
        f"· group {trace.group_index}</div>"
        f'<span class="wb-badge {ok}">reward {reward_text(trace.reward)}</span>'
        f'<span class="wb-badge">stop: {html.escape(trace.stop_reason)}</span>'
        f'<span class="wb-badge">{trace.steps} steps</span>'
        f'<span class="wb-badge">{len(trace.tool_calls)} tool calls</span>'
    )
    if trace.seconds is not None:
        head += f'<span class="wb-badge">{trace.seconds:.2f} s</span>'
    tokens = usage_text(trace.usage)
    if tokens:
        head += f'<span class="wb-badge">{tokens}</span>'
    if trace.checkpoint:
        head += f'<span class="wb-badge">checkpoint {html.escape(trace.checkpoint)}</span>'
    if trace.error_type:
        head += (
            f'<div class="wb-error">error: {html.escape(trace.error_type)}: '
            f"{html.escape(trace.error_message or '')}</div>"
        )
    if trace.info:
        head += f'<div class="wb-help">info: {_text(trace.info)}</div>'
    return head + render_messages(trace.messages, trace.finish_reasons)


def render_running(
    task: str,
    model: str,
    group_index: int,
    step: int,
    messages: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    args: dict[str, Any] | None = None,
) -> str:
    """A run still going: what it has said and been told so far, and its tokens."""
    head = (
        f'<div class="wb-title">{html.escape(task)} · {html.escape(model)} · group {group_index}'
        f" · running, step {step}</div>"
    )
    if args:
        head += f'<div class="wb-help">arguments: {_text(args)}</div>'
    tokens = usage_text(usage)
    if tokens:
        head += f'<div class="wb-usage">{tokens} so far</div>'
    if not messages:
        head += '<div class="wb-help">waiting for the model\'s first step…</div>'
    return head + render_messages(messages)


def render_side_by_side(left: str, right: str) -> str:
    """Two rendered runs in two columns (the compare view)."""
    return f'<div class="wb-side"><div>{left}</div><div>{right}</div></div>'
