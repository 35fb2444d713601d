"""Scorers written for the task: a partial-credit number, and one that asks a model."""

import re

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.model import get_model
from inspect_ai.scorer import Score, accuracy, mean, scorer
from inspect_ai.solver import generate

GREETING = [Sample(id="hello", input="Greet me.", target="hello there")]


@scorer(metrics=[mean()])
def share_of_target():
    async def score(state, target):
        words = re.findall(r"\w+", target.text.lower())
        said = set(re.findall(r"\w+", state.output.completion.lower()))
        found = [w for w in words if w in said]
        return Score(value=len(found) / len(words), explanation=f"found {found} of {words}")

    return score


@scorer(metrics=[accuracy()])
def asks_a_model():
    async def score(state, target):
        grader = get_model(role="grader")  # the model under evaluation, if no grader is bound
        verdict = await grader.generate(f"Is {state.output.completion!r} a greeting?")
        value = "C" if "yes" in verdict.completion.lower() else "I"
        return Score(value=value, explanation=verdict.completion)

    return score


@task
def greeting():
    return Task(dataset=GREETING, solver=generate(), scorer=share_of_target())


@task
def judged_greeting():
    return Task(dataset=GREETING, solver=generate(), scorer=asks_a_model())
