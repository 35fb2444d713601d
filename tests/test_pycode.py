"""pycode: model-written functions graded by hidden tests inside the sandbox, and contained."""

import os
import re
import socket
import threading
from pathlib import Path

import pytest
from conftest import run_cli
from test_runtimes import needs_docker, our_containers

import workbench
from environments.pycode import env
from workbench.models.scripted import answer, call
from workbench.runtimes import RuntimeRefused


def test_refuses_the_in_process_runtime_with_one_line():
    task = env.task("implement", problem="add_digits")
    with pytest.raises(RuntimeRefused, match="refuses the in-process runtime"):
        workbench.create_job(workbench.Taskset("t", [task]), "scripted:expert", runtime="inprocess")
    result = run_cli("eval", "pycode-basics", "scripted:expert", "--runtime", "inprocess")
    assert result.returncode == 2
    assert "refuses the in-process" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
async def test_reward_is_the_fraction_of_hidden_tests_passed():
    # The subprocess runtime grades the same way, without Docker (it is no sandbox).
    job = await workbench.evaluate(
        "pycode-basics",
        ["scripted:expert", "scripted:weak"],
        runtime="subprocess",
        task_ids=["implement-run-length", "implement-count-vowels"],
        group_size=3,
    )
    df = job.traces_df()
    assert (df[df.model == "scripted:expert"]["reward"] == 1.0).all()
    weak = sorted(set(df[df.model == "scripted:weak"]["reward"].round(2)))
    assert any(0 < r < 1 for r in weak)  # partial credit: some hidden tests pass


# -- containment (Docker) -----------------------------------------------------------------

# Each attack defines add_digits correctly only if the attack worked, so a contained attack
# scores 0; the expert in the same job must still score 1 (the job is unharmed).
RIGHT = "def add_digits(n):\n    return sum(int(c) for c in str(n))\n"
WRONG = "def add_digits(n):\n    return -1\n"


def attack(body: str) -> str:
    return (
        "import os, socket, sys\nbroke = False\ntry:\n"
        + "".join(f"    {line}\n" for line in body.splitlines())
        + "except Exception:\n    pass\n"
        + f"if broke:\n    exec({RIGHT!r})\nelse:\n    exec({WRONG!r})\n"
    )


def mine() -> list[dict]:
    """Containers of this process (other processes may be running Docker jobs meanwhile)."""
    return our_containers(**{"workbench.pid": os.getpid()})


async def run_attack(name: str, code: str):
    env.policy(name)(lambda ctx: answer(f"```python\n{code}```"))
    try:
        job = await workbench.evaluate(
            workbench.Taskset("attack", [env.task("implement", problem="add_digits")]),
            [f"scripted:{name}", "scripted:expert"],
            runtime="docker",
        )
    finally:
        env.policies.pop(name)
    traces = {t.model: t for t in job.traces()}
    assert traces["scripted:expert"].reward == 1.0  # the job and the sandbox still work
    assert mine() == []
    return traces[f"scripted:{name}"]


@needs_docker
@pytest.mark.slow
async def test_network_is_unreachable():
    listener = socket.create_server(("0.0.0.0", 0))
    port = listener.getsockname()[1]
    reached = []
    threading.Thread(target=lambda: reached.append(listener.accept()), daemon=True).start()
    host_ip = socket.gethostbyname(socket.gethostname())
    body = (
        "".join(
            f"try:\n    socket.create_connection(({h!r}, {port}), timeout=2); broke = True\n"
            "except OSError:\n    pass\n"
            for h in ("127.0.0.1", host_ip, "172.17.0.1")
        )
        + "socket.getaddrinfo('pypi.org', 443); broke = True\n"
    )
    trace = await run_attack("network", attack(body))
    listener.close()
    assert trace.reward == 0.0 and reached == []


@needs_docker
@pytest.mark.slow
async def test_host_files_and_environment_variables_are_out_of_reach(tmp_path, monkeypatch):
    secret = tmp_path / "secret.txt"
    secret.write_text("host-secret")
    monkeypatch.setenv("WORKBENCH_TEST_SECRET", "env-secret")
    body = (
        f"try:\n    broke = broke or 'host-secret' in open({str(secret)!r}).read()\n"
        "except OSError:\n    pass\n"
        "broke = broke or 'WORKBENCH_TEST_SECRET' in os.environ\n"
        "for pid in os.listdir('/proc'):\n"
        "    try:\n        broke = broke or b'env-secret' in open(f'/proc/{pid}/environ', 'rb').read()\n"
        "    except (OSError, ValueError):\n        pass\n"
    )
    trace = await run_attack("snoop", attack(body))
    assert trace.reward == 0.0


@needs_docker
@pytest.mark.slow
async def test_a_fork_bomb_is_contained():
    body = (
        "for _ in range(100000):\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    trace = await run_attack("forkbomb", attack(body))
    assert trace.reward == 0.0
    assert trace.stop_reason in ("done", "error")


@needs_docker
@pytest.mark.slow
async def test_filling_the_disk_is_contained():
    body = (
        "written = 0\nchunk = b'x' * (1 << 20)\n"
        "for where in ('/tmp', '/', '/opt', os.getcwd()):\n"
        "    for i in range(200):\n"
        "        try:\n"
        "            with open(f'{where}/fill{i}', 'wb') as f:\n"
        "                for _ in range(20):\n"
        "                    f.write(chunk); written += len(chunk)\n"
        "        except OSError:\n"
        "            break\n"
        "broke = written > 256 << 20\n"
    )
    trace = await run_attack("diskfill", attack(body))
    assert trace.reward == 0.0


# -- the grader out of reach (issue 11): attack scripts in tests/attacks ------------------

ATTACKS = Path(__file__).parent / "attacks"


@needs_docker
@pytest.mark.slow
async def test_code_that_forges_its_reward_on_the_protocol_stream_scores_0():
    # A child that outlives the call writes fake results (reward 1.0) to the server's stdout.
    trace = await run_attack("forger", (ATTACKS / "forge_reward.py").read_text())
    assert trace.reward == 0.0 and trace.stop_reason == "done"


@needs_docker
@pytest.mark.slow
async def test_the_hidden_tests_are_out_of_reach_of_the_code():
    # The environment's files, and every other process's memory, environment and fds.
    trace = await run_attack("reader", (ATTACKS / "read_hidden_tests.py").read_text())
    assert trace.reward == 0.0 and trace.stop_reason == "done"


@needs_docker
@pytest.mark.slow
async def test_no_process_of_the_code_survives_its_call():
    linger = (ATTACKS / "linger.py").read_text()

    def lingerer(ctx):
        if ctx.step == 0:
            return call("run_python", code=linger)
        if ctx.step == 1:
            pid = re.search(r"lingering: (\d+)", ctx.last_result["printed"])[1]
            check = (
                f"import os\ntry:\n    state = open('/proc/{pid}/status').read()\n"
                "    print('alive' if 'State:\\tZ' not in state else 'gone')\n"
                "except OSError:\n    print('gone')\n"
            )
            return call("run_python", code=check)
        return answer("no answer")

    env.policy("lingerer")(lingerer)
    try:
        job = await workbench.evaluate(
            workbench.Taskset("linger", [env.task("implement", problem="add_digits")]),
            "scripted:lingerer",
            runtime="docker",
        )
    finally:
        env.policies.pop("lingerer")
    results = [m["content"] for m in job.traces()[0].messages if m["role"] == "tool"]
    assert "lingering: " in results[0]  # the process was started
    assert "gone" in results[1] and "alive" not in results[1]
    assert mine() == []
