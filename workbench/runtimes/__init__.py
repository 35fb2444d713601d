"""Where an environment runs: a forked copy per run, this process, a child process, a container.

| runtime | what | shares between runs | for |
| --- | --- | --- | --- |
| ``isolated`` | a copy-on-write fork per run (:mod:`.isolated`) | nothing | the default |
| ``inprocess`` | the environment's code in this process | module globals, env-level objects, files | speed, for state kept in ``state=`` |
| ``subprocess`` | ``workbench env serve`` as a child process, MCP over stdio | nothing | a fresh interpreter per run |
| ``docker`` | the same server in a container from the environment's image, no network | nothing | untrusted, model-written code |

A job picks one with ``RunConfig(runtime=...)`` (``workbench eval --runtime docker``); without
one, each environment's own default applies: ``Environment(..., runtime="docker")`` if it
names one, else ``inprocess`` for an environment that keeps its per-run state in ``state=``
(it declared where its state lives: a fresh object per run), else ``isolated``, since
HUD-style environments keep state in module globals. ``inprocess`` shares the process: a
run sees what other runs left in module globals, in objects made at import time and in the
working directory, so use it only for environments that keep none there. An environment made
with ``allow_inprocess=False`` refuses the in-process runtime. Where ``os.fork`` does not exist,
``isolated`` runs as ``subprocess``.

Every episode, whatever its runtime, has the same interface: ``start()`` (the prompt),
``call_tool(name, arguments)``, ``grade(answer)`` and ``close()``, plus ``tool_schemas``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.environment import Environment
    from workbench.tasks import Task

RuntimeName = Literal["isolated", "inprocess", "subprocess", "docker"]
RUNTIMES: tuple[str, ...] = ("isolated", "inprocess", "subprocess", "docker")

# Python code that puts the working directory last on the import path: ``python -c`` puts
# it first, where a file a run wrote there (``json.py``) would shadow the standard library
# or an installed package in every server started from that directory later. Modules of
# the directory (``my_env:env``) still import; they just cannot shadow anything.
CWD_LAST = """
import os, sys
_cwd = os.getcwd()
sys.path[:] = [p for p in sys.path if p not in ("", ".", _cwd)] + [_cwd]
del _cwd
"""

# Environment variables a run's process never gets: those named like secrets.
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE")
_SECRET_NAMES = ("DATABASE_URL", "WORKBENCH_DATABASE_URL")


def secret_name(name: str) -> bool:
    """Whether an environment variable looks like a secret (``OPENAI_API_KEY``,
    ``HF_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ``WORKBENCH_DATABASE_URL`` ...)."""
    upper = name.upper()
    return upper in _SECRET_NAMES or any(word in upper for word in _SECRET_WORDS)


def run_environ(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment variables of an isolated run's process: this process's, without
    the ones named like secrets (API keys, tokens, passwords, the database URL), which
    a tool could otherwise print into a trace. ``WORKBENCH_PASS_ENV=NAME,NAME`` passes
    named ones anyway (an environment that calls an API of its own)."""
    environ = dict(os.environ if environ is None else environ)
    passed = {n.strip() for n in environ.get("WORKBENCH_PASS_ENV", "").split(",") if n.strip()}
    return {k: v for k, v in environ.items() if k in passed or not secret_name(k)}


# What a server process runs (``python -c SERVER_BOOTSTRAP REF [--private-cwd]``).
# ``import workbench`` imports nothing heavy (pandas, SQLAlchemy, ... load only when used),
# so a server starts fast and a container image needs only the environment's own
# dependencies.
SERVER_BOOTSTRAP = (
    CWD_LAST
    + """
from workbench.runtimes.mcp_server import main
main(*sys.argv[1:])
"""
)


class RuntimeRefused(WorkbenchError):
    """An environment cannot run in the runtime asked for."""


def choose_runtime(env: Environment, requested: str | None = None) -> str:
    """The runtime a run of ``env`` uses: the one requested, else the environment's default.

    Raises a one-line :class:`RuntimeRefused` for an unknown runtime or one the environment
    refuses (a code environment refuses ``inprocess``).
    """
    runtime = requested or env.default_runtime
    if runtime not in RUNTIMES:
        raise RuntimeRefused(f"unknown runtime '{runtime}': use one of {', '.join(RUNTIMES)}")
    if runtime == "isolated":
        from workbench.runtimes.isolated import FORK_AVAILABLE

        if FORK_AVAILABLE:
            return runtime
        runtime = "subprocess"  # no fork() here: a fresh interpreter per run instead
    if runtime == "inprocess" and not getattr(env, "allow_inprocess", True):
        raise RuntimeRefused(
            f"environment '{env.name}' runs model-written code and refuses the in-process "
            "runtime: use --runtime docker"
        )
    if runtime != "inprocess" and ":" not in env.ref and env.ref == env.name:
        from workbench.tasks import builtin_environments

        if env.ref not in builtin_environments():
            raise RuntimeRefused(
                f"environment '{env.name}' is defined in this process only, so a "
                f"{runtime} runtime cannot load it: save it to a file and use 'path/to/file.py:env'"
            )
    return runtime


def open_episode(task: Task, runtime: str | None = None):
    """A fresh, not yet started episode of ``task`` in the chosen runtime."""
    env = task.environment()
    chosen = choose_runtime(env, runtime)
    if chosen == "inprocess":
        return env.episode(task)
    if chosen == "isolated":
        from workbench.runtimes.isolated import IsolatedEpisode

        return IsolatedEpisode(task)
    from workbench.runtimes.client import McpEpisode

    if chosen == "subprocess":
        from workbench.runtimes.subprocess import subprocess_transport

        return McpEpisode(task, lambda: subprocess_transport(env.ref), runtime=chosen)
    from workbench.runtimes.docker import container_transport

    return McpEpisode(task, lambda: container_transport(env), runtime=chosen)


__all__ = ["RUNTIMES", "RuntimeName", "RuntimeRefused", "choose_runtime", "open_episode"]
