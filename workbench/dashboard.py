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
    token: bool = True,
) -> list[str]:
    """The Voila command line that serves the dashboard notebook.

    ``cull_idle``: seconds after which a kernel with no page connected and nothing running
    is shut down (checked every ``cull_every`` seconds); a kernel whose page is open is
    never culled. ``preheat``: keep one kernel started with the notebook already run, so a
    page opens without waiting for a kernel to start and import the workbench (most of a
    cold load on 2 cores); the dashboard reads the store again when its page opens.
    ``token``: pages, kernels and their websockets need the token of ``JUPYTER_TOKEN`` (set
    by :func:`voila_environment`, never on the command line, where other users see it).
    """
    return [
        sys.executable,
        "-m",
        "voila",
        str(notebook or NOTEBOOK),
        "--no-browser",
        *(["--Voila.auto_token=True"] if token else []),
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


def voila_environment(token: str | None = None) -> dict[str, str]:
    """The kernel runs in notebooks/: point it at the caller's store, wherever that is.
    ``token``: the one pages must bring (``JUPYTER_TOKEN``, read by Jupyter's server)."""
    env = dict(os.environ)
    env.setdefault("WORKBENCH_HOME", str(config.home()))
    env.pop("JUPYTER_TOKEN", None)
    if token:
        env["JUPYTER_TOKEN"] = token
    return env


def serve_dashboard(
    host: str = "127.0.0.1",
    port: int = 8866,
    *,
    cull_idle: float = CULL_IDLE_SECONDS,
    cull_every: float = CULL_EVERY_SECONDS,
    token: str | None = "",
) -> int:
    """Serve the dashboard with Voila until interrupted; prints the address. Returns the exit
    code. Kernels of closed pages are shut down after ``cull_idle`` seconds.

    A page needs a token (a new random one unless ``token`` names one; the printed address
    carries it, and the browser keeps it in a cookie): without one, any web page you visit
    could reach the dashboard by pointing a name of its own at 127.0.0.1 (DNS rebinding) and
    drive it, reading traces and starting jobs on your keys. ``token=None`` serves without
    one (a warning is printed).
    """
    import secrets

    if not NOTEBOOK.exists():
        raise WorkbenchError(
            f"the dashboard notebook is missing ({NOTEBOOK}): run from a workbench checkout"
        )
    if token == "":
        token = secrets.token_urlsafe(24)
    address = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    print(f"Workbench dashboard: {address}  (Ctrl-C stops it)", flush=True)
    if not token:
        print(
            "warning: no token: any local program, and any web page you visit (by DNS "
            "rebinding), can use this dashboard",
            file=sys.stderr,
            flush=True,
        )
    try:
        command = voila_command(
            host, port, cull_idle=cull_idle, cull_every=cull_every, token=bool(token)
        )
        return subprocess.call(command, env=voila_environment(token))
    except KeyboardInterrupt:
        return 0
