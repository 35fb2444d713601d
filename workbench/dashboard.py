"""Serve the notebook dashboard (``notebooks/dashboard.ipynb``) with Voila.

``workbench dashboard`` calls :func:`serve_dashboard`. This module only starts the server:
the dashboard's widgets live in ``widgets/`` (the library never imports them).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

from workbench import config
from workbench.errors import WorkbenchError

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "dashboard.ipynb"


# Each page load starts a kernel (about 270 MB) that outlives the page: a kernel that no page
# is connected to and that has run nothing for this long is shut down. It must be longer
# than a kernel takes to start and run the notebook: Voila culls a pool kernel still starting
# (its pool only protects the started ones), and the page given it never draws.
CULL_IDLE_SECONDS = 120.0
CULL_EVERY_SECONDS = 30.0


def voila_command(
    host: str = "127.0.0.1",
    port: int = 8866,
    notebook: Path | str | None = None,
    *,
    cull_idle: float = CULL_IDLE_SECONDS,
    cull_every: float = CULL_EVERY_SECONDS,
    preheat: bool = True,
) -> list[str]:
    """The Voila command line that serves the dashboard notebook.

    ``cull_idle``: seconds after which a kernel with no page connected and nothing running
    is shut down (checked every ``cull_every`` seconds); a kernel whose page is open is
    never culled. ``preheat``: keep one kernel started with the notebook already run, so a
    page opens without waiting for a kernel to start and import the workbench (most of a
    cold load on 2 cores); the dashboard reads the store again when its page opens.
    """
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
        f"--MappingKernelManager.cull_idle_timeout={int(math.ceil(cull_idle))}",
        f"--MappingKernelManager.cull_interval={int(math.ceil(cull_every))}",
        "--MappingKernelManager.cull_connected=False",
        "--MappingKernelManager.cull_busy=False",
        # The pool is filled again a few seconds after a page takes its kernel, so the
        # refill does not compete with that page's first load for the CPU.
        *(
            [
                "--preheat_kernel=True",
                "--pool_size=1",
                "--VoilaKernelManager.fill_delay=5",
                # a pooled kernel's wait is not idleness (see the class)
                "--VoilaConfiguration.multi_kernel_manager_class="
                "workbench.dashboard_kernels.DashboardKernelManager",
            ]
            if preheat
            else []
        ),
    ]


def voila_environment() -> dict[str, str]:
    """The kernel runs in notebooks/: point it at the caller's store, wherever that is."""
    env = dict(os.environ)
    env.setdefault("WORKBENCH_HOME", str(config.home()))
    return env


def serve_dashboard(
    host: str = "127.0.0.1",
    port: int = 8866,
    *,
    cull_idle: float = CULL_IDLE_SECONDS,
    cull_every: float = CULL_EVERY_SECONDS,
) -> int:
    """Serve the dashboard with Voila until interrupted; prints the address. Returns the exit
    code. Kernels of closed pages are shut down after ``cull_idle`` seconds."""
    if not NOTEBOOK.exists():
        raise WorkbenchError(
            f"the dashboard notebook is missing ({NOTEBOOK}): run from a workbench checkout"
        )
    print(f"Workbench dashboard: http://{host}:{port}/  (Ctrl-C stops it)", flush=True)
    try:
        command = voila_command(host, port, cull_idle=cull_idle, cull_every=cull_every)
        return subprocess.call(command, env=voila_environment())
    except KeyboardInterrupt:
        return 0
