"""Scripted policies for pycode: ``scripted:expert`` and ``scripted:weak``.

The expert checks the reference solution on the examples, then answers with it. The weak one
answers at once, and on about 60% of its runs with a plausible buggy version that passes
some of the hidden tests (the same runs every time).
"""

from __future__ import annotations

import random

from workbench.models.scripted import PolicyContext, answer, call

from .problems import PROBLEMS

BUGGY_RATE = 0.6


def _fenced(code: str) -> str:
    return f"```python\n{code}```"


def expert(ctx: PolicyContext) -> dict:
    """Run the examples with the reference solution, then answer with it."""
    problem = PROBLEMS[ctx.args["problem"]]
    if not ctx.tool_results():
        return call("run_examples", code=problem.reference)
    return answer(_fenced(problem.reference))


def weak(ctx: PolicyContext) -> dict:
    """No testing; a buggy solution on about 60% of the runs."""
    problem = PROBLEMS[ctx.args["problem"]]
    rng = random.Random(f"{ctx.task.id}-{ctx.group_index}")
    return answer(_fenced(problem.buggy if rng.random() < BUGGY_RATE else problem.reference))
