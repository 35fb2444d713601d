"""Claude through the official ``anthropic`` SDK: ``anthropic:MODEL``, or the alias ``claude``.

```python
import workbench  # with ANTHROPIC_API_KEY set (and `pip install anthropic`)

job = await workbench.evaluate("shop-basics", "claude")  # anthropic:claude-sonnet-5-5
job = await workbench.evaluate("shop-basics", "anthropic:claude-haiku-4-5", temperature=0)
```

Workbench keeps every conversation in OpenAI chat format (the trace's one format), so this
module translates at the wire and nowhere else: on the way out the system prompt goes apart,
tool calls become ``tool_use`` blocks and tool results ``tool_result`` blocks in a user turn;
the reply comes back as an OpenAI assistant message with ``tool_calls`` (arguments as a JSON
string) and OpenAI-named usage.

Where it goes: ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL``, or an ``[endpoints.anthropic]``
section in ``config.toml`` (``base_url``, ``api_key_env``, ``max_connections``,
``max_retries``, ``timeout``; see :mod:`workbench.config`), which wins where it says something.
The key lives only inside the SDK client: never in a trace, a log or an error message.

Retries are the SDK's (``max_retries``): 408, 409, 429, 5xx (529 "overloaded" included) and
dropped connections, with exponential backoff that honours ``retry-after``; ``backoff`` in the
config is not used. When they run out, or on any other error, the run fails with a
:class:`~workbench.models.openai_api.ModelAPIError`, as it does for OpenAI endpoints. At most
``max_connections`` requests per model are in flight at once.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from typing import Any

from workbench.errors import WorkbenchError
from workbench.models.base import Completion, PerLoop, RunInfo, Sampling
from workbench.models.openai_api import ModelAPIError

DEFAULT_MAX_TOKENS = 4096  # the Messages API requires one; enough for a tool call with a file


class AnthropicModel:
    """``anthropic:MODEL``: a Claude model behind the Messages API."""

    def __init__(
        self,
        model_id: str,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 6,
        max_connections: int = 32,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        backoff: float | None = None,  # accepted from config.toml; the SDK backs off itself
    ):
        # Checked here, not at the first request, so a job fails before any run starts.
        if importlib.util.find_spec("anthropic") is None:
            raise WorkbenchError(f"{model_id} needs the Anthropic SDK: pip install anthropic")
        self.model_id = model_id
        self.model = model
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = int(max_retries)
        self.max_connections = int(max_connections)
        self.max_tokens = max_tokens
        # A local fake or proxy may need no key, but the SDK refuses to send nothing.
        self._api_key = api_key or "not-needed"
        self._clients = PerLoop(self._make_client, self.max_connections)

    def __repr__(self) -> str:  # never the key
        return f"AnthropicModel({self.model_id!r}, base_url={self.base_url!r})"

    def _make_client(self) -> Any:
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(
            api_key=self._api_key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )

    def _client(self) -> tuple[Any, asyncio.Semaphore]:
        return self._clients.get()

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        sampling: Sampling,
        run: RunInfo,
    ) -> Completion:
        system, turns = to_anthropic(messages)
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": sampling.max_tokens or self.max_tokens,
            "messages": turns,
        }
        if system:
            kwargs["system"] = system
        if tools:
            kwargs["tools"] = tools_to_anthropic(tools)
        if sampling.stop:
            kwargs["stop_sequences"] = sampling.stop
        # Sent as body fields: recent SDKs dropped these arguments from their signatures,
        # while the API still takes them. The Messages API has no seed.
        extra = {"temperature": sampling.temperature, "top_p": sampling.top_p}
        extra = {k: v for k, v in extra.items() if v is not None}
        if extra:
            kwargs["extra_body"] = extra
        response = await self._create(**kwargs)
        try:
            return from_anthropic(response)
        except (AttributeError, KeyError, TypeError) as e:
            raise ModelAPIError(
                self._redact(f"{self.model_id}: malformed response from {self.base_url}: {e}")
            ) from None

    async def _create(self, **kwargs: Any) -> Any:
        import anthropic

        client, connections = self._client()
        try:
            async with connections:
                return await client.messages.create(**kwargs)
        except anthropic.APIStatusError as e:
            status = e.status_code
            transient = status in (408, 409, 429) or status >= 500
            attempts = f"gave up after {self.max_retries + 1} attempts"
            raise ModelAPIError(self._describe(e, attempts if transient else "failed")) from None
        except anthropic.APIConnectionError as e:  # timeouts too; the SDK retried them
            attempts = f"gave up after {self.max_retries + 1} attempts"
            raise ModelAPIError(self._describe(e, attempts)) from None
        except (anthropic.APIResponseValidationError, ValueError) as e:  # ValueError: not JSON
            raise ModelAPIError(self._describe(e, "malformed response")) from None

    def _describe(self, error: Exception, what: str) -> str:
        status = getattr(error, "status_code", None)
        kind = f"HTTP {status}" if status else type(error).__name__
        body = getattr(error, "body", None)
        # The API's own sentence ({"error": {"message": ...}}) reads better than the repr.
        detail = body.get("error") if isinstance(body, dict) else None
        detail = detail.get("message") if isinstance(detail, dict) else None
        detail = detail or getattr(error, "message", None) or str(error)
        return self._redact(f"{self.model_id}: {what}: {kind}: {detail}")

    def _redact(self, text: str) -> str:
        # A careless server or proxy may echo the key in an error; it must not reach a trace.
        if self._api_key != "not-needed":
            text = text.replace(self._api_key, "[api key]")
        return text


# -- OpenAI format -> Messages API --------------------------------------------------------


def to_anthropic(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """OpenAI chat messages -> (system prompt, Messages API turns).

    System messages join into the one system prompt. Turns alternate user/assistant, as the
    API requires: consecutive messages of one side (several tool results, or tool results
    and then a user message) share one turn, tool results first. Empty turns are dropped,
    since the API refuses empty text.
    """
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text(message.get("content")))
            continue
        if role == "assistant":
            side, blocks = "assistant", _blocks(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": _tool_id(call.get("id")),
                        "name": function.get("name") or "",
                        "input": _tool_input(function.get("arguments")),
                    }
                )
        elif role == "tool":
            content = message.get("content")
            result = {
                "type": "tool_result",
                "tool_use_id": _tool_id(message.get("tool_call_id")),
                "content": content if isinstance(content, str) else _blocks(content),
            }
            side, blocks = "user", [result]
        else:
            side, blocks = "user", _blocks(message.get("content"))
        if not blocks:
            continue
        if turns and turns[-1]["role"] == side:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": side, "content": blocks})
    return "\n\n".join(s for s in system if s) or None, turns


def tools_to_anthropic(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI function tools -> ``{"name", "description", "input_schema"}``."""
    out = []
    for tool in tools:
        function = tool.get("function", tool)
        spec = {
            "name": function["name"],
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            spec["description"] = function["description"]
        out.append(spec)
    return out


def _text(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


def _blocks(content: Any) -> list[dict[str, Any]]:
    """OpenAI message content (a string or parts) -> content blocks, without empty text."""
    if content is None or isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image(part["image_url"]))
        else:  # nothing to map it to: show it rather than lose it
            blocks.append({"type": "text", "text": json.dumps(part)})
    return blocks


def _image(image_url: Any) -> dict[str, Any]:
    url = image_url.get("url", "") if isinstance(image_url, dict) else str(image_url)
    found = re.match(r"data:(?P<type>[^;]+);base64,(?P<data>.*)", url, re.DOTALL)
    if found:
        source = {"type": "base64", "media_type": found["type"], "data": found["data"]}
    else:
        source = {"type": "url", "url": url}
    return {"type": "image", "source": source}


def _tool_id(value: Any) -> str:
    # The API accepts [a-zA-Z0-9_-] only; ids written by other models may hold more. The
    # call and its result go through the same mapping, so they still match.
    return re.sub(r"[^a-zA-Z0-9_-]", "_", str(value or "call"))


def _tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's JSON-string arguments -> the object ``tool_use.input`` must be."""
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = json.loads(arguments) if arguments and arguments.strip() else {}
    except (json.JSONDecodeError, TypeError, AttributeError):
        parsed = None
    # Broken arguments (from another model's turn) stay visible, so the model can see
    # what the tool's error result refers to.
    return parsed if isinstance(parsed, dict) else {"raw_arguments": str(arguments)}


# -- Messages API -> OpenAI format --------------------------------------------------------


def from_anthropic(response: Any) -> Completion:
    """A Messages API reply -> an OpenAI assistant message and OpenAI-named usage."""
    texts, calls = [], []
    for block in response.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            calls.append(
                {
                    "id": block.id,
                    "type": "function",
                    "function": {"name": block.name, "arguments": json.dumps(block.input)},
                }
            )
        # Other blocks (thinking, server tools) are never requested here.
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    usage: dict[str, int] = {}
    if response.usage is not None:
        u = response.usage
        # OpenAI counts cached prompt tokens in prompt_tokens; Anthropic counts them apart.
        prompt = (
            (u.input_tokens or 0)
            + (getattr(u, "cache_creation_input_tokens", None) or 0)
            + (getattr(u, "cache_read_input_tokens", None) or 0)
        )
        completion = u.output_tokens or 0
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    reason = getattr(response, "stop_reason", None)
    return Completion(
        message=message, usage=usage, finish_reason=FINISH_REASONS.get(reason, reason)
    )


# Anthropic's stop_reason in OpenAI's words (others, e.g. "refusal", "pause_turn", as they are)
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
}
