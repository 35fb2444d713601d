"""A scorer that asks the grader model a question of its own and always gives a score."""

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.model import get_model
from inspect_ai.scorer import Score, accuracy, scorer
from inspect_ai.solver import generate


@scorer(metrics=[accuracy()])
def judged():
    async def score(state, target):
        verdict = await get_model(role="grader").generate(
            f"Is '{state.output.completion}' the capital of France? Answer yes or no."
        )
        said_yes = "yes" in verdict.completion.lower()
        return Score(value="C" if said_yes else "I", explanation=verdict.completion)

    return score


@task
def judged_capital():
    return Task(
        dataset=[Sample(id=1, input="What is the capital of France?", target="Paris")],
        solver=generate(),
        scorer=judged(),
    )
