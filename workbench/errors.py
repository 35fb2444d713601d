"""Errors a user can cause. Each carries a one-line message that says what to do.

The CLI prints these without a traceback; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class for errors caused by input: the message is meant for the user."""


class ScenarioArgumentError(WorkbenchError, ValueError):
    """A scenario was given a wrong, missing or unknown argument.

    ``errors`` maps each offending argument to its message (forms show them per field).
    """

    def __init__(self, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.errors = dict(errors or {})


class UnknownScenarioError(WorkbenchError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownEnvironmentError(WorkbenchError, LookupError):
    """An environment reference that no import can resolve."""


class UnknownModelError(WorkbenchError, LookupError):
    """A model id that no model provider recognises."""


class UnknownTasksetError(WorkbenchError, LookupError):
    """A taskset name that is neither stored, shipped, nor a JSONL file."""


class NotFoundError(WorkbenchError, LookupError):
    """A job or trace id that is not in the store."""


class ConfigError(WorkbenchError):
    """The workbench config file is malformed or names something missing."""


class OptionsError(WorkbenchError, ValueError):
    """Options of a job, a training run or a request that do not validate."""


def one_line(error, model: type | None = None, owner: str = "") -> str:
    """A pydantic ``ValidationError`` as one line a user can act on: every bad field at once,
    and for an unknown option the closest valid name (``timout`` -> did you mean ``timeout``?).

    The one formatter for options everywhere (API, CLI, dialogs).
    """
    import difflib

    known = list(getattr(model, "model_fields", {}) or {})
    parts = []
    for item in error.errors():
        name = ".".join(str(p) for p in item["loc"]) or "options"
        if item["type"] == "missing":
            parts.append(f"'{name}' is required")
        elif item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            parts.append(f"unknown option '{name}'{hint}")
        elif item["type"] == "too_short" and name == "models":
            parts.append("choose at least one model")
        else:
            message = item["msg"].removeprefix("Value error, ")
            got = item.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            parts.append(f"{name}: {message}{shown}")
    return (f"{owner}: " if owner else "") + "; ".join(parts)


class ToolArgumentError(ValueError):
    """The model called a tool with arguments that do not fit its schema."""


def missing_extra(extra: str, what: str, error: ImportError) -> WorkbenchError:
    """The one-line error for a feature whose optional dependencies are not installed."""
    return WorkbenchError(
        f"{what} needs the '{extra}' extra ({error.name or error} is missing): "
        f"pip install 'agent-research-workbench[{extra}]'"
    )
