"""Run model-written code in a child process with a time limit, resource limits and no
environment variables, and report what each test call returned.

This is a second fence, not the sandbox: the environment refuses to run in-process, and in
the Docker runtime the container (no network, read-only root, small /tmp, process limit,
nobody) is what contains the code.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from typing import Any

TIME_LIMIT = 10.0  # seconds for all the calls of one check
OUTPUT_LIMIT = 4000  # characters of printed output kept

# Runs in the child: the code, then each call; one JSON line per call on a private fd, while
# whatever the code prints goes to a bounded buffer.
_RUNNER = r"""
import io, json, os, sys
job = json.loads(sys.stdin.read())
results = os.fdopen(os.dup(1), "w", buffering=1)
devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 1); os.dup2(devnull, 2)
class Capped(io.StringIO):
    def write(self, s):
        return super().write(s) if self.tell() < LIMIT else len(s)
printed = Capped(); sys.stdout = sys.stderr = printed
def emit(item):
    item["printed"] = printed.getvalue()[-LIMIT:]
    results.write(json.dumps(item, default=repr) + "\n")
namespace = {"__name__": "solution"}
try:
    exec(compile(job["code"], "solution.py", "exec"), namespace)
except BaseException as e:
    emit({"error": f"{type(e).__name__}: {e}"}); raise SystemExit(0)
fn = namespace.get(job["function"])
if fn is None and job["function"]:
    emit({"error": f"no function named {job['function']}"}); raise SystemExit(0)
for args in job["calls"]:
    try:
        emit({"value": fn(*args)})
    except BaseException as e:
        emit({"error": f"{type(e).__name__}: {e}"})
emit({"done": True})
""".replace("LIMIT", str(OUTPUT_LIMIT))


def _limits() -> None:
    os.setsid()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))  # no file over 16 MiB
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def run(code: str, function: str, calls: list[list[Any]], time_limit: float = TIME_LIMIT):
    """Define ``code``, then call ``function(*args)`` for each args; returns one dict per call
    (``value`` or ``error``) plus ``timed_out`` and the tail of what the code printed."""
    job = json.dumps({"code": code, "function": function, "calls": calls})
    with tempfile.TemporaryDirectory() as scratch:
        process = subprocess.Popen(
            [sys.executable, "-I", "-c", _RUNNER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=scratch,
            env={"PATH": "/usr/bin:/bin"},
            preexec_fn=_limits,
        )
        timed_out = False
        try:
            out, _ = process.communicate(job.encode(), timeout=time_limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            out = b""
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # and anything it started
            except (ProcessLookupError, PermissionError):
                pass
            if process.poll() is None:
                process.kill()
            process.wait()
    items = []
    for line in out.decode(errors="replace").splitlines()[: len(calls) + 2]:
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError:
            break
    printed = items[-1].get("printed", "") if items else ""
    if items and "error" in items[0] and len(items) == 1:  # the code did not even define
        return {
            "results": [],
            "error": items[0]["error"],
            "timed_out": timed_out,
            "printed": printed,
        }
    results = [i for i in items if "done" not in i][: len(calls)]
    return {"results": results, "error": None, "timed_out": timed_out, "printed": printed}
