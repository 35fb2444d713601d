"""Write a Python function; hidden tests run it inside the sandbox; the reward is the fraction
of them that pass.

It runs model-written code, so it refuses the in-process runtime and runs in Docker by default:

```bash
workbench eval pycode-basics scripted:expert scripted:weak --runtime docker
```

In Docker, the model's code cannot touch its grade. It runs as ``nobody`` in a scratch
directory of its own (:mod:`environments.pycode.sandbox`), while this server runs as root with
nothing but the right to start and kill other users' processes, and the environment's files,
the hidden tests among them, are root's alone. So the code can read neither the tests nor the
server's memory, cannot write to the protocol stream (the server's stdout) or signal the
server, shares no writable path with it, and no process of it survives the call: every
process of ``nobody`` is killed after each one, including those that left the process group.
Around that, the container has no network, a read-only root, and memory and process limits.

The subprocess and isolated runtimes give the same time and resource limits, an empty
environment and a process-group kill, and nothing more: the code runs as your user. It can
read the hidden tests (``problems.py``), signal or trace the server and write to its stdout
(``/proc/PID/fd/1``, the protocol stream), so it can forge its reward; it can leave a process
behind that outlives the call (a new session escapes the process-group kill); and it can read
your files and environment variables and use the network, as any program you run can. Use
them for code you trust, and grade model-written code, above all for training, in Docker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from workbench.environment import Environment

from . import policies, sandbox
from .problems import PROBLEMS, Problem, ProblemName


@dataclass
class Workspace:
    problem: Problem | None = None


env = Environment(
    "pycode",
    state=Workspace,
    description="Write a Python function; hidden tests in the sandbox grade it.",
    runtime="docker",
    allow_inprocess=False,
)

_CODE_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)


def extract_code(answer: str | None) -> str:
    """The last fenced code block of an answer, or the whole answer when it has none."""
    blocks = _CODE_BLOCK.findall(answer or "")
    return blocks[-1] if blocks else (answer or "")


def _same(value: Any, expected: Any) -> bool:
    return value == expected and type(value) is type(expected)


@env.tool
def run_examples(state: Workspace, code: str) -> dict[str, Any]:
    """Run your function on the examples of the problem and compare with the expected results.

    Args:
        code: the complete function definition.
    """
    problem = state.problem
    ran = sandbox.run(code, problem.function, [args for args, _ in problem.examples])
    if ran["error"]:
        return {"error": ran["error"]}
    report = []
    for (args, expected), result in zip(problem.examples, ran["results"], strict=False):
        got = result.get("value", result.get("error"))
        report.append(
            {
                "args": args,
                "expected": expected,
                "got": got,
                "ok": "value" in result and _same(result["value"], expected),
            }
        )
    return {"examples": report, "timed_out": ran["timed_out"], "printed": ran["printed"]}


@env.tool
def run_python(state: Workspace, code: str) -> dict[str, Any]:
    """Run a Python snippet in the sandbox and show what it printed (10 s at most).

    Args:
        code: the Python code to run.
    """
    ran = sandbox.run(code, "", [])
    return {"printed": ran["printed"], "error": ran["error"], "timed_out": ran["timed_out"]}


@env.scenario("implement")
async def implement(state: Workspace, problem: ProblemName):
    """Implement one function; graded by hidden tests (reward: the fraction passed).

    Args:
        problem: the function to write.
    """
    state.problem = PROBLEMS[problem]
    answer = yield state.problem.prompt()
    tests = state.problem.hidden
    ran = sandbox.run(extract_code(answer), state.problem.function, [a for a, _ in tests])
    passed = sum(
        1
        for (_, expected), result in zip(tests, ran["results"], strict=False)
        if "value" in result and _same(result["value"], expected)
    )
    info = {"passed": passed, "total": len(tests), "timed_out": ran["timed_out"]}
    if ran["error"]:
        info["error"] = ran["error"][:500]
    yield {"reward": passed / len(tests), "info": info}


env.policy("expert")(policies.expert)
env.policy("weak")(policies.weak)
