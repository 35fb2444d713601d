"""The parts of Inspect AI's private API that the bridge needs, in one place.

Inspect has no public way to score a sample outside ``eval()``, to find the sample a model
call serves, or to read a solver's arguments; these are the functions its own ``score()``
and ``eval()`` use for that. Checked against inspect-ai 0.3.285 (``pyproject.toml`` keeps
the ``inspect`` extra below 0.4): a rename there fails the import here, in one place.
"""

from __future__ import annotations

from typing import Any

from inspect_ai._eval.context import init_task_context
from inspect_ai._util.registry import is_registry_object, registry_params
from inspect_ai.log import Transcript
from inspect_ai.log._transcript import init_transcript
from inspect_ai.solver._task_state import sample_state
from inspect_ai.util._store import init_subtask_store

__all__ = [
    "init_sample_store",
    "init_scoring",
    "is_registry_object",
    "registry_params",
    "sample_state",
]


def init_scoring(grader: Any, state: Any) -> None:
    """In the current context: what a scorer reads while Inspect scores a sample (the
    active model and the ``grader`` role, the sample's store, a fresh transcript)."""
    init_task_context(grader, {"grader": grader})
    init_subtask_store(state.store)
    init_transcript(Transcript())


def init_sample_store(state: Any) -> None:
    """In the current context: the store that Inspect's ``store()`` gives a tool."""
    init_subtask_store(state.store)
