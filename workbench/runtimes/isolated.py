"""The isolated runtime: every run in a fresh copy-on-write fork of the environment.

```python
job = await workbench.evaluate(taskset, "scripted:expert", runtime="isolated")
```

Environments written the HUD way keep their state in module globals, in objects made at
import time, or in files in the working directory. Runs that share a process then share
that state, and rewards come out wrong with no error. Here each run gets its own process,
for the price of a ``fork()`` rather than a Python start:

- per environment (and per job), a **fork server** is forked once from this process. It is a
  single-threaded snapshot of the process, the environment already imported and its
  ``@env.initialize`` hooks run, with its own session (process group) and no inherited
  file descriptors but stdio;
- per run, the fork server forks a **run process** from that snapshot: module globals,
  environment-level objects and everything else start as they were in the snapshot, and
  what a run changes dies with its process. The run process also gets a private working
  directory (a new temporary directory), so files one run writes are not seen by another;
- this process drives the run over a socket pair (one JSON line per request and reply):
  ``start`` (the prompt and tools), ``call`` (a tool), ``grade`` (the reward); hanging up
  ends the run (the run process runs its scenario's cleanup, then exits).

What a run costs is mostly the kernel's: the fork, the pages a run writes (each is copied
from the snapshot: CPython writes to every object it touches, if only its reference count),
and tearing the process down. So the run process does as little as it can in Python before
it serves: the fork server has already played a few runs of a built-in environment (code
paths warm), the child skips the interpreter's after-fork hooks where that is safe (see
``_RunForker``), replaces only the descriptors of the loop's wake-up socket, and answers
the whole run inside one task; the ``start`` request is sent with the connection. About
6 ms of CPU per tool-using run on the development machine (``benchmarks/runtimes.py``).

A run process that crashes or is killed is an ``error`` trace (the socket closes); one that
hangs is ended by the run's timeout and then killed (``SIGKILL`` through a pidfd, so a
recycled pid is never hit). When a job ends its fork servers are killed with their whole
process group, so no run process outlives its job; a fork server whose parent dies (even by
``SIGKILL``) sees its control socket close and takes its runs with it.

Where ``os.fork`` does not exist (Windows) the ``subprocess`` runtime is used instead.
The parent's own state is never touched by a run, so a notebook can go on using the
environment in-process between jobs. What is *not* isolated: anything outside the process
(absolute paths, databases, network services) — use ``docker`` for model-written code.
"""

from __future__ import annotations

import _signal
import _socket
import asyncio
import collections
import contextlib
import contextvars
import gc
import io
import json
import os
import selectors
import signal
import socket
import sys
import tempfile
import time
import traceback
from typing import Any

from workbench.episode import ScenarioError, ToolOutcome, parse_arguments
from workbench.errors import WorkbenchError
from workbench.runtimes import CWD_LAST, run_environ
from workbench.tasks import Task
from workbench.traces import json_default

FORK_AVAILABLE = hasattr(os, "fork") and hasattr(socket, "send_fds")
_LINE_LIMIT = 256 * 1024 * 1024  # one JSON line: a prompt or tool result can be large
_CLOSE_SECONDS = 5.0  # a run's cleanup (its scenario's code after the reward) at most


class RunProcessDied(WorkbenchError):
    """The process of an isolated run ended before answering (crash, os._exit, kill)."""


# -- the fork server (in its own process) ----------------------------------------------------


def _release_inherited_fds(keep: set[int]) -> None:
    """Point every inherited descriptor but ``keep`` at /dev/null.

    Closing them would let a stale Python object of the parent's close a number that a new
    socket reuses later; pointing them at /dev/null frees the parent's pipes and sockets (so
    their peers see EOF when the parent closes them) while the numbers stay taken.
    """
    devnull = os.open(os.devnull, os.O_RDWR)
    keep = keep | {devnull}
    fd_dir = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    for name in os.listdir(fd_dir):
        fd = int(name)
        if fd in keep:
            continue
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)


def _fresh_stdio() -> None:
    """New stdout/stderr objects over fds 1 and 2: a notebook's stream objects talk to the
    kernel over ZMQ, and buffered text the parent had not flushed must not be written twice."""
    sys.stdout = io.TextIOWrapper(open(1, "wb", closefd=False), line_buffering=True)  # noqa: SIM115
    sys.stderr = io.TextIOWrapper(open(2, "wb", closefd=False), line_buffering=True)  # noqa: SIM115


def _fork_server_main(control: socket.socket, env_ref: str, *, forked: bool) -> None:
    """Serve forks of this process; ``forked``: we are a fork of the job's process (an
    environment defined there only), not a fresh interpreter."""
    if forked:
        os.setsid()  # our own process group: the job kills it whole, run processes included
        scrubbed = run_environ()
        for name in [n for n in os.environ if n not in scrubbed]:
            del os.environ[name]  # no secrets, as in a fresh interpreter
        signal.set_wakeup_fd(-1)  # the parent's event loop listens on that fd
        asyncio.events._set_running_loop(None)  # forked inside the parent's running loop
        _release_inherited_fds({0, 1, 2, control.fileno()})
        _fresh_stdio()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # run processes are reaped by the kernel
    forker = _RunForker(lean=not forked)  # before the environment is imported: see the class
    from workbench.tasks import resolve_environment

    # Made once here, used by every run process: a poll() selector keeps no state in the
    # kernel, so the copies do not share one (an epoll instance would be shared).
    loop = asyncio.SelectorEventLoop(selectors.PollSelector())
    asyncio.set_event_loop(loop)
    try:
        env = resolve_environment(env_ref)
        loop.run_until_complete(env.run_initialize())
    except BaseException:
        traceback.print_exc()
        control.sendall(b"E")
        os._exit(1)
    base = tempfile.mkdtemp(prefix="workbench-runs-")
    _rehearse(loop)
    control.sendall(b"R")  # ready
    gc.freeze()  # what the snapshot holds is never collected: fewer pages copied per fork
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 16, 1)
        except InterruptedError:
            continue
        if not message or message == b"Q":  # parent gone, or the job is over
            if message == b"Q":
                _wait_for_runs(_CLOSE_SECONDS + 1)  # their cleanup after the job hung up
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(env.run_shutdown())
            import shutil

            shutil.rmtree(base, ignore_errors=True)
            os.killpg(0, signal.SIGKILL)  # every run process, and this one
        for fd in fds[1:]:
            os.close(fd)
        if not fds:
            continue
        if forker.fork() == 0:
            control.close()
            _run_process_main(fds[0], env, loop, base)  # never returns
        os.close(fds[0])


def _wait_for_runs(seconds: float) -> None:
    """Until no run process is left (they are reaped by the kernel: SIGCHLD is ignored)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            return  # none left
        time.sleep(0.005)


class _RunForker:
    """How the fork server forks a run process: ``os.fork()``, or a lean ``fork()``.

    ``os.fork()`` runs the interpreter's after-fork work in the child: reinitialising its
    locks, and the ``os.register_at_fork`` hooks (threading, logging, random ...). That is
    Python code on pages the child shares with the fork server, so each object it touches
    is a page copied: about half of a run's page faults. In a single-threaded fork server no
    other thread can hold a lock, so the lean path calls the C library's ``fork()`` (the
    pthread_atfork handlers of C libraries still run), keeps the GIL held across it, and does
    the one hook that matters itself: ``random`` is reseeded, so runs do not share a random
    sequence. It is taken only in a fresh interpreter (we know every hook registered before
    the environment was imported), while the process has one thread, and while no module
    imported since registered a fork hook of its own (``os.fork()`` then runs it).
    """

    def __init__(self, *, lean: bool):
        self._libc_fork = None
        self._hooks_since: list[dict[str, Any]] = []
        if not lean or sys.implementation.name != "cpython" or not sys.platform.startswith("linux"):
            return
        if getattr(sys, "_is_gil_enabled", lambda: True)() is False:
            return  # free-threaded builds: the interpreter's own after-fork work is needed
        try:
            import ctypes

            libc_fork = ctypes.PyDLL(None, use_errno=True).fork  # PyDLL: the GIL stays held
        except (OSError, AttributeError):
            return
        libc_fork.restype = ctypes.c_int
        libc_fork.argtypes = []
        # The standard library's fork hooks, registered now; what registers one later is
        # recorded (and forks then take os.fork()).
        import concurrent.futures.thread  # noqa: F401
        import logging  # noqa: F401
        import random  # noqa: F401
        import threading  # noqa: F401

        original = os.register_at_fork

        def register_at_fork(**hooks: Any) -> None:
            self._hooks_since.append(hooks)
            original(**hooks)

        os.register_at_fork = register_at_fork
        self._libc_fork = libc_fork

    @property
    def lean(self) -> bool:
        return (
            self._libc_fork is not None
            and not self._hooks_since
            and len(sys._current_frames()) == 1
        )

    def fork(self) -> int:
        if not self.lean:
            return os.fork()
        pid = self._libc_fork()
        if pid < 0:
            import ctypes

            raise OSError(ctypes.get_errno(), "fork() failed")
        if pid == 0:
            import random

            random.seed()  # what random's own after-fork hook does
        return pid


def _rehearse(loop: asyncio.AbstractEventLoop, runs: int = 3) -> None:
    """Play a few runs of a built-in environment here, in the fork server, before forking."""
    from workbench.environment import Environment
    from workbench.references import _LOCAL_ENVIRONMENTS

    env = Environment("workbench rehearsal")
    del _LOCAL_ENVIRONMENTS[env.name]

    @env.tool
    def echo(text: str) -> str:
        """Echo."""
        return text

    @env.scenario("echo")
    async def echo_scenario(word: str = "hi"):
        answer = yield f"Say {word}"
        yield 1.0 if answer == word else 0.0

    task = env.task("echo", word="hi").model_dump(mode="json")
    requests = [
        {"op": "start", "task": task},
        {"op": "call", "name": "echo", "arguments": {"text": "hi"}},
        {"op": "grade", "answer": "hi"},
    ]
    for _ in range(runs):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.sendall(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
        ours.shutdown(socket.SHUT_WR)  # then the job hangs up, as a job ends a run
        _serve_run(theirs.fileno(), env, loop)
        theirs.close()
        ours.close()


def _own_wakeup_socket(loop: asyncio.AbstractEventLoop) -> None:
    """Give the loop inherited from the fork server a wake-up socket pair of this process's
    own (runs sharing one could take each other's wake-ups), under the same descriptor
    numbers: the loop's socket objects and its selector stay as they are. Done at the C
    level: rebuilding the loop's self-pipe in Python touches hundreds of shared pages."""
    pair = _socket.socketpair(
        _socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC
    )
    for new, old in zip(pair, (loop._ssock, loop._csock), strict=True):
        os.dup2(new.fileno(), old.fileno(), inheritable=False)
        new.close()


def _run_process_main(fd: int, env: Any, loop: asyncio.AbstractEventLoop, base: str) -> None:
    code = 0
    try:
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)  # tools may run subprocesses
        _own_wakeup_socket(loop)  # the loop itself was made by the fork server: see there
        workdir = os.path.join(base, str(os.getpid()))
        os.mkdir(workdir)
        os.chdir(workdir)  # files a run writes in its working directory are its own
        try:
            _serve_run(fd, env, loop)
        finally:
            os.chdir(base)
            try:
                os.rmdir(workdir)
            except OSError:
                import shutil

                shutil.rmtree(workdir, ignore_errors=True)
    except BaseException:
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)  # no atexit handlers of the parent's, no inherited buffers flushed


class _Lines:
    """One JSON line per message over a blocking socket, read and written with plain
    ``os.read``/``os.write`` (a socket file object's layers cost page copies per run)."""

    def __init__(self, fd: int):
        self.fd = fd
        self._buffer = bytearray()

    def read(self) -> bytes | None:
        """The next line, or None at end of file."""
        searched = 0
        while True:
            end = self._buffer.find(b"\n", searched)
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > _LINE_LIMIT:
                raise ScenarioError(f"a request longer than {_LINE_LIMIT} bytes")
            searched = len(self._buffer)
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self._buffer += chunk

    def write(self, message: Any) -> None:
        data = memoryview(json.dumps(message, default=json_default).encode() + b"\n")
        while data:
            data = data[os.write(self.fd, data) :]


def _serve_run(fd: int, env: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Answer the job's requests for one run, one JSON line each, until the job hangs up.

    The whole conversation is one task on the loop (each request waits in a blocking read,
    as nothing else on this loop may run between requests): one task per run, not one per
    request."""
    lines = _Lines(fd)
    lines.write({"pid": os.getpid()})
    loop.run_until_complete(_answer(lines, env))


async def _answer(lines: _Lines, env: Any) -> None:
    episode = None
    while True:
        line = lines.read()
        if not line:  # the job hung up: the run is over; its scenario's cleanup runs here
            if episode is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(_CLOSE_SECONDS):
                        await episode.close()
            return
        request = json.loads(line)
        op = request["op"]
        try:
            if op == "start":
                # Validated by the job already: constructing it again skips pydantic, whose
                # first touches of its shared validators cost page copies in every run.
                task = Task.model_construct(**request["task"])
                episode = env.episode(task)
                messages = await episode.start()
                result: Any = {"messages": messages, "tools": episode.tool_schemas}
            elif op == "call":
                outcome = await episode.call_tool(request["name"], request["arguments"])
                result = {"content": outcome.content, "error": outcome.error}
            elif op == "grade":
                reward, info = await episode.grade(request["answer"])
                result = {"reward": reward, "info": info}
            else:
                raise ScenarioError(f"unknown request {op!r}")
            reply = {"result": result}
        except Exception as e:  # the job re-raises it as the run's error
            reply = {"error": {"type": type(e).__name__, "message": str(e)}}
        lines.write(reply)


# -- this process's side ----------------------------------------------------------------------


_SPAWNED_SERVER = (
    CWD_LAST
    + """
import socket
from workbench.runtimes.isolated import _fork_server_main
_fork_server_main(socket.socket(fileno=int(sys.argv[2])), sys.argv[1], forked=False)
"""
)


def _importable(env_ref: str) -> bool:
    """Whether a fresh interpreter can load this environment (not one made in a notebook)."""
    from workbench.tasks import builtin_environments

    return ":" in env_ref or env_ref in builtin_environments()


class ForkServer:
    """A fork server for one environment; ``spawn()`` gives a socket to a new run process.

    An environment a fresh interpreter can import gets a fresh, lean interpreter (without
    pandas, SQLAlchemy, a model ...): every run starts from the module as first imported, and
    a small process forks fast. One defined only in this process (a notebook cell) gets a
    fork of this process instead: runs start from the module as it is here now.
    """

    def __init__(self, env_ref: str):
        self.env_ref = env_ref
        self.pid: int | None = None
        self._process = None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.control = ours
        if _importable(env_ref):
            self.pid = self._start_interpreter(theirs)
        else:
            self.pid = self._fork_this_process(ours, theirs)
        theirs.close()

    async def ready(self) -> None:
        """Wait, without blocking the event loop, until the server has imported the
        environment and run its ``@env.initialize`` hooks (which may take long)."""
        loop = asyncio.get_running_loop()
        self.control.setblocking(False)
        try:
            ready = await loop.sock_recv(self.control, 1)
        except BaseException:
            self._reap()  # cancelled (the job ended) or the socket failed: never half-started
            raise
        finally:
            if self.pid is not None:
                self.control.setblocking(True)
        if ready != b"R":
            self._reap()
            raise ScenarioError(
                f"environment '{self.env_ref}' failed to start in the isolated runtime (it did "
                "not import, or its @env.initialize hook raised: the error is printed above)"
            )

    def _start_interpreter(self, theirs: socket.socket) -> int:
        import subprocess

        env = run_environ()  # no secrets: a tool could print them into a trace
        # Resolve references as this process does: its import path, then its working
        # directory, last (CWD_LAST: a file a run wrote there shadows nothing).
        cwd = os.getcwd()
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p not in ("", ".", cwd))
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _SPAWNED_SERVER,
                self.env_ref,
                str(theirs.fileno()),
            ],
            pass_fds=[theirs.fileno()],
            start_new_session=True,  # its own process group: killed whole with its runs
            env=env,
        )
        return self._process.pid

    def _fork_this_process(self, ours: socket.socket, theirs: socket.socket) -> int:
        # Flush what this process buffered so the copy does not inherit (and lose) it.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        pid = os.fork()
        if pid == 0:  # the fork server
            try:
                ours.close()
                _fork_server_main(theirs, self.env_ref, forked=True)
            finally:
                os._exit(1)
        return pid

    async def ended(self, patience: float = 1.0) -> bool:
        """Whether the server's process has ended (waiting up to ``patience`` seconds for
        one that is being killed to finish exiting)."""
        if self.pid is None:
            return True
        deadline = time.monotonic() + patience
        while True:
            # Not reaped (WNOWAIT): its pid names its process group until close() kills
            # what is left of it (runs it forked live on), then reaps it.
            try:
                if os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                    return True
            except ChildProcessError:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)

    def spawn(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            socket.send_fds(self.control, [b"F"], [theirs.fileno()])
        except OSError as e:
            ours.close()
            raise RunProcessDied(f"the isolated runtime's fork server is gone ({e})") from None
        finally:
            theirs.close()
        return ours

    def close(self, *, shutdown_hooks: bool = True) -> None:
        """Run the environment's shutdown hooks there, then kill the server and its runs."""
        if self.pid is None:
            return
        if shutdown_hooks:
            with contextlib.suppress(OSError):
                self.control.sendall(b"Q")
                self.control.settimeout(_CLOSE_SECONDS + 5)
                self.control.recv(1)  # returns at EOF: the group was killed
        self._reap()

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop while the hooks run."""
        if self.pid is None:
            return
        try:
            loop = asyncio.get_running_loop()
            self.control.setblocking(False)
            with contextlib.suppress(OSError, TimeoutError):
                await loop.sock_sendall(self.control, b"Q")
                async with asyncio.timeout(_CLOSE_SECONDS + 5):
                    await loop.sock_recv(self.control, 1)  # EOF: the group was killed
        finally:
            self._reap()

    def _reap(self) -> None:
        pid, self.pid = self.pid, None
        if pid is None:
            return
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        if self._process is not None:
            self._process.wait()
        else:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.control.close()


class ForkServers:
    """The fork servers of one job (or of the process), by environment reference.

    A server starts off the event loop's back (importing an environment and its
    ``@env.initialize`` hooks may take seconds: runs' timeouts and other jobs go on), once
    for all the runs that wait for it; one that died (killed by the OOM killer, or by a tool
    that killed its own process group) is replaced for the runs that come after."""

    def __init__(self):
        self._servers: dict[str, ForkServer] = {}
        self._starting: dict[str, asyncio.Task] = {}
        self._gone: list[ForkServer] = []  # died: their runs' process groups are killed at close
        self._closed = False

    async def get(self, env_ref: str) -> ForkServer:
        server = self._servers.get(env_ref)
        if server is not None and server.pid is not None:
            return server
        if self._closed:
            raise RunProcessDied("the job's isolated runtime has shut down")
        loop = asyncio.get_running_loop()
        starting = self._starting.get(env_ref)
        if starting is None or starting.done() or starting.get_loop() is not loop:
            starting = self._starting[env_ref] = loop.create_task(self._start(env_ref))
            starting.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(starting)  # a run's timeout does not stop the start

    async def _start(self, env_ref: str) -> ForkServer:
        server = ForkServer(env_ref)
        await server.ready()
        if self._closed:
            server.close(shutdown_hooks=False)
            raise RunProcessDied("the job's isolated runtime has shut down")
        self._servers[env_ref] = server
        return server

    def gone(self, server: ForkServer) -> None:
        """``server`` no longer answers: the next run of its environment starts another."""
        if self._servers.get(server.env_ref) is server:
            del self._servers[server.env_ref]
            self._gone.append(server)

    def _take_all(self) -> tuple[list[asyncio.Task], list[ForkServer]]:
        self._closed = True
        starting = [t for t in self._starting.values() if not t.done()]
        servers = [*self._servers.values(), *self._gone]
        self._starting, self._servers, self._gone = {}, {}, []
        return starting, servers

    def close(self) -> None:
        starting, servers = self._take_all()
        for task in starting:
            task.cancel()
        for server in servers:
            server.close()

    async def aclose(self) -> None:
        """Stop starting servers, run the environments' shutdown hooks, kill every server
        and run process; whatever happens meanwhile (a second cancel), none outlives it."""
        starting, servers = self._take_all()
        try:
            for task in starting:
                task.cancel()
            await asyncio.gather(*starting, return_exceptions=True)
            for server in servers:
                await server.aclose()
        finally:
            for server in servers:
                server.close(shutdown_hooks=False)


_PROCESS_SERVERS = ForkServers()  # runs outside a job (workbench.eval by hand, Ray actors)
_SCOPE: contextvars.ContextVar[ForkServers | None] = contextvars.ContextVar(
    "workbench_fork_servers", default=None
)


@contextlib.asynccontextmanager
async def job_scope():
    """Fork servers made inside belong to the block: killed with their runs when it ends."""
    servers = ForkServers()
    token = _SCOPE.set(servers)
    try:
        yield servers
    finally:
        _SCOPE.reset(token)
        await servers.aclose()


def _servers() -> ForkServers:
    return _SCOPE.get() or _PROCESS_SERVERS


if FORK_AVAILABLE:
    import atexit

    atexit.register(_PROCESS_SERVERS.close)


class _RunChannel:
    """This process's end of a run's socket: JSON lines written and read on the event loop.

    A reader callback and a future per reply, on the raw descriptor: an asyncio stream
    (transport, protocol, reader and writer objects per run) costs a good part of a run's
    CPU in this process at hundreds of runs a second."""

    def __init__(self, sock: socket.socket):
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._fd = sock.fileno()
        sock.setblocking(False)
        self._buffer = bytearray()
        self._searched = 0
        self._lines: collections.deque[bytes] = collections.deque()
        self._eof = False
        self.overlong = False  # the run process sent a line over the limit (then: ended)
        self._waiter: asyncio.Future[None] | None = None
        self._loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset by a dying run process: as good as the end
            data = b""
        if data:
            self._take(data)
        else:
            self._eof = True
            self._loop.remove_reader(self._fd)
        waiter = self._waiter
        if waiter is not None and not waiter.done() and (self._lines or self._eof):
            waiter.set_result(None)

    def _take(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        end = buffer.find(b"\n", self._searched)
        while end >= 0:
            self._lines.append(bytes(buffer[start : end + 1]))
            start = end + 1
            end = buffer.find(b"\n", start)
        if start:
            del buffer[:start]
        self._searched = len(buffer)
        if len(buffer) > _LINE_LIMIT:  # a run process gone wrong: treated as ended
            buffer.clear()
            self.overlong = True
            self._eof = True
            self._loop.remove_reader(self._fd)

    async def readline(self) -> bytes:
        """The next line; ``b""`` once the run process has hung up."""
        while not self._lines:
            if self._eof:
                return b""
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._lines.popleft()

    async def write(self, data: bytes) -> None:
        """Send all of ``data``; a run process that has gone away is found by the reply."""
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except (BlockingIOError, InterruptedError):
                writable = self._loop.create_future()
                self._loop.add_writer(self._fd, writable.set_result, None)
                try:
                    await writable
                finally:
                    self._loop.remove_writer(self._fd)
            except OSError:  # EPIPE, ECONNRESET: the reply reads the end of the stream
                return

    def close(self) -> None:
        if self._sock.fileno() >= 0:
            self._loop.remove_reader(self._fd)
            self._sock.close()


class IsolatedEpisode:
    """One run of a task in its own forked process; the interface of ``Episode``."""

    runtime = "isolated"

    def __init__(self, task: Task):
        self.task = task
        self.tool_schemas: list[dict[str, Any]] = []
        self._channel: _RunChannel | None = None
        self._pidfd: int | None = None
        self._pid: int | None = None
        self._busy = False
        self._dead = False

    async def _request(self, op: str, **fields: Any) -> Any:
        if self._channel is None:
            raise ScenarioError("the isolated run is not started")
        self._busy = True  # until its reply: a run left here is killed by close()
        await self._channel.write(
            json.dumps({"op": op, **fields}, default=json_default).encode() + b"\n"
        )
        return await self._reply(op)

    async def _reply(self, op: str) -> Any:
        line = await self._channel.readline()
        self._busy = False  # answered (or ended)
        if not line and self._channel.overlong:
            self._kill()  # alive, and still writing its reply
            raise RunProcessDied(
                f"the reply of this run's process to '{op}' is longer than {_LINE_LIMIT} bytes "
                "(a prompt, tool result or reward info that large?): the run was ended"
            )
        if not line:
            self._dead = True  # its pid may be reused from now on: never signalled
            raise RunProcessDied(
                f"the process of this run ended without answering '{op}' "
                "(it crashed, exited or was killed)"
            )
        reply = json.loads(line)
        if "error" in reply:
            error = reply["error"]
            raise ScenarioError(f"{error['type']}: {error['message']}")
        return reply["result"]

    async def start(self) -> list[dict[str, Any]]:
        servers = _servers()
        for attempt in (1, 2):  # a fork server that died since its last run: another, once
            server = await servers.get(self.task.env)
            try:
                sock = server.spawn()
            except RunProcessDied:
                servers.gone(server)
                continue
            self._channel = channel = _RunChannel(sock)
            # The request goes with the connection (one wake-up less per run); the run
            # process says hello (its pid) first, then answers it.
            start = {"op": "start", "task": self.task.model_dump(mode="json")}
            self._busy = True
            await channel.write(json.dumps(start, default=json_default).encode() + b"\n")
            hello = await channel.readline()
            if hello:
                break
            # No hello: the server died with our request in its queue (it was being killed
            # as we sent it). A run process never ends before its hello otherwise.
            channel.close()
            self._channel = None
            if attempt == 2 or not await server.ended():
                self._dead = True
                raise RunProcessDied("the process of this run ended before it started")
            servers.gone(server)
        else:
            raise RunProcessDied("the isolated runtime's fork server is gone and did not restart")
        self._pid = json.loads(hello)["pid"]
        # The run process lives until we hang up, unless the start crashes it (then its
        # reply is missing, and a dead run is never signalled: see _reply). So a pidfd taken
        # here names it and only it, even after its pid is recycled.
        with contextlib.suppress(OSError, AttributeError):
            self._pidfd = os.pidfd_open(self._pid)
        started = await self._reply("start")
        self.tool_schemas = started["tools"]
        return started["messages"]

    async def call_tool(self, name: str, arguments: str | dict[str, Any] | None) -> ToolOutcome:
        arguments = parse_arguments(name, arguments)
        if isinstance(arguments, ToolOutcome):
            return arguments
        result = await self._request("call", name=name, arguments=arguments)
        return ToolOutcome(result["content"], bool(result["error"]))

    async def grade(self, answer: str | None) -> tuple[float, dict[str, Any]]:
        graded = await self._request("grade", answer=answer)
        return float(graded["reward"]), graded["info"]

    async def close(self) -> None:
        """End the run: hang up. The run process then runs its scenario's cleanup and exits
        (within ``_CLOSE_SECONDS``; the job's end waits for it). One abandoned in the middle
        of a request (a timeout, a cancel) is killed."""
        channel, self._channel = self._channel, None
        if channel is None:
            return
        channel.close()
        if self._busy:
            self._kill()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def _kill(self) -> None:
        if self._pidfd is not None and not self._dead:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        # Without a pidfd (not Linux) the fork server's group is killed when the job ends.


__all__ = ["FORK_AVAILABLE", "IsolatedEpisode", "RunProcessDied", "job_scope"]
