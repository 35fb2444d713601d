import os
import sys
from pathlib import Path

import pytest

# torch's OpenMP threads spin while they wait for work. On a machine whose cores are busy
# with other work (a loaded CI runner) the spinning fights it: a decoding-sized step of
# matrix products took 185 ms with both cores busy, 42 ms with passive waiting (24.6 vs
# 29.1 ms idle). The suite must pass on a loaded machine (issue 15), so it waits passively;
# set before torch is imported (here, and in every process the tests start).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
TOY = f"{ROOT / 'tests' / 'toyenv.py'}:env"


@pytest.fixture(autouse=True)
def workbench_home(tmp_path, monkeypatch):
    """Every test gets its own store; nothing touches ./.workbench."""
    home = tmp_path / "wb"
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    monkeypatch.delenv("WORKBENCH_DATABASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return home


@pytest.fixture
def toy():
    from workbench import resolve_environment

    return resolve_environment(TOY)


@pytest.fixture
def store():
    from workbench import get_store

    return get_store()


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run the real `workbench` command in a subprocess (the timeout only catches hangs)."""
    import subprocess

    exe = Path(sys.executable).with_name("workbench")
    return subprocess.run(
        [str(exe), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=timeout,
    )


@pytest.fixture(scope="session", autouse=True)
def no_container_outlives_the_tests():
    """After the session, no container this test process made is left (issue 6, item 4);
    leftovers of processes that died (tests that SIGKILL a CLI job) are swept, at the start
    and the end, without touching another test run's containers."""
    docker_runtime = sys.modules.get("workbench.runtimes.docker")
    if docker_runtime is not None and not docker_runtime.engine_problem():
        docker_runtime.clean()
    yield
    docker_runtime = sys.modules.get("workbench.runtimes.docker")
    if docker_runtime is None or docker_runtime.engine_problem():
        return
    from workbench.runtimes.docker import LABEL, docker_client

    ours = docker_client().api.containers(
        all=True, filters={"label": [LABEL, f"workbench.pid={os.getpid()}"]}
    )
    docker_runtime.clean()
    assert not ours, f"{len(ours)} workbench containers outlived their runs"
