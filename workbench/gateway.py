"""An OpenAI-compatible HTTP server for every model the workbench knows.

``workbench serve`` (uvicorn, 127.0.0.1 by default) answers ``GET /v1/models`` and
``POST /v1/chat/completions`` (tools, tool_choice, temperature, top_p, max_tokens, n, seed,
stop, ``stream: true`` as server-sent events) for local models, scripted policies and
upstream endpoints alike, so the official ``openai`` client works against any of them:

```python
client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="...")
client.chat.completions.create(model="local:smollm2-135m", messages=[...])
```

Who may call it: a client that sends the key (``Authorization: Bearer KEY``; ``workbench
serve`` prints a fresh one unless ``--api-key`` or ``WORKBENCH_API_KEY`` gives one, and
``--no-auth`` turns the check off), and not a web page: a request with a foreign ``Origin``
is refused, a body must be JSON, which a page cannot send to another origin unasked, and on a
loopback address a request whose ``Host`` is not a loopback name (``127.0.0.1``,
``localhost``, ``[::1]``, with the port) is refused, as a DNS-rebinding page sends its own.
What a request can make it run: models, and the scripted policies of the environments its
owner allows (the shipped ones and ``--env REF``); a task naming anything else is refused
before anything is imported or even looked up. A model is kept for the next request (its
client, its connections) only once it has answered one, in a bounded cache
(``workbench.models``): ids that are refused or name nothing leave nothing behind. A body is
capped (4 MB), a connection that sends no request head within 10 s is dropped, open
connections are capped (the oldest idle one makes room for a new one), and a request whose
client hangs up is cancelled, generation included, with one log line.

Errors come back in OpenAI's format: 400 bad request, 401 missing or wrong key, 403 foreign
origin, 404 unknown model, 408 body too slow, 413 body too large, 415 body not JSON, 421
foreign Host, 500 failure inside the model, 502 or 503 failure of an upstream endpoint (its
status named); the server keeps serving. Scripted policies play a task: send it as ``extra_body={"task": {...}}``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any, Literal

import pydantic
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
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
    keep_model,
    toolcalls,
)
from workbench.models.openai_api import ModelAPIError
from workbench.tasks import Task

MAX_BODY = 4 << 20  # bytes: a long conversation with tools is well under 1 MB
HEAD_TIMEOUT = 10.0  # seconds from connecting (or the last response) to a whole request head
BODY_TIMEOUT = 30.0  # seconds from the head to the end of the body
KEEP_ALIVE = 5.0  # seconds an idle keep-alive connection stays open
MAX_CONNECTIONS = 1024
MAX_HEAD = 16 << 10  # bytes of request line and headers
FD_RESERVE = 64  # file descriptors kept for everything but connections (model, store, logs)

log = logging.getLogger("uvicorn.error")  # uvicorn's format, on the same stream


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

    def response(self, *, close: bool = False) -> JSONResponse:
        kind = {401: "authentication_error", 403: "permission_error", 404: "not_found_error"}
        body = {
            "error": {
                "message": self.message,
                "type": kind.get(
                    self.status, "server_error" if self.status >= 500 else "invalid_request_error"
                ),
                "param": self.param,
                "code": self.code,
            }
        }
        # A request refused before its body was read: close, rather than read what is left.
        headers = {"connection": "close"} if close else None
        return JSONResponse(body, status_code=self.status, headers=headers)


def _validation_error(error: pydantic.ValidationError) -> APIError:
    first = error.errors()[0]
    param = ".".join(str(p) for p in first["loc"]) or None
    return APIError(400, f"{param}: {first['msg']}" if param else first["msg"], param)


def _model(model_id: str, local: frozenset[str], held: dict[str, ChatModel]) -> ChatModel:
    """The model a request names, made but not kept (see :func:`_served`)."""
    if model_id in held:
        return held[model_id]
    if model_id.startswith("local:") and model_id not in local:
        # local:PATH would load whatever file a request names: only what the owner chose.
        raise APIError(
            404,
            f"model '{model_id}' is not served here: local models are {', '.join(sorted(local))} "
            "(its owner adds one with `workbench serve --preload local:PATH`)",
            "model",
            "model_not_found",
        )
    try:
        model = get_model(model_id, keep=False)
    except UnknownModelError as e:
        raise APIError(404, str(e), "model", "model_not_found") from None
    except WorkbenchError as e:
        raise APIError(400, str(e), "model") from None
    if model_id in local:  # the owner's few: held for good, their weights loaded once
        held[model_id] = model
    return model


def _served(model_id: str, model: ChatModel) -> None:
    """A model that answered a request is kept (a bounded cache): ids that were refused, or
    named nothing, leave nothing behind. Scripted policies cost nothing to make again."""
    if not isinstance(model, ScriptedModel):
        keep_model(model_id, model)


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


# -- which environments a request may name --------------------------------------------------


def allowed_environments(extra: Iterable[str] = ()) -> dict[str, str]:
    """What a task's ``env`` may say, mapped to the reference it resolves to.

    The shipped environments, and each of ``extra`` (the owner's ``--env``) under the reference
    as given, its absolute form and the environment's name. ``extra`` is imported here, once:
    its owner named it, and a typo fails at start rather than at the first request.
    """
    from workbench.tasks import builtin_environments, resolve_environment

    allowed = {name: name for name in builtin_environments()}
    for ref in extra:
        env = resolve_environment(ref)
        for spelling in (ref, env.ref, env.name):
            allowed.setdefault(spelling, env.ref)
    return allowed


def _served_task(task: Task, allowed: dict[str, str]) -> Task:
    """The task with its environment resolved from the allow-list, its arguments checked."""
    ref = allowed.get(task.env)
    if ref is None:
        # The same words whatever was asked for: nothing is imported or even looked up on
        # disk, so the answer tells nothing about the server's files.
        names = sorted({n for n in allowed if ":" not in n and "/" not in n})
        raise APIError(
            400,
            f"task.env: this gateway serves the environments {', '.join(names)} only (its "
            "owner adds more with `workbench serve --env REF`)",
            "task.env",
            "environment_not_served",
        )
    task = task.model_copy(update={"env": ref})
    try:
        task.validate_args()
    except WorkbenchError as e:
        fields = getattr(e, "errors", None) or {}
        param = f"task.args.{next(iter(fields))}" if fields else "task.scenario"
        raise APIError(400, str(e), param) from None
    return task


def new_api_key() -> str:
    """A fresh key for a gateway started without one."""
    return "wb-" + secrets.token_urlsafe(24)


def check_api_key(api_key: str | None) -> None:
    """An empty key would let every request in: refuse it with one line."""
    if api_key is not None and not api_key.strip():
        raise WorkbenchError(
            "the API key is empty (--api-key or WORKBENCH_API_KEY): give a real key, or "
            "--no-auth to serve without one"
        )


def create_app(
    api_key: str | None = None,
    *,
    environments: Iterable[str] = (),
    local_models: Iterable[str] = (),
    max_body: int = MAX_BODY,
    host: str | None = None,
) -> Starlette:
    """The ASGI app. With ``api_key``, every request but ``/health`` needs
    ``Authorization: Bearer KEY``; without, none does (:func:`serve` asks for the choice).

    ``environments``: references a task may name besides the shipped environments.
    ``local_models``: ``local:PATH`` ids served besides the bundled models (and forks).
    ``host``: the address it is bound to (None: the one each request came in on); on a
    loopback address a request must name a loopback host (DNS rebinding), else 421.
    """
    from workbench.models.local import BUNDLED

    check_api_key(api_key)
    allowed = allowed_environments(environments)
    local = frozenset({f"local:{name}" for name in BUNDLED} | set(local_models))
    held: dict[str, ChatModel] = {}  # local models: made once, kept while the app lives

    async def models(request: Request) -> JSONResponse:
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "workbench"}
            for m in known_models()
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat(request: Request):
        try:
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
            if req.task is not None:
                req.task = _served_task(req.task, allowed)
            model = _model(req.model, local, held)
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
                _served(req.model, model)
                return StreamingResponse(_sse(first, rest), media_type="text/event-stream")
            completed = await _complete(model, req)
            _served(req.model, model)
            return JSONResponse(completed)
        except APIError as e:
            return e.response()

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ],
        middleware=[Middleware(_Guard, api_key=api_key, max_body=max_body, host=host)],
    )


# -- what every request passes before the app sees it ---------------------------------------


class _Gone(Exception):
    """The client went away before its request was read."""


class _Guard:
    """Pure ASGI middleware: origin, key, content type and body size are checked before the
    app runs; then the connection is watched, and a request whose client hangs up is
    cancelled (and with it the generation it waits for) with one log line."""

    def __init__(self, app, api_key: str | None, max_body: int, host: str | None = None):
        self.app, self.api_key, self.max_body, self.host = app, api_key, max_body, host

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._check(scope)
            body = await self._body(scope, receive)
        except APIError as e:
            await e.response(close=True)(scope, receive, send)
            return
        except _Gone:
            return
        await self._watched(scope, body, receive, send)

    def _check(self, scope) -> None:
        headers = Headers(scope=scope)
        bound, port = (scope.get("server") or ("127.0.0.1", None))[:2]
        if _loopback(self.host or bound):
            # DNS rebinding: a page of evil.example, its name re-pointed at 127.0.0.1, reaches
            # this port from the browser with its own name in Host (and no Origin on a GET).
            host = headers.get("host", "").lower()
            if host not in _loopback_hosts(port):
                raise APIError(
                    421,
                    f"the Host header ({host or 'none'}) does not name this server: it serves "
                    "127.0.0.1, localhost and [::1] only",
                    code="host_not_allowed",
                )
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in _own_origins(scope):
            # Browsers name the page that sent a request; API clients send no Origin.
            raise APIError(
                403,
                f"requests from web pages ({origin}) are refused: the gateway serves API "
                "clients, which send no Origin header",
                code="origin_not_allowed",
            )
        if self.api_key is not None and scope["path"] != "/health":
            given = headers.get("authorization", "")
            token = given[7:] if given.lower().startswith("bearer ") else ""
            if not hmac.compare_digest(token.encode(), self.api_key.encode()):
                raise APIError(401, "missing or wrong API key", code="invalid_api_key")
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                raise APIError(
                    415,
                    f"the body must be JSON, sent with Content-Type: application/json (not "
                    f"{kind or 'none'})",
                    code="unsupported_media_type",
                )
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            raise self._too_large()

    def _too_large(self) -> APIError:
        return APIError(
            413,
            f"the request body is over the gateway's limit of {self.max_body / (1 << 20):g} MB "
            "(its owner sets it with `workbench serve --max-body-mb`)",
            code="request_too_large",
        )

    async def _body(self, scope, receive) -> bytes:
        chunks, size = [], 0
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _Gone
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body:  # a chunked body declares no length
                        raise self._too_large()
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise APIError(
                408, f"the request body took longer than {BODY_TIMEOUT:g} s to arrive"
            ) from None

    async def _watched(self, scope, body: bytes, receive, send) -> None:
        gone = asyncio.Event()
        handed_over = answered = False

        async def app_receive():
            nonlocal handed_over
            if not handed_over:
                handed_over = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def app_send(message) -> None:
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body"):
                answered = True
            await send(message)

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        started = time.monotonic()
        app = asyncio.ensure_future(self.app(scope, app_receive, app_send))
        watcher = asyncio.ensure_future(watch())
        try:
            await asyncio.wait({app, watcher}, return_when=asyncio.FIRST_COMPLETED)
            hung_up = gone.is_set() and not answered
            if hung_up:
                app.cancel()  # stop its work: a generation, an upstream call, a policy
            try:
                await app
            except asyncio.CancelledError:
                if not hung_up or asyncio.current_task().cancelling():
                    raise
            except Exception:
                if not gone.is_set():
                    raise  # a bug: uvicorn logs it whole
            if hung_up:
                client = scope.get("client") or ("?", 0)
                log.warning(
                    "client %s:%s hung up after %.1f s: %s %s cancelled",
                    client[0],
                    client[1],
                    time.monotonic() - started,
                    scope["method"],
                    scope["path"],
                )
        finally:
            watcher.cancel()
            app.cancel()


def _loopback(host: str) -> bool:
    """Whether an address or name is this machine's loopback (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _loopback_hosts(port: int | None) -> set[str]:
    """The Host headers a client of a loopback server sends: a loopback name, with the port
    or without (as some clients write the default one)."""
    names = ("127.0.0.1", "localhost", "[::1]")
    return {*names, *(f"{name}:{port}" for name in names if port)}


def _own_origins(scope) -> set[str]:
    """The origins of this server's own address: loopback names, or the bound address, with
    the port the request came in on."""
    host, port = (scope.get("server") or ("127.0.0.1", None))[:2]
    names = {"127.0.0.1", "localhost", "[::1]", f"[{host}]" if ":" in str(host) else str(host)}
    suffix = f":{port}" if port else ""
    return {f"http://{name}{suffix}" for name in names}


def local_finish_reason(message: dict[str, Any], generation: Any) -> str:
    """A local model's finish reason (``length`` when max_tokens cut it, tool call or not)."""
    from workbench.models.local import finish_reason

    return finish_reason(message, generation)


async def _generate(model: ChatModel, req: ChatRequest) -> tuple[dict[str, Any], str, dict]:
    """One choice: (message, finish_reason, usage), errors as APIError."""
    try:
        if hasattr(model, "generate"):  # local models report why they stopped
            message, generation = await model.generate(
                req.plain_messages, req.offered_tools, req.sampling
            )
            finish = local_finish_reason(message, generation)
            usage = {
                "prompt_tokens": generation.prompt_tokens,
                "completion_tokens": generation.completion_tokens,
            }
        else:
            run = RunInfo(task=req.task, group_index=req.group_index)
            completion: Completion = await model.complete(
                req.plain_messages, req.offered_tools, req.sampling, run
            )
            finish = completion.finish_reason or "stop"
            message, usage = completion.message, completion.usage
    except ModelAPIError as e:
        raise _upstream_error(e) from None
    except WorkbenchError as e:
        param = "max_tokens" if "max_tokens" in str(e) else None
        raise APIError(400, str(e), param) from None
    except Exception as e:  # the model failed: report it, keep serving
        raise APIError(500, f"the model failed: {type(e).__name__}: {e}") from None
    if message.get("tool_calls") and finish != "length":  # cut off: it never ended its turn
        finish = "tool_calls"
    return message, finish, usage


def _upstream_error(error: ModelAPIError) -> APIError:
    """An upstream endpoint failed. 503 when it is unreachable, timed out or overloaded (try
    again later), 400 when it refused the request as malformed, 502 for anything else (a 5xx,
    a wrong key in the gateway's config, a reply that is not an answer). The message names the
    upstream status."""
    text = str(error)
    found = re.search(r"\bHTTP (\d{3})\b", text)
    upstream = int(found.group(1)) if found else None
    if upstream in (400, 422):
        status = 400
    elif (upstream is None and "malformed" not in text) or upstream in (408, 429, 503, 504):
        status = 503
    else:
        status = 502
    return APIError(status, f"the upstream endpoint failed: {text}", code="upstream_error")


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
        try:
            item = await items.__anext__()
        except WorkbenchError as e:
            param = "max_tokens" if "max_tokens" in str(e) else None
            raise APIError(400, str(e), param) from None
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
    finally:
        await items.aclose()  # a client that hung up stops the generation now, not at GC
    message, generation = item
    finish = local_finish_reason(message, generation)
    if message.get("tool_calls"):
        yield _chunk(envelope, {"tool_calls": _indexed(message["tool_calls"])})
    elif len(message.get("content") or "") > sent:
        yield _chunk(envelope, {"content": message["content"][sent:]})
    yield _chunk(envelope, {}, finish)


def _indexed(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"index": i, **call} for i, call in enumerate(calls)]


def _chunk(envelope, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {**envelope, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


async def _sse(first, rest) -> AsyncIterator[bytes]:
    try:
        yield f"data: {json.dumps(first)}\n\n".encode()
        try:
            async for chunk in rest:
                yield f"data: {json.dumps(chunk)}\n\n".encode()
        except APIError as e:  # after the headers went out: report in-band, as OpenAI does
            yield f"data: {json.dumps({'error': {'message': e.message}})}\n\n".encode()
        yield b"data: [DONE]\n\n"
    finally:
        await rest.aclose()


def _protocol(head_timeout: float, max_connections: int) -> type:
    """uvicorn's h11 protocol with the two guards it lacks: a deadline for each request head
    (a client that connects and sends nothing, or drips its headers, is dropped; uvicorn's
    keep-alive timeout only starts after a first response), and a cap on open connections at
    which the oldest idle one makes room for a new one (refusing the new one instead would
    let idle sockets lock everyone out)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _idle_since = 0.0

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._await_head()
            if len(self.connections) > max_connections:
                self._make_room()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._head_timer is not None and not self.waiting_for_head():
                self._head_timer.cancel()
                self._head_timer = None

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._await_head()

        def connection_lost(self, exc) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            super().connection_lost(exc)

        def waiting_for_head(self) -> bool:
            return self.conn.their_state is h11.IDLE and (
                self.cycle is None or self.cycle.response_complete
            )

        def _await_head(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._idle_since = time.monotonic()
            self._head_timer = self.loop.call_later(head_timeout, self._head_overdue)

        def _head_overdue(self) -> None:
            self._head_timer = None
            if self.waiting_for_head():
                self.transport.close()

        def _make_room(self) -> None:
            open_ = [c for c in self.connections if not c.transport.is_closing()]
            if len(open_) <= max_connections:
                return
            idle = [
                c
                for c in open_
                if c is not self and isinstance(c, GuardedH11Protocol) and c.waiting_for_head()
            ]
            victim = min(idle, key=lambda c: c._idle_since) if idle else self
            victim.transport.close()

    return GuardedH11Protocol


def _connection_cap(wanted: int) -> int:
    """At most ``wanted``, and few enough that connections cannot use up the descriptors the
    process needs for everything else."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(8, min(wanted, soft - FD_RESERVE))


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    preload: list[str] | None = None,
    *,
    no_auth: bool = False,
    environments: Iterable[str] = (),
    max_body: int = MAX_BODY,
    max_connections: int = MAX_CONNECTIONS,
) -> None:
    """Run the gateway with uvicorn until interrupted.

    Give ``api_key`` (see :func:`new_api_key`), or ``no_auth=True`` to serve without one.
    """
    import uvicorn

    if api_key is None and not no_auth:
        raise WorkbenchError("give the gateway an API key, or no_auth=True to serve without one")
    if api_key is not None and no_auth:
        raise WorkbenchError("--no-auth and an API key contradict each other: drop one")
    local = [m for m in preload or [] if m.startswith("local:")]
    app = create_app(
        api_key, environments=environments, local_models=local, max_body=max_body, host=host
    )
    for model_id in preload or []:
        model = get_model(model_id)
        if hasattr(model, "engine"):
            model.engine  # noqa: B018 - load the weights before the first request
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        http=_protocol(HEAD_TIMEOUT, _connection_cap(max_connections)),
        ws="none",
        lifespan="off",
        timeout_keep_alive=KEEP_ALIVE,
        h11_max_incomplete_event_size=MAX_HEAD,
    )
    uvicorn.Server(config).run()
