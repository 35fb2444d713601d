"""Run model-written code in a child process with a time limit, resource limits and no
environment variables, and report what each test call returned.

Where the runtime provides a sandbox user (``WORKBENCH_SANDBOX_USER`` and
``WORKBENCH_SANDBOX_DIR``: the Docker runtime does), the code runs as that user in a scratch
directory only it can write, and after each call every process of that user is killed, also
those that left the process group (double fork and ``setsid``). What each runtime protects is
in the package's docstring (:mod:`environments.pycode`).
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from typing import Any

TIME_LIMIT = 10.0  # seconds for all the calls of one check
OUTPUT_LIMIT = 4000  # characters of printed output kept
ANSWER_LIMIT = 1 << 20  # bytes of the runner's answer read at most
REAP_LIMIT = 5.0  # seconds to kill every process of the sandbox user after a call

# Runs in the child: the code, then each call; one JSON line per call on a private fd, while
# whatever the code prints goes to a bounded buffer. It works in a fresh scratch directory
# under TMPDIR, emptied first of what earlier calls left there.
_RUNNER = r"""
import io, json, os, shutil, sys, tempfile
job = json.loads(sys.stdin.read())
root = os.environ["TMPDIR"]  # named, never guessed: what is in it is deleted
for name in os.listdir(root):
    path = os.path.join(root, name)
    shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)
os.chdir(tempfile.mkdtemp(dir=root))
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
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))  # no file over 16 MiB
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def sandbox_user() -> tuple[int, str] | None:
    """(uid, scratch directory) of the sandbox user, where the runtime provides one."""
    user, scratch = (
        os.environ.get("WORKBENCH_SANDBOX_USER"),
        os.environ.get("WORKBENCH_SANDBOX_DIR"),
    )
    if not user or not scratch:
        return None
    return int(user), scratch


def run(code: str, function: str, calls: list[list[Any]], time_limit: float = TIME_LIMIT):
    """Define ``code``, then call ``function(*args)`` for each args; returns one dict per call
    (``value`` or ``error``) plus ``timed_out`` and the tail of what the code printed."""
    job = json.dumps({"code": code, "function": function, "calls": calls})
    sandbox = sandbox_user()
    if sandbox is not None:
        uid, scratch = sandbox
        out, timed_out = _run(job, time_limit, scratch, user=uid)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            out, timed_out = _run(job, time_limit, scratch, user=None)
    return _parse(out, len(calls), timed_out)


def _run(job: str, time_limit: float, scratch: str, user: int | None) -> tuple[bytes, bool]:
    as_user = {} if user is None else {"user": user, "group": user, "extra_groups": []}
    process = subprocess.Popen(
        [sys.executable, "-I", "-c", _RUNNER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,  # a pipe of its own: never this server's stdout
        stderr=subprocess.DEVNULL,
        cwd="/",  # it moves to a scratch directory itself: this process cannot enter it
        env={"PATH": "/usr/bin:/bin", "TMPDIR": scratch},
        start_new_session=True,  # its own process group, killed whole below
        preexec_fn=_limits,
        **as_user,
    )
    try:
        out, timed_out = _answer(process, job.encode(), time_limit)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # and anything it started
        except (ProcessLookupError, PermissionError):
            pass
        if user is not None:
            _kill_user(user)  # and anything that left the group (setsid)
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()
    return out, timed_out


def _answer(process: subprocess.Popen, job: bytes, time_limit: float) -> tuple[bytes, bool]:
    """Send the job; read the answer until the runner exits, the time is up, or enough came.

    Not until the pipe closes: a process the code started holds its end open as long as it
    lives, and it lives until the kill after the call.
    """
    try:
        process.stdin.write(job)  # the runner reads all of it before it runs anything
    except OSError:
        pass  # it died already: what it wrote says why
    finally:
        with suppress(OSError):
            process.stdin.close()
    fd, chunks, size = process.stdout.fileno(), [], 0
    deadline = time.monotonic() + time_limit
    while size < ANSWER_LIMIT:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), True
        exited = process.poll() is not None
        if not select.select([fd], [], [], 0 if exited else min(left, 0.05))[0]:
            if exited:
                break  # it is gone and nothing is waiting in the pipe
            continue
        data = os.read(fd, 1 << 16)
        if not data:
            break
        chunks.append(data)
        size += len(data)
    return b"".join(chunks), False


def _kill_user(uid: int) -> None:
    """SIGKILL every process of ``uid`` until none is left (a fork bomb forks between two
    passes; a killed process cannot fork again). Only inside the container, where the sandbox
    user runs nothing else: its PID namespace is all this sees."""
    deadline = time.monotonic() + REAP_LIMIT
    while True:
        alive = _processes_of(uid)
        if not alive or time.monotonic() > deadline:
            return
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)


def _processes_of(uid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue  # gone meanwhile
        if status.get("State", "").strip().startswith("Z"):
            continue  # dead already; init reaps it
        if int(status.get("Uid", "-1").split()[0]) == uid:
            found.append(int(entry))
    return found


def _parse(out: bytes, calls: int, timed_out: bool) -> dict[str, Any]:
    items = []
    for line in out.decode(errors="replace").splitlines()[: calls + 2]:
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            break
        if not isinstance(item, dict):  # the code wrote to the results pipe itself
            break
        items.append(item)
    printed = items[-1].get("printed", "") if items else ""
    if items and "error" in items[0] and len(items) == 1:  # the code did not even define
        return {
            "results": [],
            "error": items[0]["error"],
            "timed_out": timed_out,
            "printed": printed,
        }
    results = [i for i in items if "done" not in i][:calls]
    return {"results": results, "error": None, "timed_out": timed_out, "printed": printed}
