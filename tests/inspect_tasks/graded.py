"""Short answers to security questions, graded by a model (``model_graded_fact``).

The dataset is the ``security_guide`` example that ships inside the ``inspect_ai`` package.
"""

from inspect_ai import Task, task
from inspect_ai.dataset import example_dataset
from inspect_ai.scorer import model_graded_fact
from inspect_ai.solver import generate, system_message

SYSTEM_MESSAGE = """
You are a computer security expert. Answer the question in a few words: the reader knows
computer security well.
"""


@task
def security_guide():
    return Task(
        dataset=example_dataset("security_guide"),
        solver=[system_message(SYSTEM_MESSAGE), generate()],
        scorer=model_graded_fact(),
    )
