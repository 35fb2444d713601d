"""Mount the tools of any MCP server as tools of an environment.

```python
import sys
from workbench import Environment
from workbench.mcp_mount import connect_mcp

env = Environment("calc")
connect_mcp(env, [sys.executable, "tests/mcp_calculator_server.py"])  # stdio: a command
# connect_mcp(env, "http://127.0.0.1:8765/mcp")  # or streamable HTTP: a URL

@env.scenario("add")
async def add(a: int, b: int):
    answer = yield f"What is {a} + {b}? Use the add tool."
    yield 1.0 if answer == str(a + b) else 0.0
```

A server is a command (a list, or ``mcp.client.stdio.StdioServerParameters``), an
``http(s)://`` URL, or a HUD-style ``mcp_config`` (``{"name": {"command": ..., "args": [...]}}``
or ``{"name": {"url": ...}}``). ``name_prefix="calc"`` names the tools ``calc_add`` and so on,
as HUD's ``prefix`` does; tools whose names start with ``_`` are the server's own machinery
(``_hud_submit``) and are not mounted.

The tool list is fetched once, when ``connect_mcp`` is called, so the tools' schemas are known
when tasks are made and shown to models. A mounted tool keeps the server's own input schema;
its arguments go to the server as given, and the server validates them. Calls share one MCP
session per process and event loop, opened at the first call: a forked run process (the
``isolated`` runtime) or a new event loop opens its own, and the session ends with its loop.
Every run of a process therefore talks to the same server, so keep per-run state out of it,
or serve one per run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shlex
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pydantic

from workbench.environment import Environment, Tool, warn_ignored
from workbench.errors import WorkbenchError

LIST_TIMEOUT = 60.0  # seconds for the tool list at connect time: a hung server fails loudly


class McpToolError(RuntimeError):
    """A mounted tool answered with an error result; the model sees its text."""


class _Permissive(pydantic.BaseModel):
    """The arguments of a mounted tool: any object. The server checks its own schema."""

    model_config = pydantic.ConfigDict(extra="allow")


class McpTool(Tool):
    """A tool of a mounted MCP server: a call forwards its arguments, unchanged, to the server.

    ``Tool.call`` would pass on only the fields its arguments model declares; a mounted tool's
    schema is the server's, so the arguments go through whole.
    """

    async def call(self, state: Any, arguments: dict[str, Any]) -> Any:
        return await self.fn(**arguments)


class _Session:
    """A client session owned by a task of its own, so the transport's cancel scopes never
    wrap a caller's code; it ends when its event loop cancels the task at shutdown."""

    def __init__(self, transport: Callable[[], AbstractAsyncContextManager]):
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future = loop.create_future()
        self.owner = loop.create_task(self._own(transport), name="mcp-mount")
        self.owner.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _own(self, transport: Callable[[], AbstractAsyncContextManager]) -> None:
        from mcp.client.session import ClientSession

        try:
            async with transport() as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                self.ready.set_result(session)
                await asyncio.Event().wait()
        except BaseException as e:
            if not self.ready.done():
                failure = e if isinstance(e, Exception) else ConnectionError(repr(e))
                self.ready.set_exception(failure)
            raise

    def close(self) -> None:
        self.owner.cancel()


class McpServer:
    """One mounted server: how to reach it, and its client session per process and loop."""

    def __init__(self, transport: Callable[[], AbstractAsyncContextManager], label: str):
        self.transport = transport
        self.label = label
        self._sessions: dict[tuple[int, asyncio.AbstractEventLoop], _Session] = {}

    def __repr__(self) -> str:
        return f"McpServer({self.label!r})"

    def list_tools(self) -> list[Any]:
        """The server's tools (``mcp_types.Tool``), fetched over a session of their own."""
        from mcp.client.session import ClientSession
        from mcp_types import PaginatedRequestParams

        async def fetch() -> list[Any]:
            async with asyncio.timeout(LIST_TIMEOUT):
                async with self.transport() as (read, write), ClientSession(read, write) as s:
                    await s.initialize()
                    page = await s.list_tools()
                    tools = list(page.tools)
                    while page.next_cursor:
                        more = PaginatedRequestParams(cursor=page.next_cursor)
                        page = await s.list_tools(params=more)
                        tools += page.tools
                    return tools

        # A thread of its own gives the fetch its own event loop: `connect_mcp` runs at import
        # time, or in a notebook cell whose loop is already running.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            try:
                return pool.submit(asyncio.run, fetch()).result()
            except Exception as e:
                raise WorkbenchError(
                    f"cannot list the tools of the MCP server {self.label}: {_reason(e)}"
                ) from None

    async def session(self) -> Any:
        """This process's and this loop's session, opened at the first call."""
        key = (os.getpid(), asyncio.get_running_loop())
        found = self._sessions.get(key)
        if found is None or found.owner.done():
            # Sessions of finished loops go; a forked child leaves its parent's alone (another
            # pid: never matched), as dropping them would destroy tasks still pending there.
            for stale in [k for k in self._sessions if k[0] == key[0] and k[1].is_closed()]:
                del self._sessions[stale]
            found = self._sessions[key] = _Session(self.transport)
        try:
            return await asyncio.shield(found.ready)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            raise ConnectionError(f"cannot reach the MCP server {self.label}: {_reason(e)}") from e

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> str:
        """Call a tool; its text result, or :class:`McpToolError` with the server's message."""
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED

        session = await self.session()
        try:
            result = await session.call_tool(name, arguments)
        except MCPError as e:
            if e.code == CONNECTION_CLOSED:  # the server is gone: the next call starts it anew
                self._discard()
            raise McpToolError(e.message) from None
        text = _result_text(result)
        if result.is_error:
            raise McpToolError(text)
        return text

    def _discard(self) -> None:
        found = self._sessions.pop((os.getpid(), asyncio.get_running_loop()), None)
        if found is not None:
            found.close()


def _reason(e: BaseException) -> str:
    """The innermost message of an exception group (the transport's task groups wrap them)."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _result_text(result: Any) -> str:
    """A tool result as the model reads it: its text; other content named, not inlined."""
    import json

    parts = []
    for block in result.content:
        if block.type == "text":
            parts.append(block.text)
        else:  # images, audio, resources: base64 would only fill the context
            parts.append(f"[{block.type} {getattr(block, 'mime_type', None) or ''}]".strip())
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content)
    return "\n".join(parts)


def _transport(
    server: Any, headers: dict[str, str] | None = None
) -> tuple[Callable[[], AbstractAsyncContextManager], str]:
    """How to open a connection to a server, and how to name it in messages. ``headers`` go
    with every HTTP request (a bearer token, as HUD's ``mcp_config`` sends them)."""
    from mcp.client.stdio import StdioServerParameters, stdio_client

    if isinstance(server, dict):  # HUD's mcp_config: one server, by name
        config = next(iter(server.values()), None) if len(server) == 1 else None
        if isinstance(config, dict) and ("url" in config or "command" in config):
            if "url" in config:
                server = config["url"]
                headers = {**(config.get("headers") or {}), **(headers or {})}
            else:
                env = config.get("env")
                server = StdioServerParameters(
                    command=config["command"], args=list(config.get("args") or []), env=env
                )
        else:
            raise WorkbenchError(
                'an mcp_config names one server: {"name": {"command": ..., "args": [...]}} '
                'or {"name": {"url": ...}}'
            )
    if isinstance(server, str) and server.startswith(("http://", "https://")):
        from mcp.client.streamable_http import streamable_http_client

        url = server
        if not headers:
            return (lambda: streamable_http_client(url)), url
        sent = dict(headers)

        @asynccontextmanager
        async def with_headers():
            from mcp.shared._httpx_utils import create_mcp_http_client

            async with create_mcp_http_client(headers=sent) as client:
                async with streamable_http_client(url, http_client=client) as streams:
                    yield streams

        return with_headers, url
    if isinstance(server, list | tuple) and server and all(isinstance(a, str) for a in server):
        server = StdioServerParameters(command=server[0], args=list(server[1:]))
    if isinstance(server, StdioServerParameters):
        params = server
        label = shlex.join([params.command, *params.args])
        return (lambda: stdio_client(params)), f"`{label}`"
    raise WorkbenchError(
        f"cannot connect to MCP server {server!r}: give a command (a list of strings, or "
        "StdioServerParameters), an http(s):// URL, or an mcp_config dict"
    )


def connect_mcp(
    env: Environment,
    server: Any,
    *,
    name_prefix: str | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    headers: dict[str, str] | None = None,
    **hud_options: Any,
) -> list[McpTool]:
    """Mount the tools of an MCP server as tools of ``env``; returns the mounted tools.

    Args:
        env: the environment that gets the tools.
        server: a command (``["npx", "-y", "some-server"]`` or ``StdioServerParameters``), an
            ``http(s)://`` URL (streamable HTTP), or a HUD-style ``mcp_config`` dict.
        name_prefix: names the tools ``{name_prefix}_{tool}``, for servers whose tool names
            clash with the environment's or another server's.
        include, exclude: fnmatch patterns of the server's tool names to mount, or not
            (HUD's connector filters).
        headers: HTTP headers for a URL (``{"Authorization": "Bearer ..."}``); an
            ``mcp_config`` entry may carry its own ``headers``, as in HUD.

    HUD's other connector options (``alias``, ``transform``, ...) are not supported: ignored
    with a warning.
    """
    from fnmatch import fnmatch

    warn_ignored("connect", hud_options, stacklevel=4)
    transport, label = _transport(server, headers)
    mounted = McpServer(transport, label)
    prefix = f"{name_prefix.rstrip('_')}_" if name_prefix else ""
    tools = []
    for remote in mounted.list_tools():
        if remote.name.startswith("_"):
            continue
        if include is not None and not any(fnmatch(remote.name, p) for p in include):
            continue
        if exclude and any(fnmatch(remote.name, p) for p in exclude):
            continue
        name = prefix + remote.name
        if name in env.tools:
            raise WorkbenchError(
                f"the MCP server {label} has a tool '{remote.name}', and '{env.name}' already "
                "has a tool of that name: pass name_prefix= to connect_mcp"
            )
        tools.append(
            McpTool(
                name=name,
                description=remote.description or "",
                fn=_forward(mounted, remote.name),
                arguments=_Permissive,
                state_param=None,
                parameters=dict(remote.input_schema or {"type": "object", "properties": {}}),
            )
        )
    for tool in tools:  # all or nothing: a clash leaves the environment as it was
        env.tools[tool.name] = tool
    return tools


def _forward(server: McpServer, name: str) -> Callable:
    async def forward(**arguments: Any) -> str:
        return await server.call_tool(name, arguments)

    forward.__name__ = forward.__qualname__ = name
    return forward
