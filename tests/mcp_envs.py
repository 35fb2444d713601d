"""Two environments that `workbench env serve` must not play in its own process.

- ``globals_env``: HUD-style, its state in a module global (no ``state=``): a run that shares
  the server's process with another sees the other's ``solve``.
- ``code_env``: declares ``allow_inprocess=False``, as an environment that runs model-written
  code does: its tools must never run in the server's process.

Both tools say which process they ran in.
"""

import os

from workbench import Environment

SOLVED = {"done": False}

globals_env = Environment("mcp-globals", description="State in a module global, HUD-style.")


@globals_env.tool
def solve() -> str:
    """Mark the task solved."""
    SOLVED["done"] = True
    return f"solved in process {os.getpid()}"


@globals_env.scenario("idle")
async def idle():
    yield "Do nothing at all."
    yield 1.0 if SOLVED["done"] else 0.0


code_env = Environment(
    "mcp-code", description="Runs code it is given: never in-process.", allow_inprocess=False
)


@code_env.tool
def whoami() -> str:
    """The process this tool runs in."""
    return str(os.getpid())


@code_env.scenario("pid")
async def pid():
    answer = yield "Which process are you in? Use the whoami tool."
    yield 1.0 if answer == str(os.getpid()) else 0.0
