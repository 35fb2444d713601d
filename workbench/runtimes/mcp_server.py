"""Serve an environment over MCP, the way HUD environments speak it: ``workbench env serve shop``.

```python
import json
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

server = StdioServerParameters(command="workbench", args=["env", "serve", "shop"])
async with stdio_client(server) as (read, write), ClientSession(read, write) as mcp:
    await mcp.initialize()
    prompt = await mcp.get_prompt("shop:price_check", {"product_name": "Desk Lamp"})
    await mcp.call_tool("search_products", {"query": "Desk Lamp"})  # ... the agent's turns
    await mcp.call_tool("_hud_submit", {"scenario": "price_check", "answer": "$34.90"})
    evaluation = await mcp.read_resource("shop:price_check")
    print(json.loads(evaluation.contents[0].text))  # {"reward": 1.0, "done": true, ...}
```

``--transport http`` serves the same over streamable HTTP on 127.0.0.1 (``--port``, default
8765). Every request must carry a bearer token: ``$WORKBENCH_MCP_TOKEN`` when set, else a
fresh one made at start. Once it listens, the server prints the address and the header to
send on stderr::

    serving 'shop' over MCP at http://127.0.0.1:8765/mcp
    Authorization: Bearer mcp-...

and a request without it gets 401 (the SDK's own Host and Origin checks, against DNS
rebinding, apply as well)::

    from mcp.shared._httpx_utils import create_mcp_http_client

    headers = {"Authorization": "Bearer mcp-..."}
    async with create_mcp_http_client(headers=headers) as http, streamable_http_client(
        "http://127.0.0.1:8765/mcp", http_client=http
    ) as (read, write), ClientSession(read, write) as mcp: ...

Where runs play: as ``workbench eval`` plays them (:func:`workbench.runtimes.choose_runtime`),
whatever the transport. An environment that keeps its state in ``state=`` (the shop) plays in
the server's process; a HUD-style one, whose state lives in module globals, gets a fork of its
own per run (the ``isolated`` runtime), so two HTTP sessions never see each other's globals;
one that runs model-written code (``allow_inprocess=False``, ``pycode``) plays in a container
and never in the server's process. The server that the subprocess and docker runtimes start
inside their sandbox (:func:`main`) plays its one run in its own process.

What a client sees, as HUD (``hud-python`` 0.5) registers an environment:

- **tools**: the environment's tools, with their derived JSON schemas, and nothing else;
- **prompts**: one per scenario, named ``ENV:SCENARIO``, its arguments the scenario's.
  Getting one starts a fresh run of that scenario: a new state, the scenario run to its first
  yield, whose prompt comes back as the prompt's messages. MCP prompt arguments are strings:
  each is read as the argument's type (``"true"``, ``"3"``, or JSON for lists and objects).
  The prompt's ``_meta`` carries ``arguments`` (name, required, default, type) and ``schema``;
- **resources**: one per scenario, at the same ``ENV:SCENARIO``. Reading it grades the run:
  the submitted answer goes into the scenario, and its reward comes back as JSON,
  ``{"reward", "done", "content", "info", "isError"}`` (``content``: the info's ``reason``).
  Reading it again gives the same evaluation;
- ``_hud_submit(scenario, answer)``: submits the final answer before the resource is read.
  Like every control tool it is not listed (a generic agent sees only the environment's
  tools), but callable.

Workbench's own runtimes (:class:`~workbench.runtimes.client.McpEpisode`) use three more
unlisted tools, which keep system messages and tool schemas that MCP prompts cannot carry:

- ``workbench_start(scenario, args)``: a fresh run (scenario ``""``: of the tools alone);
  returns ``{"messages": [...], "tools": [...]}`` (the prompt as chat messages, and the
  tools in OpenAI format);
- ``workbench_grade(answer)``: the answer sent into the scenario; returns ``{"reward", "info"}``;
- ``workbench_end()``: ends the run.

A connection holds one run at a time; starting another ends the one before, and a tool
called before any start acts on a fresh state of its own. On stdio the connection is the
process's one client. Over HTTP it is the MCP session (``mcp-session-id``): clients that
connect with the ``initialize`` handshake (``ClientSession``) keep their run across requests,
and the run ends with the session. The 2026 sessionless protocol cannot hold a run over HTTP.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any

import mcp_types as types
import pydantic

from workbench.environment import Environment, Scenario
from workbench.episode import Episode, ScenarioError

START, GRADE, END = "workbench_start", "workbench_grade", "workbench_end"
SUBMIT = "_hud_submit"
CONTROL_TOOLS = (START, GRADE, END, SUBMIT)
DEFAULT_PORT = 8765
TOKEN_VARIABLE = "WORKBENCH_MCP_TOKEN"


def _text(value: Any, *, error: bool = False) -> types.CallToolResult:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    structured = value if isinstance(value, dict) else None
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=structured,
        is_error=error,
    )


def _error(e: Exception) -> str:
    return "".join(traceback.format_exception_only(type(e), e)).strip()


def _user_error(e: Exception | str) -> Exception:
    """An MCP error response: the scenario's own message, or the exception's type and message."""
    from mcp.shared.exceptions import MCPError

    from workbench.errors import WorkbenchError

    message = str(e) if isinstance(e, str | ScenarioError | WorkbenchError) else _error(e)
    return MCPError(code=types.INVALID_PARAMS, message=message)


# -- scenarios as prompts and resources ------------------------------------------------------


def scenario_id(env: Environment, scenario: str) -> str:
    """The name of a scenario's prompt and the URI of its resource: ``ENV:SCENARIO``."""
    return f"{env.name}:{scenario}"


def _prompt(env: Environment, scenario: Scenario) -> types.Prompt:
    """A scenario as a prompt; its ``_meta`` lists the arguments as HUD's do, with types."""
    schema = scenario.arguments.model_json_schema()
    arguments, infos = [], []
    for name, field in scenario.arguments.model_fields.items():
        prop, required = schema.get("properties", {}).get(name, {}), field.is_required()
        info: dict[str, Any] = {"name": name, "required": required}
        kind = f"one of {', '.join(map(str, prop['enum']))}" if "enum" in prop else None
        kind = kind or prop.get("type") or "JSON"
        if not required:
            info["default"] = json.loads(json.dumps(field.default, default=str))
            kind += f"; default {json.dumps(info['default'])}"
        info.update({"type": prop["type"]} if "type" in prop else {"inputSchema": prop})
        infos.append(info)
        description = " ".join(p for p in (field.description, f"({kind})") if p)
        arguments.append(
            types.PromptArgument(name=name, description=description, required=required)
        )
    return types.Prompt(
        name=scenario_id(env, scenario.name),
        description=scenario.description or None,
        arguments=arguments,
        _meta={"arguments": infos, "schema": schema},
    )


def _resource(env: Environment, scenario: Scenario) -> types.Resource:
    return types.Resource(
        uri=scenario_id(env, scenario.name),
        name=scenario.name,
        description=f"Evaluation of a run of '{scenario.name}': read after {SUBMIT}.",
        mime_type="application/json",
    )


def _typed_arguments(scenario: Scenario, raw: dict[str, Any]) -> dict[str, Any]:
    """Prompt arguments (strings, as MCP sends them) as the scenario's declared types.

    A string the argument's type accepts stays as it is (pydantic reads ``"3"`` as 3 and
    ``"true"`` as True); otherwise it is read as JSON (lists, objects). The scenario's own
    validation then names any argument that is still wrong.
    """
    typed: dict[str, Any] = {}
    for name, value in raw.items():
        field = scenario.arguments.model_fields.get(name)
        typed[name] = value
        if field is None or not isinstance(value, str):
            continue
        try:
            pydantic.TypeAdapter(field.annotation).validate_python(value)
        except Exception:
            try:
                typed[name] = json.loads(value)
            except json.JSONDecodeError:
                pass
    return scenario.validate(typed)


def _prompt_message(message: dict[str, Any]) -> types.PromptMessage:
    # MCP prompts know two roles: a system message reaches the client as a user message.
    role = "assistant" if message.get("role") == "assistant" else "user"
    content = message.get("content")
    if isinstance(content, list):  # OpenAI content parts: the text parts
        content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return types.PromptMessage(role=role, content=types.TextContent(text=str(content or "")))


def _answer_text(answer: Any) -> str | None:
    """A submitted answer: HUD clients send ``{"content": ...}`` as JSON, others plain text."""
    if isinstance(answer, str) and answer.lstrip().startswith("{"):
        try:
            answer = json.loads(answer)
        except json.JSONDecodeError:
            return answer
    if isinstance(answer, dict):
        return str(answer.get("content", "")) if "content" in answer else json.dumps(answer)
    return answer if answer is None else str(answer)


# -- the run of one connection ----------------------------------------------------------------


class _Run:
    """The run of one connection: its episode, submitted answer and evaluation.

    ``open_run(scenario, args)`` makes the episode, in whatever runtime the server plays its
    runs in; an empty scenario is a run of the tools alone.
    """

    def __init__(self, open_run: Callable[[str, dict[str, Any]], Any]):
        self._open = open_run
        self.episode: Any = None
        self.scenario: str | None = None  # the started run's scenario; None: tools only
        self.answer: str | None = None
        self.evaluation: dict[str, Any] | None = None

    async def end(self) -> None:
        if self.episode is not None:
            episode, self.episode = self.episode, None
            try:
                await episode.close()
            except Exception:
                pass

    async def start(self, scenario: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        """A fresh run of a scenario (``""``: of the tools alone); returns the prompt messages."""
        await self.end()
        self.scenario, self.answer, self.evaluation = None, None, None
        episode = self._open(scenario, args)
        try:
            messages = await episode.start()
        except BaseException:
            try:
                await episode.close()
            except Exception:
                pass
            raise
        self.episode, self.scenario = episode, scenario or None
        return messages

    def _started(self, scenario: str | None = None) -> Any:
        if self.episode is None or self.scenario is None:
            raise ScenarioError(
                "no run in progress on this connection: get a scenario's prompt first"
            )
        if scenario is not None and scenario.split(":")[-1] != self.scenario:
            raise ScenarioError(
                f"the run in progress is of scenario '{self.scenario}', not '{scenario}'"
            )
        return self.episode

    async def grade(self, answer: str | None) -> dict[str, Any]:
        reward, info = await self._started().grade(answer)
        return {"reward": reward, "info": info}

    def submit(self, scenario: str, answer: Any) -> str:
        self._started(scenario)
        if self.evaluation is not None:
            raise ScenarioError(f"the run of '{self.scenario}' is already graded")
        self.answer = _answer_text(answer)
        return f"Answer submitted for scenario '{self.scenario}'"

    async def evaluate(self, scenario: str) -> dict[str, Any]:
        """The run graded with the submitted answer, once; HUD's ``EvaluationResult`` shape."""
        self._started(scenario)
        if self.evaluation is None:
            graded = await self.grade(self.answer)
            reason = graded["info"].get("content") or graded["info"].get("reason")
            self.evaluation = {
                "reward": graded["reward"],
                "done": True,
                **({"content": reason} if isinstance(reason, str) else {}),
                "info": graded["info"],
                "isError": False,
            }
        return self.evaluation

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        if self.episode is None:  # a client that only uses the tools: a fresh run of its own
            await self.start("", {})
        outcome = await self.episode.call_tool(name, arguments)
        return _text(outcome.content, error=outcome.error)


def _opener(env: Environment, runtime: str | None, *, sandboxed: bool):
    """How a server makes each run: ``open_run(scenario, args)`` -> a not yet started episode.

    ``sandboxed``: this process is itself a run's sandbox (the server that the subprocess and
    docker runtimes start), so the run plays here. Otherwise the run goes where
    ``workbench eval`` would send it (:func:`workbench.runtimes.choose_runtime`): an
    environment that keeps state in ``state=`` plays in this process, a HUD-style one (state
    in module globals) in a fork of its own, a code environment in a container; one that
    refuses the in-process runtime never plays here. A refused runtime fails now, at start.
    """
    from workbench.runtimes import choose_runtime, open_episode
    from workbench.tasks import Task

    chosen = "inprocess" if sandboxed else choose_runtime(env, runtime)

    def open_run(scenario: str, args: dict[str, Any]) -> Any:
        found = env.get_scenario(scenario) if scenario else None
        args = found.validate(args) if found else {}  # a bad argument is named here
        if chosen == "inprocess":
            return Episode(env, found, args)
        return open_episode(Task(env=env.ref, scenario=scenario, args=args), chosen)

    return open_run


class _Runs:
    """Where each connection's run lives: the one run of a stdio process, or its session's."""

    def __init__(self, open_run: Callable[[str, dict[str, Any]], Any], *, per_session: bool):
        self._open = open_run
        self.single = None if per_session else _Run(open_run)

    def of(self, ctx: Any) -> _Run:
        if self.single is not None:
            return self.single
        # mcp 2.3 keeps per-connection state on the `Connection` (its `state`, and an
        # `exit_stack` unwound when the session ends) but hands lowlevel handlers only the
        # per-request session that wraps it.
        connection = ctx.session._connection
        run = connection.state.get("workbench_run")
        if run is None:
            run = connection.state["workbench_run"] = _Run(self._open)
            connection.exit_stack.push_async_callback(run.end)
        return run

    async def end(self) -> None:
        if self.single is not None:
            await self.single.end()


# -- the server -------------------------------------------------------------------------------


def build_server(
    env: Environment,
    *,
    per_session: bool = False,
    runtime: str | None = None,
    sandboxed: bool = False,
):
    """An MCP server (``mcp.server.lowlevel.Server``) for one environment.

    ``per_session``: one run per MCP session (HTTP) instead of one for the whole server (stdio).
    ``runtime``: where runs play (None: the environment's own default, as in ``workbench
    eval``); ``sandboxed``: in this process, which is itself a run's sandbox (see
    :func:`_opener`). Raises :class:`~workbench.runtimes.RuntimeRefused` for a runtime the
    environment refuses.
    """
    from mcp.server.lowlevel import Server

    runs = _Runs(_opener(env, runtime, sandboxed=sandboxed), per_session=per_session)
    tools = [
        types.Tool(name=t.name, description=t.description or None, input_schema=t.parameters)
        for t in env.tools.values()
    ]
    prompts = [_prompt(env, s) for s in env.scenarios.values()]
    resources = [_resource(env, s) for s in env.scenarios.values()]

    def scenario_of(name: str) -> Scenario:
        # `ENV:SCENARIO` as listed; the bare scenario name too, as HUD's clients accept it.
        env_name, _, scenario = name.rpartition(":")
        if env_name not in ("", env.name) or scenario not in env.scenarios:
            known = ", ".join(scenario_id(env, s) for s in env.scenarios) or "none"
            raise _user_error(f"'{env.name}' has no scenario '{name}' (it has: {known})")
        return env.scenarios[scenario]

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        run, arguments = runs.of(ctx), params.arguments or {}
        try:
            if params.name == START:
                messages = await run.start(arguments["scenario"], arguments.get("args") or {})
                # The scenario's tools: those it hides (exclude_tools) are not offered.
                return _text({"messages": messages, "tools": run.episode.tool_schemas})
            if params.name == GRADE:
                return _text(await run.grade(arguments.get("answer")))
            if params.name == END:
                await run.end()
                return _text({"ended": True})
            if params.name == SUBMIT:
                return _text(run.submit(str(arguments.get("scenario")), arguments.get("answer")))
        except Exception as e:  # the client raises it as the run's error
            return _text(_error(e), error=True)
        return await run.call_tool(params.name, arguments)

    async def list_prompts(ctx, params) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=prompts)

    async def get_prompt(ctx, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        scenario = scenario_of(params.name)
        try:
            args = _typed_arguments(scenario, params.arguments or {})
            messages = await runs.of(ctx).start(scenario.name, args)
        except Exception as e:  # a bad argument is named; a broken scenario says what broke
            raise _user_error(e) from None
        return types.GetPromptResult(
            description=scenario.description or None,
            messages=[_prompt_message(m) for m in messages],
        )

    async def list_resources(ctx, params) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=resources)

    async def read_resource(
        ctx, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        scenario = scenario_of(params.uri)
        try:
            evaluation = await runs.of(ctx).evaluate(scenario.name)
        except Exception as e:
            raise _user_error(e) from None
        text = json.dumps(evaluation, default=str)
        contents = types.TextResourceContents(
            uri=params.uri, mime_type="application/json", text=text
        )
        return types.ReadResourceResult(contents=[contents])

    server = Server(
        f"workbench-{env.name}",
        description=env.description or None,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
    )
    server.workbench_runs = runs  # the stdio run is ended when its connection ends
    return server


async def serve_stdio(
    env: Environment, *, runtime: str | None = None, sandboxed: bool = False
) -> None:
    """Serve one connection on stdin/stdout until the client closes it."""
    from mcp.server.stdio import stdio_server

    server = build_server(env, runtime=runtime, sandboxed=sandboxed)
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await server.workbench_runs.end()


# -- who may connect over HTTP -----------------------------------------------------------------


def new_token() -> str:
    """A fresh bearer token for a server started without one."""
    return "mcp-" + secrets.token_urlsafe(24)


def http_token(token: str | None = None) -> tuple[str, str]:
    """The token an HTTP server asks for, and how to show it: the one given, else
    ``$WORKBENCH_MCP_TOKEN`` (shown by name: a secret set there stays out of logs), else a
    fresh one. An empty token would let everyone in: a one-line error."""
    from workbench.errors import WorkbenchError

    if token is None and os.environ.get(TOKEN_VARIABLE) is not None:
        token, shown = os.environ[TOKEN_VARIABLE], f"${TOKEN_VARIABLE}"
    elif token is None:
        token = new_token()
        shown = token
    else:
        shown = token
    if not token.strip():
        raise WorkbenchError(
            f"the MCP token is empty ({TOKEN_VARIABLE}): give a real one, or unset it for a "
            "fresh one"
        )
    return token, shown


class _BearerToken:
    """ASGI middleware: an HTTP request without ``Authorization: Bearer TOKEN`` gets 401.

    Outside the SDK's app, whose own Host and Origin checks (DNS rebinding) still apply.
    """

    def __init__(self, app: Any, token: str):
        self.app, self.token = app, token.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            from starlette.datastructures import Headers
            from starlette.responses import JSONResponse

            given = Headers(scope=scope).get("authorization", "")
            token = given[7:].strip() if given[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(token.encode(), self.token):
                message = (
                    "missing or wrong token: send the header 'Authorization: Bearer TOKEN' "
                    "that the server printed when it started"
                )
                response = JSONResponse(
                    {"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": message}},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="workbench-mcp"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def serve_http(
    env: Environment,
    sock: socket.socket,
    *,
    token: str | None,
    shown: str | None = None,
    runtime: str | None = None,
) -> None:
    """Serve over streamable HTTP on a bound socket until stopped (Ctrl-C, SIGTERM).

    ``token``: what every request's ``Authorization: Bearer`` must say (None: anyone may
    call); ``shown``: how the printed header shows it.
    """
    try:
        import uvicorn
    except ImportError as e:
        from workbench.errors import missing_extra

        raise missing_extra("gateway", "serving over HTTP", e) from None

    host, port = sock.getsockname()[:2]
    server = build_server(env, per_session=True, runtime=runtime)
    # The SDK turns on DNS-rebinding protection for a loopback host (Host and Origin checked).
    app = server.streamable_http_app(host=host)
    if token is not None:
        app = _BearerToken(app, token)
    web = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    sock.listen(128)  # clients that connect now wait in the backlog, not refused
    print(f"serving '{env.name}' over MCP at http://{host}:{port}/mcp", file=sys.stderr)
    if token is None:
        print("no token: anyone who can reach this port can call its tools", file=sys.stderr)
    else:
        print(f"Authorization: Bearer {shown or token}", file=sys.stderr)
    sys.stderr.flush()
    await web.serve(sockets=[sock])


def serve(
    env: str | Environment,
    transport: str = "stdio",
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    no_token: bool = False,
    runtime: str | None = None,
) -> None:
    """Serve an environment (or its reference) over MCP: ``stdio``, or ``http`` at
    ``http://HOST:PORT/mcp`` (port 0: any free one).

    Over HTTP every request needs ``Authorization: Bearer TOKEN``: ``token``, else
    ``$WORKBENCH_MCP_TOKEN``, else a fresh one; the address and the header to send are
    printed on stderr once it listens. ``no_token=True`` lets anyone who reaches the port in.
    Runs play in ``runtime`` (None: the environment's default, as in ``workbench eval``).
    """
    import anyio

    from workbench.errors import WorkbenchError
    from workbench.runtimes import choose_runtime
    from workbench.tasks import resolve_environment

    if transport not in ("stdio", "http"):
        raise WorkbenchError(f"unknown transport '{transport}': use stdio or http")
    found = resolve_environment(env) if isinstance(env, str) else env
    if transport == "stdio":
        choose_runtime(found, runtime)  # a refused runtime: one line, before serving
        anyio.run(lambda: serve_stdio(found, runtime=runtime))
        return
    if no_token and token is not None:
        raise WorkbenchError("a token and no_token contradict each other: drop one")
    shown = None
    if not no_token:
        token, shown = http_token(token)
    choose_runtime(found, runtime)
    # Bound here, not by uvicorn, so a busy port is a one-line error (uvicorn would exit).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise WorkbenchError(
            f"cannot serve on {host}:{port}: {e.strerror} (--port 0 takes any free port)"
        ) from None
    anyio.run(lambda: serve_http(found, sock, token=token, shown=shown, runtime=runtime))


def main(ref: str, *flags: str) -> None:
    """Entry point of a server process that the subprocess and docker runtimes start: resolve
    the environment, serve it on stdio, and play its runs in this process (the process, or
    its container, is the run's sandbox).

    ``--private-cwd``: once the environment is imported (from the directory it was started
    in), the run goes on in a new empty directory, removed at the end: files the run
    writes are its own, as in the isolated runtime, and never land where later servers
    start."""
    import anyio

    from workbench.tasks import resolve_environment

    found = resolve_environment(ref)
    if "--private-cwd" not in flags:
        anyio.run(lambda: serve_stdio(found, sandboxed=True))
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="workbench-run-") as workdir:
        os.chdir(workdir)
        anyio.run(lambda: serve_stdio(found, sandboxed=True))
