"""Arithmetic problems generated from a seed, with a calculator tool.

```python
from . import env
task = env.task("solve", seed=7, difficulty=2)
```
"""

from __future__ import annotations

from typing import Literal

from workbench.environment import Environment

from . import policies
from .problems import evaluate, last_number, make_problem

env = Environment(
    "arithmetic",
    description="Arithmetic problems made from a seed; a calculator tool is offered.",
    # No state at all (pure tools, problems made from the arguments): runs share nothing,
    # so they may share the process.
    runtime="inprocess",
)


@env.tool
def calculate(expression: str) -> int | float:
    """Evaluate an arithmetic expression with + - * / and parentheses.

    Args:
        expression: the expression, e.g. "(3 + 4) * 5".
    """
    return evaluate(expression)


@env.scenario("solve")
async def solve(seed: int, difficulty: Literal[0, 1, 2, 3] = 1):
    """Compute the value of a generated expression; the last number in the answer counts.

    Args:
        seed: picks the problem; the same seed always gives the same problem.
        difficulty: 0 adds or subtracts one-digit numbers, 1 two-digit ones, 2 uses two
            operations, 3 three with parentheses.
    """
    problem = make_problem(seed, difficulty)
    answer = yield problem.prompt
    said = last_number(answer)
    info = {"expression": problem.expression, "expected": problem.answer}
    if said is None:
        yield {"reward": 0.0, "info": {**info, "reason": "no number in the answer"}}
    elif said == problem.answer:
        yield {"reward": 1.0, "info": {**info, "reason": "correct"}}
    else:
        yield {"reward": 0.0, "info": {**info, "reason": f"answered {said:g}"}}


env.policy("expert")(policies.expert)
env.policy("weak")(policies.weak)
env.policy("calculator")(policies.calculator)
