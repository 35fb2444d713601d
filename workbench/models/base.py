"""The one small protocol every chat model implements, and what passes through it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from workbench.tasks import Task


@dataclass
class Sampling:
    """Sampling parameters, as in the OpenAI API. None leaves the model's default."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: list[str] | None = None

    def as_openai(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class RunInfo:
    """What a model may know about the run it serves (scripted policies use the task)."""

    task: Task | None = None
    group_index: int = 0
    job_id: str | None = None


@dataclass
class Completion:
    """One assistant turn: an OpenAI-format message and its token usage."""

    message: dict[str, Any]
    usage: dict[str, int] = field(default_factory=dict)
    checkpoint: str | None = None
    # "stop", "tool_calls", "length" (cut off by max_tokens), ... as OpenAI's API says it
    finish_reason: str | None = None


@runtime_checkable
class ChatModel(Protocol):
    """``await model.complete(messages, tools, sampling, run)`` -> :class:`Completion`."""

    model_id: str

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        sampling: Sampling,
        run: RunInfo,
    ) -> Completion: ...


class PerLoop:
    """An API client and its connection limit, one pair per event loop.

    An HTTP connection pool and a semaphore belong to the loop that made them; a notebook
    and the tests run several loops in one process, so each loop gets its own (dropped with
    the loop).
    """

    def __init__(self, make_client: Callable[[], Any], max_connections: int):
        import weakref

        self._make_client = make_client
        self._max_connections = max_connections
        self._per_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def get(self) -> tuple[Any, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if loop not in self._per_loop:
            self._per_loop[loop] = (self._make_client(), asyncio.Semaphore(self._max_connections))
        return self._per_loop[loop]
