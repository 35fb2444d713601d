"""Serve the notebook dashboard (``notebooks/dashboard.ipynb``) with Voila.

``workbench dashboard`` calls :func:`serve_dashboard`. This module only starts the server:
the dashboard's widgets live in ``widgets/`` (the library never imports them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from workbench import config
from workbench.errors import WorkbenchError

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "dashboard.ipynb"


def voila_command(
    host: str = "127.0.0.1", port: int = 8866, notebook: Path | str | None = None
) -> list[str]:
    """The Voila command line that serves the dashboard notebook."""
    return [
        sys.executable,
        "-m",
        "voila",
        str(notebook or NOTEBOOK),
        "--no-browser",
        f"--Voila.ip={host}",
        f"--port={port}",
        "--Voila.port_retries=0",
        "--show_tracebacks=True",
    ]


def voila_environment() -> dict[str, str]:
    """The kernel runs in notebooks/: point it at the caller's store, wherever that is."""
    env = dict(os.environ)
    env.setdefault("WORKBENCH_HOME", str(config.home()))
    return env


def serve_dashboard(host: str = "127.0.0.1", port: int = 8866) -> int:
    """Serve the dashboard with Voila until interrupted; prints the address. Returns the exit code."""
    if not NOTEBOOK.exists():
        raise WorkbenchError(
            f"the dashboard notebook is missing ({NOTEBOOK}): run from a workbench checkout"
        )
    print(f"Workbench dashboard: http://{host}:{port}/  (Ctrl-C stops it)", flush=True)
    try:
        return subprocess.call(voila_command(host, port), env=voila_environment())
    except KeyboardInterrupt:
        return 0
