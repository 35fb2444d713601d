"""A tool that keeps notes in Inspect's per-sample store(), and a scorer that reads them."""

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import Score, mean, scorer
from inspect_ai.solver import generate, use_tools
from inspect_ai.tool import tool
from inspect_ai.util import store


@tool
def note():
    async def execute(text: str):
        """Write a note.

        Args:
            text: what to note.
        """
        notes = store().get("notes", [])
        notes.append(text)
        store().set("notes", notes)
        return f"{len(notes)} notes"

    return execute


@scorer(metrics=[mean()])
def noted():
    async def score(state, target):
        notes = state.store.get("notes", [])
        return Score(value=1.0 if notes == [target.text] else 0.0, explanation=repr(notes))

    return score


@task
def notes():
    return Task(
        dataset=[Sample(id=i, input="Note the target.", target=f"t{i}") for i in range(4)],
        solver=[use_tools(note()), generate()],
        scorer=noted(),
    )
