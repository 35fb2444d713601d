"""Question answering, graded by Inspect's string scorers (``includes``, ``match``)."""

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import includes, match
from inspect_ai.solver import generate, prompt_template, system_message

CAPITALS = [
    Sample(id="france", input="What is the capital of France?", target="Paris"),
    Sample(id="japan", input="What is the capital of Japan?", target="Tokyo"),
    Sample(id="kenya", input="What is the capital of Kenya?", target="Nairobi"),
    Sample(
        id="australia",
        input="What is the capital of Australia?",
        target="Canberra",
        metadata={"trap": "Sydney"},
    ),
]


@task
def capitals():
    return Task(
        dataset=CAPITALS,
        solver=[system_message("Answer with the name of the city only."), generate()],
        scorer=includes(),
    )


@task
def sums(count: int = 5):
    return Task(
        dataset=[
            Sample(input=f"What is {n} + {n + 1}?", target=[str(2 * n + 1), f"{2 * n + 1}.0"])
            for n in range(1, count + 1)
        ],
        solver=[prompt_template("{prompt}\nGive the number only."), generate()],
        scorer=match(numeric=True),
    )
