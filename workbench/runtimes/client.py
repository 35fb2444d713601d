"""An episode whose environment runs behind an MCP server (a child process or a container).

The MCP session lives in a task of its own, so the transport's cancel scopes never wrap the
caller's code; ``close()`` ends the session and its transport (which stops the process or
removes the container) however the run ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from workbench.episode import ScenarioError, ToolOutcome, parse_arguments, parse_reward
from workbench.runtimes.mcp_server import CONTROL_TOOLS, END, GRADE, START
from workbench.tasks import Task

CLOSE_TIMEOUT = 10.0


class McpEpisode:
    """One run of a task in an environment server; the interface of ``Episode``."""

    def __init__(
        self,
        task: Task,
        transport: Callable[[], AbstractAsyncContextManager],
        *,
        runtime: str,
        call_timeout: float | None = None,
    ):
        self.task = task
        self.runtime = runtime
        self.tool_schemas: list[dict[str, Any]] = []
        self._transport = transport
        self._call_timeout = call_timeout
        self._session = None
        self._owner: asyncio.Task | None = None
        self._stop = asyncio.Event()

    async def _own(self, ready: asyncio.Future) -> None:
        from mcp.client.session import ClientSession

        try:
            async with self._transport() as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    self._session = session
                    ready.set_result(None)
                    await self._stop.wait()
        except BaseException as e:
            if not ready.done():
                ready.set_exception(e if isinstance(e, Exception) else RuntimeError(repr(e)))
            raise
        finally:
            self._session = None

    async def _connect(self) -> None:
        ready = asyncio.get_running_loop().create_future()
        self._owner = asyncio.create_task(self._own(ready), name=f"mcp-{self.task.slug}")
        self._owner.add_done_callback(lambda t: t.cancelled() or t.exception())
        await ready

    async def _call(self, name: str, arguments: dict[str, Any]):
        if self._session is None:
            raise ScenarioError(f"the {self.runtime} environment server is not connected")
        return await self._session.call_tool(
            name, arguments, read_timeout_seconds=self._call_timeout
        )

    async def _control(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        import mcp_types as types

        if self._session is None:
            raise ScenarioError(f"the {self.runtime} environment server is not connected")
        # The control tools are not listed, so they go as plain requests: `call_tool` would
        # list the tools again after each one to look for its output schema, and log a warning.
        request = types.CallToolRequest(
            params=types.CallToolRequestParams(name=name, arguments=arguments)
        )
        result = await self._session.send_request(
            request, types.CallToolResult, request_read_timeout_seconds=self._call_timeout
        )
        text = "".join(getattr(c, "text", "") for c in result.content)
        if result.is_error:
            raise ScenarioError(text)
        return result.structured_content or json.loads(text)

    async def start(self) -> list[dict[str, Any]]:
        """Start the server, then the scenario; returns the prompt messages."""
        await self._connect()
        started = await self._control(
            START, {"scenario": self.task.scenario, "args": self.task.args}
        )
        self.tool_schemas = started["tools"]
        return started["messages"]

    async def call_tool(self, name: str, arguments: str | dict[str, Any] | None) -> ToolOutcome:
        # Only the tools the run was offered: the server also answers its control calls
        # (start, grade, end) and tools the scenario hides, which a model must never reach
        # (restart the run on an easy task, ask the grader, call a hidden tool).
        offered = {t["function"]["name"] for t in self.tool_schemas}
        if name not in offered or name in CONTROL_TOOLS:
            known = ", ".join(sorted(offered)) or "none"
            return ToolOutcome(f"Error: unknown tool '{name}'. Available tools: {known}.", True)
        arguments = parse_arguments(name, arguments)
        if isinstance(arguments, ToolOutcome):
            return arguments
        result = await self._call(name, arguments)
        text = "".join(getattr(c, "text", "") for c in result.content)
        return ToolOutcome(text, bool(result.is_error))

    async def grade(self, answer: str | None) -> tuple[float, dict[str, Any]]:
        graded = await self._control(GRADE, {"answer": answer})
        return parse_reward(graded, self.task.scenario)

    async def close(self) -> None:
        """End the run and the server; safe to call more than once, and after a failure."""
        owner, self._owner = self._owner, None
        if owner is None:
            return
        cancelled = None
        if self._session is not None and not owner.done():
            try:
                async with asyncio.timeout(2):
                    await self._control(END, {})
            except asyncio.CancelledError as e:
                cancelled = e
            except Exception:  # a dead server: the transport still cleans up
                pass
        self._stop.set()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await asyncio.shield(owner)
        except asyncio.CancelledError as e:
            cancelled = e
        except Exception:
            pass
        if not owner.done():
            owner.cancel()
            with contextlib.suppress(BaseException):
                await owner
        if cancelled is not None:
            raise cancelled
