"""The one canonical record of a run: :class:`Trace`.

Everything needed to replay, grade, train on and debug a run: the task, the model, the full
conversation in OpenAI chat format (with tool calls and tool results), each tool call with
its outcome, the reward, why the run stopped, token usage and timings.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

import pydantic

StopReason = Literal["done", "max_steps", "error", "timeout", "cancelled"]
STOP_REASONS: tuple[str, ...] = ("done", "max_steps", "error", "timeout", "cancelled")

# A run succeeds when its reward reaches this (rewards are in [0, 1]).
SUCCESS_THRESHOLD = 1.0


def json_default(value: Any) -> Any:
    """``json.dumps(..., default=json_default)``: what a scenario puts in a reward's info or
    a tool returns (dates, sets, models) as the same JSON whatever the runtime: pydantic's
    JSON form (ISO dates, sets as lists), or the value's text when it has none."""
    import pydantic_core

    try:
        return pydantic_core.to_jsonable_python(value)
    except pydantic_core.PydanticSerializationError:
        return str(value)


def new_id() -> str:
    return uuid.uuid4().hex


class ToolCallRecord(pydantic.BaseModel):
    """One tool call as executed: what the model asked for and what it got back."""

    step: int
    id: str
    name: str
    arguments: str
    result: str
    error: bool = False
    seconds: float = 0.0


class Trace(pydantic.BaseModel):
    id: str = pydantic.Field(default_factory=new_id)
    job_id: str | None = None
    taskset: str | None = None
    task: str  # the task's slug
    task_id: str = ""
    env: str = ""
    scenario: str = ""
    args: dict[str, Any] = {}
    model: str
    checkpoint: str | None = None
    group_index: int = 0
    messages: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    tool_calls: list[ToolCallRecord] = []
    reward: float = 0.0
    info: dict[str, Any] = {}
    stop_reason: StopReason = "done"
    error_type: str | None = None
    error_message: str | None = None
    steps: int = 0
    # why each assistant turn ended, as the model said: "stop", "tool_calls", "length" (cut
    # off by max_tokens: not a finished turn), None where the model did not say
    finish_reasons: list[str | None] = []
    usage: dict[str, int] = {}
    started_at: float = pydantic.Field(default_factory=time.time)
    ended_at: float | None = None

    @property
    def success(self) -> bool:
        return self.stop_reason != "error" and self.reward >= SUCCESS_THRESHOLD

    @property
    def seconds(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at

    @property
    def answer(self) -> str | None:
        """The final assistant message's text, if the run ended with one."""
        for message in reversed(self.messages):
            if message.get("role") == "assistant":
                return None if message.get("tool_calls") else message.get("content")
        return None

    @property
    def key(self) -> tuple[str | None, str, str, int]:
        """What makes a run unique within a job."""
        return (self.job_id, self.task, self.model, self.group_index)
