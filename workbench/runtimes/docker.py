"""The Docker runtime: one container per run, MCP over the container's stdin and stdout.

A container has no network (``network_mode="none"``), limits on memory, CPU and processes,
a read-only root with a small tmpfs at ``/tmp``, no capabilities, and gets none of this
process's environment variables. Its server runs as ``nobody``, except for an environment
that runs untrusted code (``allow_inprocess=False``, e.g. ``pycode``): there the server runs
as root with only the capabilities to start and kill processes as another user, the
environment's files are readable by root only, and model-written code runs as ``nobody``
(``WORKBENCH_SANDBOX_USER``) with a scratch directory of its own (``WORKBENCH_SANDBOX_DIR``),
so it can read neither the hidden tests nor the server's memory or stdout, and cannot signal
it.

No container outlives its run: it is removed when its run ends, however it ends (answer,
error, timeout, cancel, Ctrl-C); an ``atexit`` hook removes any that an abrupt exit of the
event loop left behind. Against SIGKILL, which runs no hook: the container's stdin closes
when its owner dies, its server exits on that, and the engine removes an exited container by
itself (``auto_remove``); what still remains (a server that hung, a container made but not
started) is swept by the next process that starts a container, and by ``clean()``
(``workbench env clean``). Each container is labelled ``workbench.runtime=docker`` with its
owner's host, pid and start time, and the job it belongs to (``workbench.job``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import os
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import TYPE_CHECKING, Any

import anyio

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.environment import Environment

LABEL = "workbench.runtime"
HOW_TO_GET_ONE = (
    "install and start a Docker engine: `apt-get install docker.io` then "
    "`dockerd --bridge=none --iptables=false &` (as root)"
)
# Per container. The tmpfs bounds what model-written code can write; pids bound fork bombs.
LIMITS: dict[str, Any] = {
    "mem_limit": "512m",
    "memswap_limit": "512m",
    "nano_cpus": 1_000_000_000,
    "pids_limit": 64,
    "tmpfs": {"/tmp": "rw,nosuid,nodev,size=64m,mode=1777"},
}
# Where model-written code runs in an environment that runs untrusted code: its own user and
# its own tmpfs. /tmp is then the server's alone (root, mode 0700): no writable path is shared.
SANDBOX_USER = 65534
SANDBOX_DIR = "/sandbox"
SANDBOX_TMPFS: dict[str, str] = {
    "/tmp": "rw,nosuid,nodev,size=32m,mode=0700",
    SANDBOX_DIR: f"rw,nosuid,nodev,size=64m,mode=0700,uid={SANDBOX_USER},gid={SANDBOX_USER}",
}
# Setting the user of a child and killing its processes; nothing else.
SANDBOX_CAPABILITIES = ["SETUID", "SETGID", "KILL"]

# The job a container belongs to, for its label: set around a job's runs (``job_scope``).
JOB: contextvars.ContextVar[str | None] = contextvars.ContextVar("workbench_job", default=None)

_client = None
_live: set[str] = set()  # containers of this process not yet removed
started: list[str] = []  # ids of every container this process started (tests read it)


class DockerUnavailable(WorkbenchError):
    """No Docker engine answers."""


def docker_client():
    """The Docker SDK client, or a one-line :class:`DockerUnavailable` that says what to do."""
    global _client
    if _client is None:
        try:
            import docker
        except ImportError:
            raise DockerUnavailable(
                "the docker runtime needs the 'docker' extra: "
                "pip install 'agent-research-workbench[docker]'"
            ) from None
        try:
            client = docker.from_env(timeout=120)
            client.ping()
        except Exception as e:
            raise DockerUnavailable(
                f"no Docker engine answers ({type(e).__name__}): {HOW_TO_GET_ONE}"
            ) from None
        _client = client
    return _client


def engine_problem() -> str | None:
    """None when a Docker engine answers; otherwise why not, and how to get one."""
    try:
        docker_client()
    except DockerUnavailable as e:
        return str(e)
    return None


def _remove(container_id: str) -> None:
    with suppress(Exception):
        docker_client().api.remove_container(container_id, force=True, v=True)
    _live.discard(container_id)


@atexit.register
def _remove_leftovers() -> None:
    for container_id in list(_live):
        _remove(container_id)


def remove_containers() -> int:
    """Remove every container the workbench made, of any process; returns how many."""
    return clean(everything=True)


def clean(everything: bool = False, job: str | None = None) -> int:
    """Remove the workbench's leftover containers; returns how many were removed.

    Left over: exited or dead ones, and those whose owner process is gone (a SIGKILLed job's
    server that hung, or a container made and never started). ``everything``: every
    workbench container, running ones of live processes too. ``job``: only that job's.
    ``workbench env clean [--all] [--job ID]`` calls this.
    """
    filters = [LABEL] + ([f"workbench.job={job}"] if job else [])
    found = docker_client().api.containers(all=True, filters={"label": filters})
    doomed = [c["Id"] for c in found if everything or _left_over(c)]
    for container_id in doomed:
        _remove(container_id)
    return len(doomed)


def _left_over(container: dict) -> bool:
    if container.get("State") in ("exited", "dead"):
        return True
    labels = container.get("Labels") or {}
    if labels.get("workbench.host", socket.gethostname()) != socket.gethostname():
        return False  # another machine's process: it cannot be checked from here
    try:
        pid = int(labels.get("workbench.pid", ""))
    except ValueError:
        return False
    return not _alive(pid, labels.get("workbench.started") or None)


def _started(pid: int) -> str | None:
    """When a process started (clock ticks since boot), which tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    return started is None or _started(pid) in (None, started)


_swept = False
_sweep_lock = threading.Lock()


def _sweep_once() -> None:
    """The first container a process starts first removes what dead processes left."""
    global _swept
    with _sweep_lock:
        if not _swept:
            _swept = True
            with suppress(Exception):  # a sweep that fails must not fail the run
                clean()


@contextmanager
def job_scope(job_id: str) -> Iterator[None]:
    """Label the containers started inside the block (in this task and the tasks it starts)
    with ``job_id``."""
    token = JOB.set(job_id)
    try:
        yield
    finally:
        JOB.reset(token)


def untrusted(env: Environment) -> bool:
    """An environment that runs model-written code: it gets the sandbox user in a container."""
    return not getattr(env, "allow_inprocess", True)


def _create(env: Environment, job: str | None = None) -> str:
    from workbench.runtimes import SERVER_BOOTSTRAP
    from workbench.runtimes.images import container_ref, ensure_image

    _sweep_once()
    api = docker_client().api
    image = ensure_image(env)
    sandbox = untrusted(env)
    host_config = api.create_host_config(
        network_mode="none",
        read_only=True,
        cap_drop=["ALL"],
        cap_add=SANDBOX_CAPABILITIES if sandbox else None,
        security_opt=["no-new-privileges"],
        init=True,  # a small init as PID 1 reaps the orphans of killed code
        auto_remove=True,  # an exited container goes, even when its owner was SIGKILLed
        **{**LIMITS, "tmpfs": SANDBOX_TMPFS if sandbox else LIMITS["tmpfs"]},
    )
    labels = {
        LABEL: "docker",
        "workbench.env": env.name,
        "workbench.host": socket.gethostname(),
        "workbench.pid": str(os.getpid()),
        "workbench.started": _started(os.getpid()) or "",
    }
    if job:
        labels["workbench.job"] = job
    created = api.create_container(
        image,
        command=["python3", "-c", SERVER_BOOTSTRAP, container_ref(env)],
        user="0:0" if sandbox else "65534:65534",
        stdin_open=True,  # and StdinOnce: the server sees EOF when its owner goes away
        environment=(
            {"WORKBENCH_SANDBOX_USER": str(SANDBOX_USER), "WORKBENCH_SANDBOX_DIR": SANDBOX_DIR}
            if sandbox
            else {}
        ),
        working_dir="/tmp",
        network_disabled=True,
        host_config=host_config,
        labels=labels,
        use_config_proxy=False,  # no proxy variables from ~/.docker/config.json either
    )
    container_id = created["Id"]
    _live.add(container_id)
    started.append(container_id)
    return container_id


def _attach_and_start(container_id: str) -> socket.socket:
    api = docker_client().api
    params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
    wrapped = api.attach_socket(container_id, params=params)
    api.start(container_id)
    sock = getattr(wrapped, "_sock", wrapped)
    sock.setblocking(False)
    return sock


@asynccontextmanager
async def container_transport(env: Environment):
    """A fresh container running the environment's MCP server; yields the MCP streams.

    The container is removed on the way out, whatever the way out is.
    """
    from workbench.runtimes.subprocess import server_failure

    container_id, cancelled = await _to_completion(asyncio.to_thread(_create, env, JOB.get()))
    if cancelled:
        await _to_completion(asyncio.to_thread(_remove, container_id))
        raise cancelled
    stderr = bytearray()
    try:
        sock = await asyncio.to_thread(_attach_and_start, container_id)
        try:
            async with _socket_streams(sock, stderr) as streams:
                yield streams
        except Exception as e:
            raise server_failure(e, stderr.decode(errors="replace")) from e
        finally:
            sock.close()
    finally:
        _, cancelled = await _to_completion(asyncio.to_thread(_remove, container_id))
        if cancelled:
            raise cancelled


async def _to_completion(coroutine) -> tuple[Any, asyncio.CancelledError | None]:
    """Await a (short) Docker call to its end even through cancellation, which is returned
    for the caller to re-raise: a container is never left behind by a cancel."""
    future = asyncio.ensure_future(coroutine)
    cancelled = None
    while True:
        try:
            return await asyncio.shield(future), cancelled
        except asyncio.CancelledError as e:
            if future.done():
                raise
            cancelled = e


@asynccontextmanager
async def _socket_streams(sock: socket.socket, stderr: bytearray):
    """MCP read/write streams over a Docker attach socket (stdout and stderr multiplexed)."""
    import mcp_types as types
    from mcp.shared.message import SessionMessage

    loop = asyncio.get_running_loop()
    read_writer, read_stream = anyio.create_memory_object_stream(0)
    write_stream, write_reader = anyio.create_memory_object_stream(0)

    async def reader() -> None:
        buffer, lines = b"", b""
        async with read_writer:
            while True:
                try:
                    chunk = await loop.sock_recv(sock, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                while len(buffer) >= 8:
                    kind, size = buffer[0], struct.unpack(">I", buffer[4:8])[0]
                    if len(buffer) < 8 + size:
                        break
                    payload, buffer = buffer[8 : 8 + size], buffer[8 + size :]
                    if kind == 2:
                        stderr.extend(payload)
                        del stderr[:-8192]
                        continue
                    lines += payload
                    *complete, lines = lines.split(b"\n")
                    for line in complete:
                        if not line.strip():
                            continue
                        try:
                            message = types.jsonrpc_message_adapter.validate_json(
                                line, by_name=False
                            )
                            item = SessionMessage(message)
                        except ValueError as e:
                            item = e
                        try:
                            await read_writer.send(item)
                        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                            return

    async def writer() -> None:
        async with write_reader:
            async for message in write_reader:
                data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                try:
                    await loop.sock_sendall(sock, data.encode() + b"\n")
                except OSError:
                    return

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        tg.start_soon(writer)
        try:
            yield read_stream, write_stream
        finally:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_WR)  # the server sees EOF on stdin and exits
            tg.cancel_scope.cancel()
            for stream in (read_stream, write_stream):
                await stream.aclose()
