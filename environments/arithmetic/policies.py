"""Scripted policies for arithmetic: ``scripted:expert``, ``scripted:weak`` and
``scripted:calculator``.

The expert and the weak one answer in a single turn without tools. The expert regenerates the problem from the
task's seed and answers it; the weak one is wrong on about half of its runs (off by one,
or applying the operators left to right), the same runs every time.
"""

from __future__ import annotations

import random

from workbench.models.scripted import PolicyContext, answer, call

from .problems import left_to_right, make_problem

WRONG_RATE = 0.55


def _problem(ctx: PolicyContext):
    return make_problem(ctx.args["seed"], ctx.args.get("difficulty", 1))


def expert(ctx: PolicyContext) -> dict:
    """The right answer, at once."""
    return answer(str(_problem(ctx).answer))


def weak(ctx: PolicyContext) -> dict:
    """Right on about half of the runs of a task; a plausible slip on the others."""
    problem = _problem(ctx)
    rng = random.Random(f"{ctx.task.id}-{ctx.group_index}")  # one decision per run
    if rng.random() >= WRONG_RATE:
        return answer(str(problem.answer))
    if "*" in problem.expression and rng.random() < 0.5:
        wrong = left_to_right(problem.expression)  # ignores precedence and brackets
    elif "+" in problem.expression and " - " not in problem.expression and rng.random() < 0.5:
        wrong = left_to_right(problem.expression.replace("+", "-"))  # wrong operation
    else:
        wrong = problem.answer + rng.choice([-1, 1])  # off by one
    if wrong == problem.answer:
        wrong += 1
    return answer(str(wrong))


def calculator(ctx: PolicyContext) -> dict:
    """The teacher of the Loop demo: hands the expression to the calculate tool, then answers
    with what it returned. Always right, and it shows a small model a skill it can copy."""
    if not ctx.tool_results():
        return call("calculate", expression=_problem(ctx).expression)
    return answer(str(ctx.last_result))
