"""Tools that end their process in every way a run can die: exit, kill, hang, flood."""

import os
import signal

from workbench import Environment, answer, call

env = Environment("hud-crashy")


@env.tool()
def exit_process() -> str:
    """Leave at once."""
    os._exit(3)


@env.tool()
def kill_process() -> str:
    """SIGKILL this process."""
    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"


@env.tool()
def kill_fork_server() -> str:
    """SIGKILL this run's parent, the process every run is forked from (as the OOM killer
    might)."""
    os.kill(os.getppid(), signal.SIGKILL)
    return "killed it"


@env.tool()
def spin() -> str:
    """Never return (and never yield to the event loop)."""
    while True:
        pass


@env.tool()
def flood() -> str:
    """A result of 3 MB."""
    return "x" * (3 << 20)


@env.tool()
def fine() -> str:
    """Return normally."""
    return "fine"


@env.scenario("use")
async def use(tool: str):
    yield f"Call {tool}."
    yield 1.0


@env.policy("obedient")
def obedient(ctx):
    return call(ctx.args["tool"]) if ctx.step == 0 else answer("done")


@env.scenario("read-env")
async def read_env(name: str):
    """Report an environment variable of the run's process ("none" if unset)."""
    yield f"Read {name}."
    yield {"reward": 1.0, "info": {"value": os.environ.get(name, "none")}}


@env.policy("answerer")
def answerer(ctx):
    return answer("done")
