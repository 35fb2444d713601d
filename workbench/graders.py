"""HUD's grading shapes and text graders (``from hud.graders import ...`` becomes
``from workbench.graders import ...``):

```python
from workbench.graders import EvaluationResult, SubScore, exact_match

@env.template()
async def capital(country: str = "France"):
    answer = yield f"What is the capital of {country}?"
    yield EvaluationResult(
        reward=exact_match(answer, "Paris"),
        content="compared with the reference",
        subscores=[SubScore(name="exact", value=exact_match(answer, "Paris"))],
    )
```

A scenario may yield an :class:`EvaluationResult`: its ``reward`` is the run's reward, and
``done``, ``content``, ``info``, ``subscores`` and ``isError`` are kept in the trace's info.
The text graders return 1.0 or 0.0, as HUD's do.
"""

from __future__ import annotations

import re
from typing import Any

import pydantic

__all__ = [
    "EvaluationResult",
    "SubScore",
    "contains",
    "contains_all",
    "contains_any",
    "exact_match",
    "normalize",
    "numeric_match",
]


class SubScore(pydantic.BaseModel):
    """One named part of a grade, with its weight."""

    name: str
    value: float = pydantic.Field(ge=0.0, le=1.0)
    weight: float = 1.0
    info: dict[str, Any] | None = None


class EvaluationResult(pydantic.BaseModel):
    """A grade with its explanation: what a scenario may yield as its reward."""

    reward: float = 0.0
    done: bool = True
    content: str | None = None
    info: dict[str, Any] = {}
    isError: bool = False  # noqa: N815 - HUD's field name
    subscores: list[SubScore] | None = None

    @classmethod
    def from_float(cls, value: float) -> EvaluationResult:
        return cls(reward=value)


_ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)
_PUNCTUATION = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")


def normalize(text: Any) -> str:
    """Lowercase, without punctuation, articles or repeated spaces: ``"The Answer: 42!"``
    -> ``"answer 42"``."""
    text = _ARTICLES.sub(" ", _PUNCTUATION.sub(" ", str(text).lower()))
    return _SPACES.sub(" ", text).strip()


def exact_match(answer: Any, expected: str, *, normalize_text: bool = True) -> float:
    """1.0 if the answer is the expected text (after :func:`normalize`), else 0.0."""
    if answer is None:
        return 0.0
    if normalize_text:
        return 1.0 if normalize(answer) == normalize(expected) else 0.0
    return 1.0 if str(answer).strip().lower() == expected.strip().lower() else 0.0


def contains(answer: Any, substring: str, *, case_sensitive: bool = False) -> float:
    """1.0 if the answer contains the text, else 0.0."""
    return contains_all(answer, [substring], case_sensitive=case_sensitive)


def contains_any(answer: Any, substrings: list[str], *, case_sensitive: bool = False) -> float:
    """1.0 if the answer contains one of the texts, else 0.0."""
    found = _found(answer, substrings, case_sensitive)
    return 1.0 if any(found) else 0.0


def contains_all(answer: Any, substrings: list[str], *, case_sensitive: bool = False) -> float:
    """1.0 if the answer contains every one of the texts, else 0.0."""
    found = _found(answer, substrings, case_sensitive)
    return 1.0 if found and all(found) else 0.0


def _found(answer: Any, substrings: list[str], case_sensitive: bool) -> list[bool]:
    text = "" if answer is None else str(answer)
    if not case_sensitive:
        text, substrings = text.lower(), [s.lower() for s in substrings]
    return [s in text for s in substrings]


def numeric_match(answer: Any, expected: float, *, tolerance: float = 0.0) -> float:
    """1.0 if the answer's first number is the expected one (within ``tolerance``)."""
    match = re.search(r"-?\d+\.?\d*", "" if answer is None else str(answer))
    return 1.0 if match and abs(float(match.group()) - expected) <= tolerance else 0.0
