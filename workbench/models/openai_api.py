"""Models behind any OpenAI-compatible API, through the official ``openai`` SDK.

Retries are ours, not the SDK's (it runs with ``max_retries=0``): transient failures (429,
5xx, timeouts, dropped or truncated connections) are retried with exponential backoff and
full jitter, waiting at least what ``Retry-After`` asks; anything else (a 4xx, a malformed
response) fails the run at once with a :class:`ModelAPIError` that says what happened.
At most ``max_connections`` requests per model are in flight at once.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from typing import Any

from workbench.errors import WorkbenchError
from workbench.models.base import Completion, PerLoop, RunInfo, Sampling

MAX_WAIT = 60.0  # the longest single wait, whatever Retry-After says


class ModelAPIError(WorkbenchError):
    """A model API call failed for good: a non-transient error, or retries ran out."""


class OpenAIModel:
    """``openai:MODEL`` (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``) or ``ENDPOINT:MODEL``.

    The API key lives only inside the SDK client: it never enters a trace or a log, and it
    is cut out of any error message a server echoes it in.
    """

    def __init__(
        self,
        model_id: str,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 6,
        max_connections: int = 32,
        backoff: float = 0.5,
    ):
        self.model_id = model_id
        self.model = model
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_connections = max_connections
        self.backoff = backoff
        # The SDK insists on a key; local OpenAI-compatible servers often need none.
        self._api_key = api_key or "not-needed"
        self._clients = PerLoop(self._make_client, max_connections)

    def __repr__(self) -> str:
        return f"OpenAIModel({self.model_id!r}, base_url={self.base_url!r})"

    def _make_client(self) -> Any:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            base_url=self.base_url, api_key=self._api_key, timeout=self.timeout, max_retries=0
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
        kwargs: dict[str, Any] = sampling.as_openai()
        if tools:
            kwargs["tools"] = tools
        response = await self._create(messages=messages, **kwargs)
        try:
            return _completion(response)
        except (AttributeError, IndexError, TypeError) as e:
            raise ModelAPIError(
                f"{self.model_id}: malformed response from {self.base_url}: {e}"
            ) from None

    async def _create(self, **kwargs: Any) -> Any:
        """One chat completion, retried with tenacity on transient failures (connection
        errors, timeouts, 429 and 5xx): full-jitter backoff that honours Retry-After. The
        connection limit is held only while a request is in flight, never while it waits."""
        import openai
        import tenacity

        client, connections = self._client()

        async def attempt() -> Any:
            async with connections:
                return await client.chat.completions.create(model=self.model, **kwargs)

        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(_transient),
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=lambda state: self.retry_delay(
                state.attempt_number - 1, _retry_after(state.outcome.exception())
            ),
            reraise=True,
        )
        try:
            return await retrying(attempt)
        except (openai.APIConnectionError, openai.APIStatusError) as e:  # timeouts too
            if not _transient(e):
                raise ModelAPIError(self._describe(e, "failed")) from None
            attempts = retrying.statistics.get("attempt_number", self.max_retries + 1)
            raise ModelAPIError(self._describe(e, f"gave up after {attempts} attempts")) from None
        except openai.APIResponseValidationError as e:
            raise ModelAPIError(self._describe(e, "malformed response")) from None
        except ValueError as e:  # the body was not JSON
            raise ModelAPIError(self._redact(f"{self.model_id}: malformed response: {e}")) from None

    def retry_delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Full jitter over ``backoff * 2**attempt``, but never less than ``Retry-After``."""
        delay = random.uniform(0, min(MAX_WAIT, self.backoff * 2**attempt))
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, MAX_WAIT)

    def _describe(self, error: Exception, what: str) -> str:
        status = getattr(error, "status_code", None)
        kind = f"HTTP {status}" if status else type(error).__name__
        detail = getattr(error, "message", None) or str(error)
        return self._redact(f"{self.model_id}: {what}: {kind}: {detail}")

    def _redact(self, text: str) -> str:
        if self._api_key and self._api_key != "not-needed":
            text = text.replace(self._api_key, "[api key]")
        return text


def _transient(error: BaseException) -> bool:
    """A failure worth another try: no answer (connection, timeout), 429, or a 5xx."""
    import openai

    if isinstance(error, openai.APIConnectionError):
        return True
    if isinstance(error, openai.APIStatusError):
        return error.status_code == 429 or error.status_code >= 500
    return False


def _retry_after(error: BaseException | None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    response = getattr(error, "response", None)
    if response is None:
        return None
    headers = response.headers
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _completion(response: Any) -> Completion:
    finish = response.choices[0].finish_reason  # the API's own: "stop", "length", ...
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
    return Completion(message=message, usage=usage, finish_reason=finish)
