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
