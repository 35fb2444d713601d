"""Mental arithmetic: one step on one-digit numbers, no tools, the last number is the answer.

```python
from . import env
task = env.task("solve", a=7, op="+", b=5)   # "What is 7 + 5? Answer with just the number."
```

The family the Loop's self-improvement rounds train on (``workbench loop --teacher none``):
SmolLM2-135M knows most of these sums (its greedy answer is right about half the time) but
at temperature 1 it wanders off, so it succeeds rarely (10-18% of runs; see README.md).
Its own successful runs show what works, which is what rejection sampling and GRPO need.
The reward is exact: 1.0 when the last number in the answer is the result.
"""

from __future__ import annotations

import random
import re
from typing import Annotated, Literal

import pydantic

from workbench.environment import Environment
from workbench.models.scripted import PolicyContext, answer

env = Environment(
    "mental",
    description="One-step mental arithmetic on one-digit numbers, no tools.",
    # No state, no tools: runs share nothing, so they may share the process.
    runtime="inprocess",
)

Digit = Annotated[int, pydantic.Field(ge=1, le=9)]
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def last_number(text: str | None) -> float | None:
    """The last number in a text ("3 + 4 = 7." -> 7.0), or None."""
    found = _NUMBER.findall(text or "")
    return float(found[-1]) if found else None


def result(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b


@env.scenario("solve")
async def solve(a: Digit, op: Literal["+", "-"], b: Digit):
    """Add or subtract two one-digit numbers; the last number in the answer counts.

    Args:
        a: the first number, 1-9.
        op: "+" or "-" (the shipped tasksets subtract only smaller from larger numbers).
        b: the second number, 1-9.
    """
    expected = result(a, op, b)
    answer = yield f"What is {a} {op} {b}? Answer with just the number."
    said = last_number(answer)
    info = {"expected": expected}
    if said is None:
        yield {"reward": 0.0, "info": {**info, "reason": "no number in the answer"}}
    elif said == expected:
        yield {"reward": 1.0, "info": {**info, "reason": "correct"}}
    else:
        yield {"reward": 0.0, "info": {**info, "reason": f"answered {said:g}"}}


def _result(ctx: PolicyContext) -> int:
    return result(ctx.args["a"], ctx.args["op"], ctx.args["b"])


@env.policy("expert")
def expert(ctx: PolicyContext) -> dict:
    """The right answer, at once."""
    return answer(str(_result(ctx)))


@env.policy("coin")
def coin(ctx: PolicyContext) -> dict:
    """Right on about half of a task's runs, off by one on the others (the same runs every
    time): groups with a spread of rewards, for GRPO's tests without a model."""
    rng = random.Random(f"{ctx.task.id}-{ctx.group_index}")
    if rng.random() < 0.5:
        return answer(f"{ctx.args['a']} {ctx.args['op']} {ctx.args['b']} = {_result(ctx)}")
    return answer(f"I think it is {_result(ctx) + rng.choice([-1, 1])}.")
