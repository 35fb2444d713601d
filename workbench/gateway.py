"""An OpenAI-compatible HTTP server for every model the workbench knows.

``workbench serve`` (uvicorn, 127.0.0.1 by default) answers ``GET /v1/models`` and
``POST /v1/chat/completions`` (tools, tool_choice, temperature, top_p, max_tokens, n, seed,
stop, ``stream: true`` as server-sent events) for local models, scripted policies and
upstream endpoints alike, so the official ``openai`` client works against any of them:

```python
client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="...")
client.chat.completions.create(model="local:smollm2-135m", messages=[...])
```

Errors come back in OpenAI's format: 400 for a bad request, 401 for a missing or wrong
key, 404 for an unknown model, 500 for a failure inside the model; the server keeps serving.
Scripted policies play a task: send it as ``extra_body={"task": {...}}``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

import pydantic
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from workbench.errors import UnknownModelError, WorkbenchError
from workbench.models import (
    ChatModel,
    Completion,
    RunInfo,
    Sampling,
    ScriptedModel,
    get_model,
    toolcalls,
)
from workbench.tasks import Task


class Message(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ChatRequest(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")

    model: str
    messages: list[Message] = pydantic.Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    temperature: float | None = pydantic.Field(None, ge=0, le=2)
    top_p: float | None = pydantic.Field(None, gt=0, le=1)
    max_tokens: int | None = pydantic.Field(None, ge=1)
    max_completion_tokens: int | None = pydantic.Field(None, ge=1)
    n: int = pydantic.Field(1, ge=1, le=16)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    # Workbench extensions, for scripted policies: the task they play and the run's index.
    task: Task | None = None
    group_index: int = 0

    @property
    def sampling(self) -> Sampling:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return Sampling(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_completion_tokens or self.max_tokens,
            seed=self.seed,
            stop=stop,
        )

    @property
    def plain_messages(self) -> list[dict[str, Any]]:
        return [m.model_dump(exclude_none=True) for m in self.messages]

    @property
    def offered_tools(self) -> list[dict[str, Any]]:
        return [] if self.tool_choice == "none" else list(self.tools or [])


class APIError(Exception):
    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> JSONResponse:
        kind = {401: "authentication_error", 404: "invalid_request_error", 500: "server_error"}
        body = {
            "error": {
                "message": self.message,
                "type": kind.get(self.status, "invalid_request_error"),
                "param": self.param,
                "code": self.code,
            }
        }
        return JSONResponse(body, status_code=self.status)


def _validation_error(error: pydantic.ValidationError) -> APIError:
    first = error.errors()[0]
    param = ".".join(str(p) for p in first["loc"]) or None
    return APIError(400, f"{param}: {first['msg']}" if param else first["msg"], param)


def _model(model_id: str) -> ChatModel:
    try:
        return get_model(model_id)
    except UnknownModelError as e:
        raise APIError(404, str(e), "model", "model_not_found") from None
    except WorkbenchError as e:
        raise APIError(400, str(e), "model") from None


def known_models() -> list[str]:
    """The model ids `GET /v1/models` lists: bundled local models and scripted policies."""
    from workbench.models.local import BUNDLED
    from workbench.tasks import builtin_environments, resolve_environment

    ids = []
    for name in BUNDLED:
        try:
            from workbench.models.local import bundled_path

            bundled_path(name)
            ids.append(f"local:{name}")
        except WorkbenchError:
            pass
    policies = set()
    for env_name in builtin_environments():
        policies.update(resolve_environment(env_name).policies)
    ids.extend(f"scripted:{p}" for p in sorted(policies))
    from workbench.training.registry import list_forks

    ids.extend(f.name for f in list_forks())
    return ids


def create_app(api_key: str | None = None) -> Starlette:
    """The ASGI app. With ``api_key``, every request needs ``Authorization: Bearer KEY``."""

    def check_key(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), api_key.encode()):
            raise APIError(401, "missing or wrong API key", code="invalid_api_key")

    async def models(request: Request) -> JSONResponse:
        try:
            check_key(request)
        except APIError as e:
            return e.response()
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "workbench"}
            for m in known_models()
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat(request: Request):
        try:
            check_key(request)
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise APIError(400, "the request body is not valid JSON") from None
            if not isinstance(body, dict):
                raise APIError(400, "the request body must be a JSON object")
            try:
                req = ChatRequest.model_validate(body)
            except pydantic.ValidationError as e:
                raise _validation_error(e) from None
            model = _model(req.model)
            if isinstance(model, ScriptedModel) and req.task is None:
                raise APIError(
                    400,
                    f"{req.model} plays a task's scripted policy: send the task with the "
                    "request, e.g. extra_body={'task': {'env': 'shop', 'scenario': ..., "
                    "'args': {...}}}",
                    "task",
                )
            if req.stream:
                if req.n != 1:
                    raise APIError(400, "stream supports n=1 only", "n")
                first, rest = await _start_stream(model, req)
                return StreamingResponse(_sse(first, rest), media_type="text/event-stream")
            return JSONResponse(await _complete(model, req))
        except APIError as e:
            return e.response()

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


async def _generate(model: ChatModel, req: ChatRequest) -> tuple[dict[str, Any], str, dict]:
    """One choice: (message, finish_reason, usage), errors as APIError."""
    try:
        if hasattr(model, "generate"):  # local models report why they stopped
            message, generation = await model.generate(
                req.plain_messages, req.offered_tools, req.sampling
            )
            finish = generation.finish_reason
            usage = {
                "prompt_tokens": generation.prompt_tokens,
                "completion_tokens": generation.completion_tokens,
            }
        else:
            run = RunInfo(task=req.task, group_index=req.group_index)
            completion: Completion = await model.complete(
                req.plain_messages, req.offered_tools, req.sampling, run
            )
            message, finish, usage = completion.message, "stop", completion.usage
    except WorkbenchError as e:
        param = "max_tokens" if "max_tokens" in str(e) else None
        raise APIError(400, str(e), param) from None
    except Exception as e:  # the model failed: report it, keep serving
        raise APIError(500, f"the model failed: {type(e).__name__}: {e}") from None
    if message.get("tool_calls"):
        finish = "tool_calls"
    return message, finish, usage


def _envelope(req: ChatRequest, kind: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": kind,
        "created": int(time.time()),
        "model": req.model,
    }


async def _complete(model: ChatModel, req: ChatRequest) -> dict[str, Any]:
    results = await asyncio.gather(*(_generate(model, req) for _ in range(req.n)))
    prompt = max((u.get("prompt_tokens", 0) for _, _, u in results), default=0)
    completion = sum(u.get("completion_tokens", 0) for _, _, u in results)
    return {
        **_envelope(req, "chat.completion"),
        "choices": [
            {
                "index": i,
                "message": {
                    "role": "assistant",
                    "content": m.get("content"),
                    **({"tool_calls": m["tool_calls"]} if m.get("tool_calls") else {}),
                },
                "finish_reason": finish,
            }
            for i, (m, finish, _) in enumerate(results)
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


async def _start_stream(model: ChatModel, req: ChatRequest):
    """Start generating; a request the model refuses still gets a proper error response."""
    envelope = _envelope(req, "chat.completion.chunk")
    if hasattr(model, "stream"):
        chunks = _local_stream(envelope, model, req)
    else:
        message, finish, _ = await _generate(model, req)
        chunks = _whole(envelope, message, finish)
    first = await chunks.__anext__()
    return first, chunks


async def _whole(envelope, message, finish) -> AsyncIterator[dict[str, Any]]:
    yield _chunk(envelope, {"role": "assistant", "content": ""})
    if message.get("content"):
        yield _chunk(envelope, {"content": message["content"]})
    if message.get("tool_calls"):
        yield _chunk(envelope, {"tool_calls": _indexed(message["tool_calls"])})
    yield _chunk(envelope, {}, finish)


async def _local_stream(envelope, model, req: ChatRequest) -> AsyncIterator[dict[str, Any]]:
    items = model.stream(req.plain_messages, req.offered_tools, req.sampling)
    try:
        item = await items.__anext__()
    except WorkbenchError as e:
        raise APIError(400, str(e), "max_tokens" if "max_tokens" in str(e) else None) from None
    yield _chunk(envelope, {"role": "assistant", "content": ""})
    text, sent = "", 0
    try:
        while isinstance(item, str):
            text += item
            # Hold back what may be a tool call: it goes out as tool_calls, not as text.
            if not toolcalls.may_become_call(text):
                yield _chunk(envelope, {"content": text[sent:]})
                sent = len(text)
            item = await items.__anext__()
    except Exception as e:
        raise APIError(500, f"the model failed: {type(e).__name__}: {e}") from None
    message, generation = item
    finish = generation.finish_reason
    if message.get("tool_calls"):
        finish = "tool_calls"
        yield _chunk(envelope, {"tool_calls": _indexed(message["tool_calls"])})
    elif len(message.get("content") or "") > sent:
        yield _chunk(envelope, {"content": message["content"][sent:]})
    yield _chunk(envelope, {}, finish)


def _indexed(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"index": i, **call} for i, call in enumerate(calls)]


def _chunk(envelope, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {**envelope, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


async def _sse(first, rest) -> AsyncIterator[bytes]:
    yield f"data: {json.dumps(first)}\n\n".encode()
    try:
        async for chunk in rest:
            yield f"data: {json.dumps(chunk)}\n\n".encode()
    except APIError as e:  # after the headers went out: report in-band, as OpenAI does
        yield f"data: {json.dumps({'error': {'message': e.message}})}\n\n".encode()
    yield b"data: [DONE]\n\n"


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    preload: list[str] | None = None,
) -> None:
    """Run the gateway with uvicorn until interrupted."""
    import uvicorn

    for model_id in preload or []:
        model = get_model(model_id)
        if hasattr(model, "engine"):
            model.engine  # noqa: B018 - load the weights before the first request
    uvicorn.run(create_app(api_key), host=host, port=port, log_level="warning")
