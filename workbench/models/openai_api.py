"""Models behind any OpenAI-compatible API, through the official ``openai`` SDK."""

from __future__ import annotations

from typing import Any

from workbench.models.base import Completion, RunInfo, Sampling


class OpenAIModel:
    """``openai:MODEL`` (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``) or ``ENDPOINT:MODEL``.

    The API key lives only inside the SDK client: it never enters a trace or a log.
    """

    def __init__(
        self,
        model_id: str,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
    ):
        from openai import AsyncOpenAI

        self.model_id = model_id
        self.model = model
        self.base_url = base_url
        # The SDK insists on a key; local OpenAI-compatible servers often need none.
        self._client = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            timeout=timeout,
            max_retries=max_retries,
        )

    def __repr__(self) -> str:
        return f"OpenAIModel({self.model_id!r}, base_url={self.base_url!r})"

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        sampling: Sampling,
        run: RunInfo,
    ) -> Completion:
        kwargs: dict[str, Any] = sampling.as_openai()
        if tools:
            kwargs["tools"] = tools
        response = await self._client.chat.completions.create(
            model=self.model, messages=messages, **kwargs
        )
        choice = response.choices[0].message
        message: dict[str, Any] = {"role": "assistant", "content": choice.content}
        if choice.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.function.name,
                        "arguments": call.function.arguments,
                    },
                }
                for call in choice.tool_calls
            ]
        usage = {}
        if response.usage is not None:
            usage = {
                "prompt_tokens": response.usage.prompt_tokens,
                "completion_tokens": response.usage.completion_tokens,
                "total_tokens": response.usage.total_tokens,
            }
        return Completion(message=message, usage=usage)
