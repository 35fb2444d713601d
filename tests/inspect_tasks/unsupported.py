"""Tasks Workbench refuses: a solver it does not run, and a sandbox."""

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import generate, self_critique

DATASET = [Sample(input="Name a primary colour.", target="red")]


@task
def critiqued():
    return Task(dataset=DATASET, solver=[generate(), self_critique()], scorer=includes())


@task
def sandboxed():
    return Task(dataset=DATASET, solver=generate(), scorer=includes(), sandbox="docker")
