"""``workbench.eval(tasks, group=N)``: the body of an ``async with`` block run once per run.

HUD users write

```python
async with workbench.eval(tasks, group=4) as ctx:
    response = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": ctx.prompt}],
        tools=ctx.as_openai_chat_tools(),
    )
    await ctx.submit(response.choices[0].message.content or "")
```

and expect the block to run for every task and group index, in parallel. A context manager
cannot run its block several times, so (as the HUD SDK does) the block's source is read
back from the caller's file (``linecache`` also holds notebook cells), compiled as an
``async def`` of the ``as`` name, and run once per run, each on its own context, with the
caller's globals and locals visible. The ``async with`` then receives a summary
(:class:`ParallelResults`); the block runs once more on it and stops at its first use of
the summary. Names the block assigns do not reach the caller; read results from
``summary.results``.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import linecache
from collections.abc import Callable
from typing import Any

from workbench.errors import WorkbenchError


class ParallelDone(BaseException):  # noqa: N818 - not an error: it ends the summary's block
    """Raised by the summary's first use inside the block: the runs are already done."""


class ParallelResults:
    """What the ``async with`` gets after the parallel runs: their contexts and mean reward."""

    def __init__(self, results: list[Any]):
        object.__setattr__(self, "results", results)
        rewards = [ctx.reward for ctx in results]
        object.__setattr__(self, "rewards", rewards)
        object.__setattr__(self, "reward", sum(rewards) / len(rewards) if rewards else 0.0)

    def __getattr__(self, name: str) -> Any:
        raise ParallelDone()

    def __setattr__(self, name: str, value: Any) -> None:
        raise ParallelDone()

    def __repr__(self) -> str:
        return f"ParallelResults({len(self.results)} runs, mean reward {self.reward:.3f})"


def _caller_frame():
    """The frame of the user's ``async with`` (outside contextlib and this package)."""
    frame = inspect.currentframe()
    internal = ("contextlib.py", "workbench/runs.py", "workbench/parallel_eval.py", "asyncio")
    while frame is not None and any(part in frame.f_code.co_filename for part in internal):
        frame = frame.f_back
    if frame is None:
        raise WorkbenchError("workbench.eval(tasks, group=N) must be used in an `async with`")
    return frame


def extract_body(frame) -> tuple[Callable, str]:
    """The ``async with`` block at the frame's current line, as an ``async def f(ctx)``."""
    filename, line = frame.f_code.co_filename, frame.f_lineno
    source = "".join(linecache.getlines(filename, frame.f_globals))
    if not source:
        raise WorkbenchError(
            f"cannot read the source of {filename} to run the block once per run: "
            "loop over the tasks with one workbench.eval(task) each instead"
        )
    candidates = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.AsyncWith)
        and node.lineno <= line <= node.items[-1].context_expr.end_lineno
    ]
    if not candidates:
        raise WorkbenchError(f"no `async with workbench.eval(...)` found at {filename}:{line}")
    node = max(candidates, key=lambda n: n.lineno)  # the innermost
    target = node.items[0].optional_vars
    if not isinstance(target, ast.Name):
        raise WorkbenchError("write the block as `async with workbench.eval(...) as ctx:`")
    function = ast.AsyncFunctionDef(
        name="__workbench_eval_body__",
        args=ast.arguments(
            posonlyargs=[],
            args=[ast.arg(arg=target.id)],
            kwonlyargs=[],
            kw_defaults=[],
            defaults=[],
        ),
        body=node.body,
        decorator_list=[],
        returns=None,
        type_params=[],
    )
    module = ast.fix_missing_locations(ast.Module(body=[function], type_ignores=[]))
    namespace = {**frame.f_globals, **frame.f_locals}
    exec(compile(module, filename, "exec"), namespace)  # noqa: S102 - the caller's own code
    return namespace["__workbench_eval_body__"], target.id


async def run_body_in_parallel(
    runs: list[tuple[Any, int]], open_run: Callable, *, max_concurrent: int
) -> ParallelResults:
    """Run the caller's block once per (task, group index); a failing run is kept (its trace
    says ``error``) and the others go on."""
    body, _ = extract_body(_caller_frame())
    gate = asyncio.Semaphore(max_concurrent)

    async def one(task, group_index: int):
        async with gate:
            ctx = None
            try:
                async with open_run(task, group_index) as ctx:
                    await body(ctx)
            except Exception:  # recorded on the run's trace by its context
                pass
            return ctx

    results = await asyncio.gather(*(one(task, g) for task, g in runs))
    return ParallelResults([ctx for ctx in results if ctx is not None])
