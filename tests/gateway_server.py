"""Start `workbench serve` as a real subprocess on a free 127.0.0.1 port, for tests."""

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Gateway:
    url: str
    port: int
    process: subprocess.Popen
    stdout: Path
    stderr: Path

    def log(self) -> str:
        """What the server wrote to stderr so far (warnings, one line per client hang-up)."""
        return self.stderr.read_text()

    def cpu_seconds(self) -> float:
        """CPU time the server has used, all threads together (Linux)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def gateway_process(
    *args: str,
    home: Path,
    timeout: float = 180,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
):
    """`workbench serve ARGS` until the block ends; its output goes to files, so a chatty
    server never blocks on a full pipe."""
    port = free_port()
    exe = Path(sys.executable).with_name("workbench")
    environ = {k: v for k, v in os.environ.items() if k != "WORKBENCH_API_KEY"}
    environ.update({"WORKBENCH_HOME": str(home), "COLUMNS": "200", **(env or {})})
    with tempfile.TemporaryDirectory() as logs:
        out, err = Path(logs) / "stdout", Path(logs) / "stderr"
        with out.open("w") as stdout, err.open("w") as stderr:
            proc = subprocess.Popen(
                [str(exe), "serve", "--port", str(port), *args],
                env=environ,
                stdout=stdout,
                stderr=stderr,
                preexec_fn=preexec_fn,
            )
        gateway = Gateway(f"http://127.0.0.1:{port}", port, proc, out, err)
        try:
            deadline = time.time() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"workbench serve exited: {err.read_text()[-2000:]}")
                try:
                    httpx.get(f"{gateway.url}/health", timeout=1)
                    break
                except httpx.TransportError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.3)
            yield gateway
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@contextmanager
def running_gateway(*args: str, home: Path, timeout: float = 180):
    """The gateway's URL. Without a key among ``args`` it serves with ``--no-auth``: tests
    that do not test authentication call it as a trusted local process would."""
    if not {"--api-key", "--no-auth"} & set(args):
        args = ("--no-auth", *args)
    with gateway_process(*args, home=home, timeout=timeout) as gateway:
        yield gateway.url
