"""An Inspect ``Task`` as a Workbench :class:`~workbench.Environment`.

```python
env = build_environment(inspect_task, "inspect-capitals", grader="scripted:grader")
env.task("sample", input="What is the capital of France?", target="Paris", id="france")
```

Its tools are the task's ``use_tools`` tools, with Inspect's own names, descriptions and
JSON schemas. Its one scenario, ``sample``, takes a sample's fields (``input``, ``target``,
``id``, ``metadata``, ``choices``): it runs the task's setup solvers (``system_message``,
``prompt_template``, ...) on a fresh Inspect ``TaskState`` to make the prompt, then grades
the final answer and the conversation with the task's own scorers. Runs go in-process by
default (per-run state lives in ``state=``; Inspect shares a task's tool objects between
samples too), so a local grader model is loaded once.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect as pyinspect
import math
import re
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from inspect_ai import Task as InspectTask
from inspect_ai.dataset import Sample
from inspect_ai.model import ChatMessageAssistant, ChatMessageTool, ModelName, ModelOutput
from inspect_ai.scorer import Score, Target, value_to_float
from inspect_ai.solver import TaskState
from inspect_ai.tool import ToolCall, ToolCallError, ToolDef
from pydantic_core import to_jsonable_python

from workbench.environment import Environment, _arguments_model
from workbench.errors import WorkbenchError
from workbench.inspect_bridge.internals import (
    init_sample_store,
    init_scoring,
    is_registry_object,
    registry_params,
)
from workbench.inspect_bridge.loading import InspectTaskError, registry_name
from workbench.inspect_bridge.messages import message_records, messages_from_records, to_openai
from workbench.inspect_bridge.models import CURRENT_TASK, GRADER_USAGE, grader_model
from workbench.models import PolicyContext, answer
from workbench.tasks import Task

# Solvers that only set the prompt or the tools, run before the model takes over; then
# exactly one `generate()` (the Workbench agent loop), last.
SETUP_SOLVERS = (
    "system_message",
    "user_message",
    "assistant_message",
    "prompt_template",
    "chain_of_thought",
    "use_tools",
)
SUPPORTED_SOLVERS = (*SETUP_SOLVERS, "generate")


class InspectScoreError(WorkbenchError):
    """An Inspect scorer gave no usable reward for a run (unscored, or outside [0, 1])."""


class InspectRun:
    """One run's state: the Inspect task state and the tool calls made, in order."""

    def __init__(self) -> None:
        self.task_state: TaskState | None = None
        self.args: dict[str, Any] = {}
        self.calls: list[tuple[str, dict[str, Any], str, bool]] = []  # name, args, result, error


@dataclass
class InspectBridge:
    """What an environment built from an Inspect task runs: its setup solvers and scorers."""

    task: InspectTask
    setup: list[Callable]
    scorers: list[Callable]
    grader: str | None
    grader_max_tokens: int | None
    env: Environment | None = None
    _grader: Any = field(default=None, repr=False)
    metrics: dict[str, list[str] | None] = field(default_factory=dict, repr=False)

    async def begin(self, run: InspectRun, args: dict[str, Any]) -> list[dict[str, Any]]:
        """A fresh Inspect task state for the sample, through the setup solvers; the prompt."""
        run.args = args
        target = args.get("target", "")
        state = TaskState(
            model=ModelName("workbench/agent"),
            sample_id=args.get("id") or 0,
            epoch=1,
            input=_input(args["input"]),
            messages=messages_from_records(args["input"]),
            target=Target(target),
            choices=args.get("choices"),
            metadata=dict(args.get("metadata") or {}),
        )
        init_sample_store(state)  # tools that use Inspect's store() see this run's
        for solver in self.setup:
            state = await solver(state, _no_generate)
        run.task_state = state
        return to_openai(state.messages)

    async def grade(self, run: InspectRun, answer_text: str | None) -> dict[str, Any]:
        """The task's scorers on the answer and the conversation; the reward and its info."""
        state = run.task_state
        state.messages.extend(_conversation(run.calls, answer_text or ""))
        state.output = ModelOutput.from_content(str(state.model), answer_text or "")
        state.completed = True
        # A context of its own: Inspect's task context variables stay out of the run's.
        task = Task(env=self.env.ref, scenario="sample", args=run.args)
        scores, spent = await asyncio.create_task(
            self._score(state, task), context=contextvars.copy_context()
        )
        graded = reward_and_info(scores)
        # what each scorer reports (accuracy, mean, stderr): the export's metric names
        graded["info"]["metrics"] = {k: self.metrics.get(k) for k in scores}
        if spent:  # the grader's tokens on this run, by model
            graded["info"]["grader_usage"] = spent
        return graded

    async def _score(
        self, state: TaskState, task: Task
    ) -> tuple[dict[str, Score], dict[str, dict[str, int]]]:
        if self._grader is None:
            self._grader = grader_model(self.grader, self.grader_max_tokens)
        init_scoring(self._grader, state)
        CURRENT_TASK.set(task)
        spent: dict[str, dict[str, int]] = {}
        GRADER_USAGE.set(spent)
        scores: dict[str, Score] = {}
        for scorer in self.scorers:
            score = await scorer(state, state.target)
            if score is not None:
                name, n = registry_name(scorer), 1
                while name in scores:  # as Inspect names a second `match`: match1
                    name, n = f"{registry_name(scorer)}{n}", n + 1
                scores[name] = score
                self.metrics[name] = metric_names(scorer)
        return scores, spent


async def _no_generate(state: TaskState, **_: Any) -> TaskState:
    raise InspectTaskError("a setup solver called generate(): only generate() itself may")


def _input(records: str | list[dict[str, Any]]):
    return records if isinstance(records, str) else messages_from_records(records)


def _conversation(calls, answer_text: str) -> list:
    """What the model did, as the environment saw it: each tool call with its result, then
    the answer. (Text the model wrote beside a tool call never reaches the environment.)"""
    messages: list = []
    for i, (name, arguments, result, error) in enumerate(calls):
        call_id = f"call_{i}"
        messages.append(
            ChatMessageAssistant(
                content="", tool_calls=[ToolCall(id=call_id, function=name, arguments=arguments)]
            )
        )
        messages.append(
            ChatMessageTool(
                content=result,
                tool_call_id=call_id,
                function=name,
                error=ToolCallError("unknown", result) if error else None,
            )
        )
    messages.append(ChatMessageAssistant(content=answer_text, source="generate"))
    return messages


def metric_names(scorer: Callable) -> list[str] | None:
    """The metrics a scorer declares (``@scorer(metrics=[accuracy(), stderr()])``, or per key
    of a dict value) by name; None when they cannot be named."""
    from inspect_ai._util.registry import registry_info

    declared = registry_info(scorer).metadata.get("metrics")
    if isinstance(declared, dict):  # per key of a dict value ("*": every key)
        declared = [m for listed in declared.values() for m in listed]
    if not isinstance(declared, list) or not all(callable(m) for m in declared):
        return None
    try:
        return list(dict.fromkeys(registry_info(m).name.split("/")[-1] for m in declared))
    except Exception:  # a metric that is not registered: its name is unknown
        return None


def reward_and_info(scores: dict[str, Score]) -> dict[str, Any]:
    """The first scorer's value as a reward in [0, 1] (Inspect's ``value_to_float``: C=1,
    P=0.5, I=0, yes/no, numbers; a dict or list value: the mean of its entries), with the
    explanation and every score kept in the info."""
    if not scores:
        raise InspectScoreError("the Inspect scorer returned no score")
    name, first = next(iter(scores.items()))
    values = first.value
    entries = list(values.values()) if isinstance(values, dict) else values
    entries = entries if isinstance(entries, list) else [entries]
    to_float = value_to_float()
    floats = [to_float(v) for v in entries]
    if not floats or any(math.isnan(f) for f in floats):
        raise InspectScoreError(
            f"Inspect scorer '{name}' left this sample unscored: {first.explanation or 'no reason'}"
        )
    reward = sum(floats) / len(floats)
    if not 0.0 <= reward <= 1.0:
        raise InspectScoreError(
            f"Inspect scorer '{name}' gave {values!r}: Workbench rewards are in [0, 1]"
        )
    dumped = {
        key: score.model_dump(mode="json", exclude_none=True, exclude={"history"})
        for key, score in scores.items()
    }
    info = {"scorer": name, "value": dumped[name]["value"], "explanation": first.explanation}
    if first.answer is not None:
        info["answer"] = first.answer
    return {"reward": reward, "info": {**info, "scores": dumped}}


def _check_task(task: InspectTask) -> tuple[list[Callable], list[Callable]]:
    """(setup solvers, scorers) of a task Workbench can run; else a one-line refusal."""
    where = f"Inspect task '{task.name}'"
    if task.sandbox is not None:
        raise InspectTaskError(
            f"{where} needs a sandbox ({task.sandbox.type}): Workbench runs Inspect tasks "
            "without one; write an Environment whose tools do the work"
        )
    if not task.scorer:
        raise InspectTaskError(f"{where} has no scorer: Workbench's reward comes from it")
    solvers = [*_flatten(task.setup), *_flatten(task.solver)]
    names = [registry_name(s) for s in solvers]
    supported = f"Workbench runs {', '.join(SETUP_SOLVERS)}, then one generate()"
    for name in names:
        if name not in SUPPORTED_SOLVERS:
            raise InspectTaskError(f"{where}: solver '{name}' is not supported ({supported})")
    if names.count("generate") != 1 or names[-1] != "generate":
        raise InspectTaskError(f"{where}: generate() must come once, last ({supported})")
    params = registry_params(solvers[-1]) if is_registry_object(solvers[-1]) else {}
    if params.get("tool_calls", "loop") != "loop":
        raise InspectTaskError(
            f"{where}: generate(tool_calls='{params['tool_calls']}') is not supported: "
            "Workbench's agent loop runs tool calls until the model answers"
        )
    sampling = {k: v for k, v in params.items() if k != "tool_calls"}
    if sampling:
        warnings.warn(
            f"{where}: generate({', '.join(sampling)}=...) is ignored: sampling is set by the "
            "job (temperature=, max_tokens=, ...)",
            stacklevel=4,
        )
    return solvers[:-1], list(task.scorer)


def _flatten(solvers: Any) -> list[Callable]:
    """A task's solver, chain or list as one list (a chain is a sequence of solvers)."""
    if solvers is None:
        return []
    if isinstance(solvers, Sequence):
        return [s for item in solvers for s in _flatten(item)]
    return [solvers]


def build_environment(
    task: InspectTask,
    name: str,
    grader: str | None = None,
    grader_max_tokens: int | None = None,
    *,
    ref: str | None = None,
) -> Environment:
    """An environment that runs an Inspect task's samples (see the module docstring)."""
    setup, scorers = _check_task(task)
    graded = [s for s in map(registry_name, scorers) if s.startswith("model_graded")]
    if graded and not grader:
        raise InspectTaskError(
            f"Inspect task '{task.name}' is graded by a model ({graded[0]}): give a grader, "
            "e.g. grader='scripted:grader' (--grader MODEL), or any model id"
        )
    env = Environment(name, state=InspectRun, description=f"Inspect task {task.name}")
    if ref is not None:
        env.ref = ref
    bridge = InspectBridge(task, setup, scorers, grader, grader_max_tokens, env)
    env.inspect = bridge

    @env.scenario("sample", description=f"a sample of Inspect task {task.name}")
    async def sample(
        state: InspectRun,
        input: str | list[dict[str, Any]],  # noqa: A002 - Inspect's field names
        target: str | list[str] = "",
        id: str | int | None = None,  # noqa: A002
        metadata: dict[str, Any] | None = None,
        choices: list[str] | None = None,
    ):
        args = {"input": input, "target": target, "id": id}
        args.update({k: v for k, v in (("metadata", metadata), ("choices", choices)) if v})
        answer_text = yield await bridge.begin(state, args)
        yield await bridge.grade(state, answer_text)

    samples = list(task.dataset)
    if samples:
        for tool in _run_sync(lambda: _tools_of(bridge, samples[0])):
            add_tool(env, tool)
    env.policy("target")(target_policy)
    env.policy("grader")(grader_policy)
    return env


async def _tools_of(bridge: InspectBridge, sample: Sample) -> list:
    state = TaskState(
        model=ModelName("workbench/agent"),
        sample_id=sample.id or 0,
        epoch=1,
        input=sample.input,
        messages=messages_from_records(message_records(sample.input)),
        target=Target(sample.target),
        metadata=dict(sample.metadata or {}),
    )
    for solver in bridge.setup:
        state = await solver(state, _no_generate)
    return list(state.tools)


def _run_sync(make: Callable[[], Any]) -> Any:
    """Run a coroutine to the end from sync code, inside a running event loop too (a
    notebook's): then on a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def add_tool(env: Environment, tool: Any) -> None:
    """An Inspect ``@tool`` as an environment tool, with Inspect's name, description and
    JSON schema; each call is recorded for the scorer."""
    from workbench.environment import Tool

    tool_def = ToolDef(tool)
    execute = tool_def.tool

    async def call(_workbench_run: InspectRun, **arguments: Any) -> str:
        run = _workbench_run
        if run.task_state is not None:  # each call may come in a context of its own (MCP)
            init_sample_store(run.task_state)
        try:
            result = execute(**arguments)
            if pyinspect.isawaitable(result):
                result = await result
        except Exception as e:
            run.calls.append((tool_def.name, arguments, f"{type(e).__name__}: {e}", True))
            raise
        text = _tool_text(result)
        run.calls.append((tool_def.name, arguments, text, False))
        return text

    env.tools[tool_def.name] = Tool(
        name=tool_def.name,
        description=tool_def.description,
        fn=call,
        arguments=_arguments_model(execute, None, {}),
        state_param="_workbench_run",  # no Inspect tool has a parameter of that name
        parameters=tool_def.parameters.model_dump(exclude_none=True),
    )


def _tool_text(result: Any) -> str:
    """A tool's result as the text the model sees (Inspect's ``ToolResult`` kinds)."""
    if isinstance(result, str):
        return result
    if isinstance(result, list):
        return "\n".join(_tool_text(r) for r in result)
    text = getattr(result, "text", None)
    return text if isinstance(text, str) else str(result)


# -- scripted policies every Inspect environment has ---------------------------------------


def target_policy(ctx: PolicyContext) -> dict[str, Any]:
    """``scripted:target``: answers with the sample's target (its first, if several)."""
    target = ctx.args.get("target", "")
    return answer(target[0] if isinstance(target, list) and target else target)


_SUBMISSION = re.compile(r"\[Submission\]:\s*(.*?)\s*\n\*{3,}", re.S)


def grader_policy(ctx: PolicyContext) -> dict[str, Any]:
    """``scripted:grader``: a stand-in grader for Inspect's default ``model_graded_*``
    templates: GRADE: C when the submission contains the sample's target text, else I."""
    found = _SUBMISSION.search(ctx.prompt or "")
    if found is None:
        raise WorkbenchError(
            "scripted:grader reads Inspect's default grading templates ([Submission]: ...): "
            "give another grader for this scorer"
        )
    submission = _normal(found.group(1))
    target = ctx.args.get("target", "")
    targets = [_normal(t) for t in (target if isinstance(target, list) else [target]) if t]
    if any(t in submission for t in targets):
        return answer("The submission contains the expert answer.\n\nGRADE: C")
    return answer("The submission does not contain the expert answer.\n\nGRADE: I")


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def sample_args(
    input: Any,  # noqa: A002
    target: Any,
    id: Any,  # noqa: A002
    metadata: dict[str, Any] | None = None,
    choices: list[str] | None = None,
) -> dict[str, Any]:
    """A sample's fields as a task's arguments, the same however the sample was read (a
    single target is a string; empty fields are left out)."""
    targets = target if isinstance(target, str) else list(target or [])
    if isinstance(targets, list) and len(targets) == 1:
        targets = targets[0]
    args: dict[str, Any] = {"input": message_records(input), "target": targets, "id": id}
    if metadata:
        args["metadata"] = to_jsonable_python(metadata, fallback=str)
    if choices:
        args["choices"] = list(choices)
    return args
