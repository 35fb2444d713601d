"""Start `workbench serve` as a real subprocess on a free 127.0.0.1 port, for tests."""

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_gateway(*args: str, home: Path, timeout: float = 180):
    port = free_port()
    exe = Path(sys.executable).with_name("workbench")
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"workbench serve exited: {proc.stderr.read()[-2000:]}")
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
