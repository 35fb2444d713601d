"""The subprocess runtime: the environment's MCP server as a child process, over stdio."""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import asynccontextmanager


class ServerError(RuntimeError):
    """An environment server died or failed to start; carries the end of its stderr."""


def server_failure(error: Exception, stderr: str) -> ServerError:
    tail = stderr.strip().splitlines()[-3:]
    detail = " | ".join(tail) if tail else f"{type(error).__name__}: {error}"
    return ServerError(f"the environment server failed: {detail}")


@asynccontextmanager
async def subprocess_transport(ref: str):
    """Start ``python -c SERVER_BOOTSTRAP REF``; yields the MCP read and write streams.

    The child gets the MCP SDK's short list of environment variables (HOME, PATH, ...) and
    none of this process's secrets. It starts in this directory, so ``pkg.module:attr`` and
    relative file references resolve as they do here (the directory last on its import
    path: nothing there shadows an installed module), then runs in an empty directory of
    its own, so what the run writes stays its own.
    """
    from mcp.client.stdio import StdioServerParameters, stdio_client

    from workbench.runtimes import SERVER_BOOTSTRAP

    params = StdioServerParameters(
        command=sys.executable,
        args=["-c", SERVER_BOOTSTRAP, ref, "--private-cwd"],
        env={"PYTHONDONTWRITEBYTECODE": "1"},
        cwd=os.getcwd(),
    )
    with tempfile.TemporaryFile("w+") as stderr:
        try:
            async with stdio_client(params, errlog=stderr) as streams:
                yield streams
        except Exception as e:
            stderr.seek(0)
            raise server_failure(e, stderr.read()) from e
