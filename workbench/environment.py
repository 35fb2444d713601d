"""Environments: tools plus scenarios, with a fresh state object per run.

```python
env = Environment("shop", state=Shop)

@env.tool
def search(state: Shop, query: str) -> list[dict]:
    '''Search the catalogue.

    Args:
        query: words to look for in product names.
    '''
    return state.search(query)

@env.scenario("checkout")
async def checkout(state: Shop, product_name: str, apply_coupon: bool = False):
    answer = yield f"Buy {product_name}"
    yield 1.0 if state.order_confirmed(product_name, apply_coupon) else 0.0
```

This module declares (tools, scenarios, their schemas); :mod:`workbench.episode` runs an
episode, :mod:`workbench.references` resolves references. A tool or scenario receives the run's state by declaring a parameter named ``state`` or one
annotated with the state's class; every other parameter is an argument, validated by pydantic
from the signature. Tool exceptions become error results that the model sees.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import docstring_parser
import pydantic

from workbench.episode import Episode, call_tool_in, claude_tools
from workbench.errors import ScenarioArgumentError, ToolArgumentError, UnknownScenarioError
from workbench.references import _LOCAL_ENVIRONMENTS, claim_name, find_ref

if TYPE_CHECKING:
    from workbench.tasks import Task


def _state_param(fn: Callable, state_type: Any) -> str | None:
    """The name of the parameter that receives the run's state, if the function declares one."""
    for name, param in inspect.signature(fn).parameters.items():
        if name == "state":
            return name
        if state_type is not None and isinstance(state_type, type):
            annotation = param.annotation
            if annotation is state_type or annotation == getattr(state_type, "__name__", None):
                return name
    return None


def _arguments_model(fn: Callable, skip: str | None, descriptions: dict[str, str]):
    """A pydantic model of a function's arguments, from its signature and type hints."""
    hints = _type_hints(fn)
    fields: dict[str, Any] = {}
    for name, param in inspect.signature(fn).parameters.items():
        if name == skip or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(name, Any)
        default = ... if param.default is param.empty else param.default
        fields[name] = (
            annotation,
            pydantic.Field(default, description=descriptions.get(name) or None),
        )
    config = pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    return pydantic.create_model(f"{fn.__name__}_arguments", __config__=config, **fields)


def _type_hints(fn: Callable) -> dict[str, Any]:
    try:
        import typing

        return typing.get_type_hints(fn, include_extras=True)
    except Exception:  # unresolvable forward references: fall back to the raw annotations
        return {
            k: v for k, v in getattr(fn, "__annotations__", {}).items() if not isinstance(v, str)
        }


def _clean_schema(schema: Any) -> Any:
    """Drop pydantic's titles: they add tokens to every prompt and tell the model nothing.

    Only the ``title`` keyword goes; an argument that happens to be named ``title`` stays.
    """
    if isinstance(schema, dict):
        cleaned = {}
        for key, value in schema.items():
            if key == "title" and isinstance(value, str):
                continue
            if key in ("properties", "$defs") and isinstance(value, dict):
                cleaned[key] = {name: _clean_schema(sub) for name, sub in value.items()}
            else:
                cleaned[key] = _clean_schema(value)
        return cleaned
    if isinstance(schema, list):
        return [_clean_schema(v) for v in schema]
    return schema


def _argument_errors(error: pydantic.ValidationError) -> dict[str, str]:
    """Argument name -> what is wrong with it, one line each."""
    found: dict[str, str] = {}
    for item in error.errors():
        name = ".".join(str(p) for p in item["loc"]) or "arguments"
        if item["type"] == "missing":
            found[name] = f"argument '{name}' is required"
        elif item["type"] == "extra_forbidden":
            found[name] = f"unknown argument '{name}'"
        else:
            found[name] = f"argument '{name}': {item['msg']} (got {item.get('input')!r})"
    return found


def _describe_validation_error(owner: str, error: pydantic.ValidationError) -> str:
    return f"{owner}: " + "; ".join(_argument_errors(error).values())


@dataclass
class Tool:
    """A function the agent can call; its JSON schema is derived from the signature."""

    name: str
    description: str
    fn: Callable
    arguments: type[pydantic.BaseModel]
    state_param: str | None
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def schema(self) -> dict[str, Any]:
        """The tool as an OpenAI function tool."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    async def call(self, state: Any, arguments: dict[str, Any]) -> Any:
        """Validate the arguments and call the tool; raises on bad arguments or tool errors."""
        try:
            values = self.arguments.model_validate(arguments)
        except pydantic.ValidationError as e:
            raise ToolArgumentError(_describe_validation_error(self.name, e)) from None
        kwargs = {name: getattr(values, name) for name in type(values).model_fields}
        if self.state_param:
            kwargs[self.state_param] = state
        result = self.fn(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


@dataclass
class Scenario:
    """An async generator with two yields: the prompt, then the reward.

    Calling a scenario with arguments makes a :class:`~workbench.tasks.Task`.
    """

    env: Environment
    name: str
    fn: Callable
    arguments: type[pydantic.BaseModel]
    state_param: str | None
    description: str = ""
    exclude_tools: list[str] = field(default_factory=list)
    allowed_tools: list[str] = field(default_factory=list)

    def __call__(self, slug: str | None = None, **args: Any) -> Task:
        return self.env.task(self.name, slug=slug, **args)

    def task(self, slug: str | None = None, **args: Any) -> Task:
        """A task of this scenario (HUD: ``checkout.task(product_name="laptop")``)."""
        return self.env.task(self.name, slug=slug, **args)

    def offers(self, tool: str) -> bool:
        """Whether the agent sees this tool in this scenario (``exclude_tools`` and
        ``allowed_tools`` are fnmatch patterns, as in HUD)."""
        from fnmatch import fnmatch

        if any(fnmatch(tool, p) for p in self.allowed_tools):
            return True
        return not any(fnmatch(tool, p) for p in self.exclude_tools)

    @property
    def parameters(self) -> dict[str, pydantic.fields.FieldInfo]:
        """Argument name -> pydantic field (annotation, default, description): for forms."""
        return dict(self.arguments.model_fields)

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check arguments against the signature; returns them coerced to the declared types.

        Raises :class:`ScenarioArgumentError` with a one-line message naming the argument.
        """
        try:
            values = self.arguments.model_validate(args)
        except pydantic.ValidationError as e:
            raise ScenarioArgumentError(
                _describe_validation_error(f"scenario '{self.name}'", e), _argument_errors(e)
            ) from None
        return values.model_dump(mode="json", exclude_unset=True)


def warn_ignored(what: str, options: dict[str, Any], stacklevel: int) -> None:
    """Warn, once per call, about HUD options that are set and that Workbench ignores."""
    ignored = [k for k, v in options.items() if v is not None]
    if ignored:
        import warnings

        warnings.warn(
            f"{what} options {', '.join(map(repr, ignored))} are not supported by Workbench "
            "and are ignored",
            stacklevel=stacklevel,
        )


class Environment:
    """Tools and scenarios over a state object that is created fresh for every run.

    Args:
        name: short name, shown in traces and tasksets.
        state: a class or zero-argument factory called once per run (None: no state).
        description: one line for listings.
        runtime: where its runs go unless a job says otherwise: ``isolated``, ``inprocess``,
            ``subprocess`` or ``docker`` (see :mod:`workbench.runtimes`). None: ``inprocess``
            when ``state`` is given (per-run state lives there), else ``isolated`` (a fresh
            forked copy of the environment per run, so module globals are never shared).
        allow_inprocess: False for an environment that runs untrusted code: it then refuses
            the in-process runtime.
    """

    def __init__(
        self,
        name: str = "environment",
        state: Callable[[], Any] | None = None,
        description: str = "",
        *,
        runtime: str | None = None,
        allow_inprocess: bool = True,
        instructions: str | None = None,
        version: str | None = None,
        **hud_options: Any,
    ):
        # HUD's `instructions` are its MCP server's: a description of the environment. Its
        # v6 `capabilities` (None: the default) and v5 `conflict_resolution` change nothing
        # here; one that is set is said so.
        warn_ignored("Environment", hud_options, stacklevel=3)
        self.name = name
        self.state_factory = state
        self.description = description or instructions or ""
        self.instructions = instructions
        self.version = version
        self.runtime = runtime
        self.allow_inprocess = allow_inprocess
        self.tools: dict[str, Tool] = {}
        self.scenarios: dict[str, Scenario] = {}
        self.policies: dict[str, Callable] = {}
        self._initializers: list[Callable] = []
        self._finalizers: list[Callable] = []
        self._initialized_in: int | None = None  # the pid whose hooks ran (forks inherit)
        self._manual: Episode | None = None  # the state of `async with env:` (by hand)
        self._module = sys._getframe(1).f_globals.get("__name__", "__main__")
        self._ref: str | None = None
        claim_name(self)
        _LOCAL_ENVIRONMENTS[name] = self

    @property
    def default_runtime(self) -> str:
        """Where runs go when a job names no runtime (see the class docstring)."""
        if self.runtime:
            return self.runtime
        return "inprocess" if self.state_factory is not None else "isolated"

    def __repr__(self) -> str:
        return (
            f"Environment({self.name!r}, tools={list(self.tools)}, "
            f"scenarios={list(self.scenarios)})"
        )

    # -- registration -------------------------------------------------------------------

    def tool(
        self,
        fn: Callable | str | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        **hud_options: Any,
    ):
        """Register a tool. Use as ``@env.tool``, ``@env.tool()``, ``@env.tool("lookup")`` or
        ``@env.tool(name="...", description="...")`` (the description replaces the
        docstring's). HUD's other options (``annotations``, ...) are ignored with a warning."""
        if isinstance(fn, str):  # @env.tool("lookup"), as FastMCP and HUD allow
            fn, name = None, fn
        if hud_options:
            import warnings

            warnings.warn(
                f"tool options {', '.join(map(repr, hud_options))} are not supported by "
                "Workbench and are ignored",
                stacklevel=2,
            )

        def register(fn: Callable) -> Callable:
            doc = docstring_parser.parse(inspect.getdoc(fn) or "")
            descriptions = {p.arg_name: p.description or "" for p in doc.params}
            state_param = _state_param(fn, self.state_factory)
            model = _arguments_model(fn, state_param, descriptions)
            described = "\n\n".join(
                part for part in (doc.short_description, doc.long_description) if part
            )
            tool = Tool(
                name=name or fn.__name__,
                description=described if description is None else description,
                fn=fn,
                arguments=model,
                state_param=state_param,
                parameters=_clean_schema(model.model_json_schema()),
            )
            self.tools[tool.name] = tool
            return fn

        return register(fn) if fn is not None else register

    def scenario(
        self,
        name: str | None = None,
        *,
        description: str = "",
        exclude_tools: list[str] | None = None,
        allowed_tools: list[str] | None = None,
        **hud_options: Any,
    ):
        """Register a scenario: an async generator that yields the prompt, then the reward.

        ``@env.scenario``, ``@env.scenario()`` and ``@env.scenario("name")`` all work.
        ``exclude_tools`` hides tools from the agent (fnmatch patterns), ``allowed_tools``
        brings some back, as in HUD. HUD's other options (``chat``, ``returns``, ...) are not
        supported: they are ignored with a warning, never silently.
        """
        if hud_options:
            import warnings

            warnings.warn(
                f"scenario options {', '.join(map(repr, hud_options))} are not supported by "
                "Workbench and are ignored",
                stacklevel=2,
            )

        def register(fn: Callable) -> Scenario:
            if not inspect.isasyncgenfunction(fn):
                raise TypeError(
                    f"scenario '{name or fn.__name__}' must be an async generator function "
                    "(async def with two yields: the prompt, then the reward)"
                )
            doc = docstring_parser.parse(inspect.getdoc(fn) or "")
            descriptions = {p.arg_name: p.description or "" for p in doc.params}
            state_param = _state_param(fn, self.state_factory)
            scenario = Scenario(
                env=self,
                name=name or fn.__name__,
                fn=fn,
                arguments=_arguments_model(fn, state_param, descriptions),
                state_param=state_param,
                description=description or doc.short_description or "",
                exclude_tools=list(exclude_tools or []),
                allowed_tools=list(allowed_tools or []),
            )
            self.scenarios[scenario.name] = scenario
            return scenario

        if callable(name):  # bare @env.scenario
            fn, name = name, None
            return register(fn)
        return register

    def template(self, id: str | None = None, *, description: str = "", **hud_options: Any):  # noqa: A002 - HUD v6's parameter name
        """HUD v6's spelling of :meth:`scenario`: ``@env.template()`` or
        ``@env.template(id="count")``; calling the result mints a :class:`Task`."""
        if callable(id):
            return self.scenario(description=description)(id)
        return self.scenario(id, description=description, **hud_options)

    def initialize(self, fn: Callable) -> Callable:
        """Register a hook (sync or async, no arguments) run once per environment process,
        before its first run: load data, start a service. ``@env.initialize``."""
        self._initializers.append(fn)
        return fn

    def shutdown(self, fn: Callable) -> Callable:
        """Register a hook run when the environment process ends (reverse order of
        registration): ``@env.shutdown``. Also run when an ``async with env:`` block ends."""
        self._finalizers.append(fn)
        return fn

    async def run_initialize(self) -> None:
        """Run the initialize hooks, once per process (a forked copy inherits their work)."""
        import os

        if self._initialized_in is not None:
            return
        self._initialized_in = os.getpid()
        for hook in self._initializers:
            result = hook()
            if inspect.isawaitable(result):
                await result

    async def run_shutdown(self) -> None:
        """Run the shutdown hooks (if the initialize hooks ran), newest first."""
        if self._initialized_in is None:
            return
        self._initialized_in = None
        for hook in reversed(self._finalizers):
            result = hook()
            if inspect.isawaitable(result):
                await result

    async def __aenter__(self) -> Environment:
        await self.run_initialize()
        self._manual = Episode(self, None, {})
        await self._manual.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self._manual = None
        await self.run_shutdown()

    def policy(self, name: str):
        """Register a scripted policy, served as the model id ``scripted:NAME``.

        A policy is ``fn(ctx: PolicyContext) -> dict`` returning the next assistant message;
        see :mod:`workbench.models.scripted`.
        """

        def register(fn: Callable) -> Callable:
            self.policies[name] = fn
            return fn

        return register

    # -- MCP servers' tools, mounted (HUD v5's connectors) --------------------------------

    def connect_mcp(self, server: Any, *, prefix: str | None = None, **options: Any) -> Environment:
        """Mount the tools of an MCP server: a command (``["python", "server.py"]``), an
        ``http(s)://`` URL or HUD's ``mcp_config`` dict. ``prefix`` names them
        ``{prefix}_{tool}``; ``include`` / ``exclude`` (fnmatch patterns) choose which are
        mounted. See :mod:`workbench.mcp_mount`."""
        from workbench.mcp_mount import connect_mcp

        connect_mcp(self, server, name_prefix=prefix or options.pop("name_prefix", None), **options)
        return self

    def connect_mcp_config(self, mcp_config: dict[str, Any], **options: Any) -> Environment:
        """Mount every server of an ``mcp_config`` (``{"name": {"command": ..., "args": [...]}}``
        or ``{"name": {"url": ...}}``, as Claude Desktop writes it)."""
        for name, config in mcp_config.items():
            self.connect_mcp({name: config}, **options)
        return self

    def connect_url(self, url: str, **options: Any) -> Environment:
        """Mount the tools of an MCP server at an ``http(s)://`` URL (streamable HTTP)."""
        return self.connect_mcp(url, **options)

    # -- tasks ----------------------------------------------------------------------------

    def task(self, scenario: str, slug: str | None = None, **args: Any) -> Task:
        """Make a task from a scenario and its arguments, validated now."""
        from workbench.tasks import Task

        found = self.get_scenario(scenario)
        return Task(env=self.ref, scenario=found.name, args=found.validate(args), slug=slug or "")

    def __call__(self, scenario: str | None = None, slug: str | None = None, **args: Any) -> Task:
        """A task of one of this environment's scenarios: ``env("checkout", product="laptop")``
        (HUD's spelling of :meth:`task`). ``env()``: a task with tools only and no scenario,
        to drive the environment by hand (``async with workbench.eval(env()) as ctx``)."""
        if scenario is None:
            from workbench.tasks import Task

            if args:
                raise ScenarioArgumentError(
                    f"environment '{self.name}': arguments need a scenario, e.g. "
                    f"env('{next(iter(self.scenarios), 'name')}', ...)"
                )
            return Task(env=self.ref, scenario="", slug=slug or "")
        return self.task(scenario, slug=slug, **args)

    # -- driving the environment by hand, as in HUD: ``async with env: await env.call_tool()``

    def as_openai_chat_tools(self) -> list[dict[str, Any]]:
        """The tools in the OpenAI chat completions format."""
        return self.tool_schemas

    def as_claude_tools(self) -> list[dict[str, Any]]:
        """The tools in the Anthropic Messages format."""
        return claude_tools(self.tool_schemas)

    async def call_tool(self, call: Any, /, **arguments: Any) -> Any:
        """Call a tool in this process, on the state of the ``async with env:`` block.

        ``call`` is a tool name (with keyword arguments), an OpenAI tool call (object or
        dict) or an Anthropic ``tool_use`` block; the reply is in the matching format: a
        :class:`ToolResult`, an OpenAI tool message, or a ``tool_result`` block.
        """
        if self._manual is None:
            self._manual = Episode(self, None, {})
            await self._manual.start()
        return await call_tool_in(self._manual, call, arguments)

    def get_scenario(self, name: str) -> Scenario:
        try:
            return self.scenarios[name]
        except KeyError:
            known = ", ".join(self.scenarios) or "none"
            raise UnknownScenarioError(
                f"environment '{self.name}' has no scenario '{name}' (it has: {known})"
            ) from None

    @property
    def tool_schemas(self) -> list[dict[str, Any]]:
        return [tool.schema for tool in self.tools.values()]

    # -- how other processes find this environment ----------------------------------------

    @property
    def ref(self) -> str:
        """A reference any process can resolve: ``shop``, ``pkg.module:attr``, or the name."""
        if self._ref is None:
            self._ref = self._find_ref()
        return self._ref

    @ref.setter
    def ref(self, value: str) -> None:
        self._ref = value

    def _find_ref(self) -> str:
        ref = find_ref(self)
        # A task file run by `workbench eval tasks.py` (HUD v6's single-file layout) makes its
        # tasks while it is being imported under a private module name no other process can
        # import: name the file instead, which any process can (a fork server, a container).
        module, _, attr = ref.partition(":")
        if attr and module.startswith("_workbench_env_"):
            file = getattr(sys.modules.get(module), "__file__", None)
            if file:
                return f"{file}:{attr}"
        return ref

    # -- running --------------------------------------------------------------------------

    def new_state(self) -> Any:
        return self.state_factory() if self.state_factory is not None else None

    def episode(self, task: Task) -> Episode:
        """A fresh run of a task: new state, the scenario ready to be started."""
        scenario = self.get_scenario(task.scenario) if task.scenario else None
        return Episode(self, scenario, task.args)
