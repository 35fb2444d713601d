"""Serve an environment over MCP on stdio: ``workbench env serve shop``.

The environment's tools are MCP tools with their derived JSON schemas. Three more tools drive
its scenarios, with the run's state kept here, on the server side:

- ``workbench_start(scenario, args)``: a fresh state, the scenario run to its first yield;
  returns ``{"messages": [...], "tools": [...]}`` (the prompt as chat messages, and the tools
  in OpenAI format);
- ``workbench_grade(answer)``: the answer sent into the scenario; returns ``{"reward", "info"}``;
- ``workbench_end()``: closes the run.

One connection holds one run at a time; a tool called before any ``workbench_start`` acts on
a fresh state of its own. The runtimes (:mod:`workbench.runtimes`) start one server per run.
"""

from __future__ import annotations

import json
import traceback
from typing import Any

import mcp_types as types

from workbench.environment import Environment, Episode, ScenarioError

START, GRADE, END = "workbench_start", "workbench_grade", "workbench_end"
CONTROL_TOOLS = (START, GRADE, END)


def _text(value: Any, *, error: bool = False) -> types.CallToolResult:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    structured = value if isinstance(value, dict) else None
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=structured,
        is_error=error,
    )


def _control_tools(env: Environment) -> list[types.Tool]:
    scenarios = {
        name: {"description": s.description, "arguments": s.arguments.model_json_schema()}
        for name, s in env.scenarios.items()
    }
    return [
        types.Tool(
            name=START,
            description=(
                f"Start a run of one of the scenarios of '{env.name}': a fresh state, and the "
                "prompt to solve. Scenarios and their arguments: " + json.dumps(scenarios)
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "scenario": {"type": "string", "enum": list(env.scenarios)},
                    "args": {"type": "object"},
                },
                "required": ["scenario"],
            },
        ),
        types.Tool(
            name=GRADE,
            description="Send the final answer of the run into its scenario; returns the reward.",
            input_schema={"type": "object", "properties": {"answer": {"type": "string"}}},
        ),
        types.Tool(
            name=END,
            description="End the run and drop its state.",
            input_schema={"type": "object", "properties": {}},
        ),
    ]


class _Session:
    """The run of one connection."""

    def __init__(self, env: Environment):
        self.env = env
        self.episode: Episode | None = None

    async def end(self) -> None:
        if self.episode is not None:
            episode, self.episode = self.episode, None
            try:
                await episode.close()
            except Exception:
                pass

    async def start(self, scenario: str, args: dict[str, Any]) -> dict[str, Any]:
        await self.end()
        found = self.env.get_scenario(scenario)
        self.episode = Episode(self.env, found, found.validate(args))
        messages = await self.episode.start()
        return {"messages": messages, "tools": self.env.tool_schemas}

    async def grade(self, answer: str | None) -> dict[str, Any]:
        if self.episode is None or self.episode._gen is None:
            raise ScenarioError(f"{GRADE} called before {START}")
        reward, info = await self.episode.grade(answer)
        return {"reward": reward, "info": info}

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        if self.episode is None:  # a client that only uses the tools: a fresh state
            self.episode = Episode(self.env, None, {})  # type: ignore[arg-type]
            self.episode.state = self.env.new_state()
        outcome = await self.episode.call_tool(name, arguments)
        return _text(outcome.content, error=outcome.error)


def build_server(env: Environment):
    """An MCP server (``mcp.server.lowlevel.Server``) for one environment."""
    from mcp.server.lowlevel import Server

    session = _Session(env)
    tools = [
        types.Tool(name=t.name, description=t.description or None, input_schema=t.parameters)
        for t in env.tools.values()
    ] + _control_tools(env)

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments = params.arguments or {}
        try:
            if params.name == START:
                return _text(
                    await session.start(arguments["scenario"], arguments.get("args") or {})
                )
            if params.name == GRADE:
                return _text(await session.grade(arguments.get("answer")))
            if params.name == END:
                await session.end()
                return _text({"ended": True})
        except Exception as e:  # the client raises it as the run's error
            detail = "".join(traceback.format_exception_only(type(e), e)).strip()
            return _text(detail, error=True)
        return await session.call_tool(params.name, arguments)

    server = Server(
        f"workbench-{env.name}",
        description=env.description or None,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
    server.workbench_session = session  # closed when the connection ends
    return server


async def serve_stdio(env: Environment) -> None:
    """Serve one connection on stdin/stdout until the client closes it."""
    from mcp.server.stdio import stdio_server

    server = build_server(env)
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await server.workbench_session.end()


def main(ref: str) -> None:
    """Entry point of a server process: resolve the environment, serve it on stdio."""
    import anyio

    from workbench.tasks import resolve_environment

    anyio.run(serve_stdio, resolve_environment(ref))
