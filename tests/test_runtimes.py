"""Runtimes: the MCP server, the subprocess and Docker runtimes, and their cleanup."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli

import workbench
from workbench.runtimes import RuntimeRefused, choose_runtime

WORKBENCH = str(Path(sys.executable).with_name("workbench"))


def docker_problem() -> str | None:
    from workbench.runtimes.docker import engine_problem

    return engine_problem()


_DOCKER_PROBLEM = docker_problem()  # says how to get an engine when there is none
needs_docker = pytest.mark.skipif(_DOCKER_PROBLEM is not None, reason=str(_DOCKER_PROBLEM))


def our_containers(**labels) -> list[dict]:
    from workbench.runtimes.docker import LABEL, docker_client

    filters = [LABEL] + [f"{k}={v}" for k, v in labels.items()]
    return docker_client().api.containers(all=True, filters={"label": filters})


async def test_official_mcp_client_lists_and_calls_shop_tools():
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=WORKBENCH, args=["env", "serve", "shop"])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        names = [t.name for t in (await session.list_tools()).tools]
        # Workbench's own control calls stay off the agent's tool list (but stay callable).
        assert {"search_products", "add_to_cart", "checkout"} <= set(names)
        assert not any(name.startswith(("workbench_", "_")) for name in names)

        found = await session.call_tool("search_products", {"query": "mouse"})
        assert not found.is_error and "Gaming Mouse" in found.content[0].text

        started = await session.call_tool(
            "workbench_start", {"scenario": "price_check", "args": {"product_name": "Desk Lamp"}}
        )
        assert "Desk Lamp" in started.structured_content["messages"][0]["content"]
        wrong = await session.call_tool("workbench_grade", {"answer": "$1"})
        assert wrong.structured_content["reward"] == 0.0

        bad = await session.call_tool("view_product", {"product_id": "nope"})
        assert bad.is_error  # a tool's exception is an error result, not a dead server


@pytest.mark.slow
async def test_subprocess_runtime_gives_the_same_rewards_as_in_process():
    tasks = ["checkout-gaming-mouse-apply-coupon", "price-check-desk-lamp", "cheapest-in-books"]
    rewards = {}
    for runtime in ("inprocess", "subprocess"):
        job = await workbench.evaluate(
            "shop-basics",
            ["scripted:expert", "scripted:weak"],
            group_size=2,
            task_ids=tasks,
            runtime=runtime,
            max_concurrent=4,
        )
        df = job.traces_df()
        assert (df["stop_reason"] != "error").all(), df["error_message"].tolist()
        rewards[runtime] = sorted(
            zip(df["task"], df["model"], df["group_index"], df["reward"], strict=True)
        )
    assert rewards["inprocess"] == rewards["subprocess"]


def test_runtime_choice_and_refusals(toy):
    assert choose_runtime(toy) == "inprocess"
    assert choose_runtime(toy, "subprocess") == "subprocess"
    with pytest.raises(RuntimeRefused, match="unknown runtime 'vm'"):
        choose_runtime(toy, "vm")
    notebook_env = workbench.Environment("made-here")
    with pytest.raises(RuntimeRefused, match="defined in this process only"):
        choose_runtime(notebook_env, "docker")


def test_cli_rejects_an_unknown_runtime():
    result = run_cli("eval", "shop-basics", "scripted:expert", "--runtime", "vm")
    assert result.returncode == 2, result.stderr
    assert "runtime: Input should be 'isolated'" in result.stderr and "(got 'vm')" in result.stderr


def test_docker_tests_skip_with_a_reason_that_says_how(monkeypatch):
    import workbench.runtimes.docker as runtime

    monkeypatch.setattr(runtime, "_client", None)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    problem = runtime.engine_problem()
    assert "apt-get install docker.io" in problem and "dockerd" in problem


# -- Docker -------------------------------------------------------------------------------


@needs_docker
@pytest.mark.slow
async def test_docker_runs_every_run_in_its_own_container_and_removes_it():
    from workbench.runtimes import docker as runtime

    before = len(runtime.started)
    job = await workbench.evaluate(
        "pycode-basics", ["scripted:expert", "scripted:weak"], runtime="docker", max_concurrent=4
    )
    board = job.leaderboard().set_index("model")
    assert board.loc["scripted:expert", "mean_reward"] == 1.0
    assert 0.3 < board.loc["scripted:weak", "mean_reward"] < 0.95  # the expected spread
    assert job.errors == 0
    ids = runtime.started[before:]
    assert len(ids) == len(set(ids)) == job.total == 20
    assert our_containers() == []


@needs_docker
@pytest.mark.slow
async def test_docker_containers_are_removed_on_timeout_and_cancel():
    job = await workbench.evaluate(
        "pycode-basics",
        "scripted:expert",
        runtime="docker",
        timeout=0.3,
        task_ids=None,
        max_concurrent=4,
    )
    assert set(job.traces_df()["stop_reason"]) == {"timeout"}
    assert our_containers() == []

    job = workbench.start("pycode-basics", "scripted:expert", runtime="docker", group_size=4)
    while not our_containers():
        await asyncio.sleep(0.05)
    job.cancel()
    await job
    assert job.status == "cancelled"
    assert our_containers() == []


@needs_docker
@pytest.mark.slow
def test_ctrl_c_removes_the_containers_of_a_cli_job(tmp_path):
    process = subprocess.Popen(
        [WORKBENCH, "eval", "pycode-basics", "scripted:expert", "-g", "8", "--runtime", "docker"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
        # Ctrl-C as a terminal delivers it: a test run started in the background (nohup,
        # `cmd &` in a script) hands its children SIGINT ignored, and the CLI would keep it so.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 600  # a hang bound, not a speed check
    while not our_containers(**{"workbench.pid": process.pid}):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=600)[0].decode()
    assert process.returncode == 130, output
    assert "resume with" in output
    assert our_containers(**{"workbench.pid": process.pid}) == []


@needs_docker
@pytest.mark.slow
def test_sigkill_of_a_docker_job_leaves_no_container_after_the_next_command(tmp_path):
    import socket

    from workbench.runtimes.docker import LABEL, docker_client
    from workbench.runtimes.images import BASE_IMAGE

    process = subprocess.Popen(
        [WORKBENCH, "eval", "pycode-basics", "scripted:expert", "--runtime", "docker", "-g", "4"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed = {"workbench.pid": str(process.pid)}
    deadline = time.monotonic() + 600  # hang bounds, not speed checks
    while not (started := our_containers(**killed)):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.kill()  # SIGKILL: no handler, no atexit hook runs
    process.wait()
    jobs = workbench.get_store().jobs()
    assert len(jobs) == 1  # its containers carry its id
    assert {c["Labels"].get("workbench.job") for c in started} == {jobs.iloc[0]["id"]}

    # The watchdog: each server sees its stdin close, exits, and its container goes.
    while any(c["State"] == "running" for c in our_containers(**killed)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # A server that would not stop (here: a sleep), left by the same dead process.
    api = docker_client().api
    hung = api.create_container(
        BASE_IMAGE,
        command=["sleep", "600"],
        labels={LABEL: "docker", **killed, "workbench.host": socket.gethostname()},
        host_config=api.create_host_config(network_mode="none"),
    )["Id"]
    api.start(hung)

    # The next command sweeps what the dead process left.
    one_task = ["--task-ids", "implement-add-digits"]
    result = run_cli("eval", "pycode-basics", "scripted:expert", "--runtime", "docker", *one_task)
    assert result.returncode == 0, result.stderr
    assert our_containers(**killed) == []


@pytest.mark.parametrize("runtime", ["isolated", "subprocess"])
async def test_a_model_cannot_reach_the_servers_control_calls_or_hidden_tools(runtime):
    from workbench.tasks import resolve_environment

    env = resolve_environment(f"{Path(__file__).parent / 'hud' / 'cheater.py'}:env")
    job = await workbench.evaluate([env("guess")], "scripted:cheater", runtime=runtime)
    trace = job.traces()[0]
    results = [m["content"] for m in trace.messages if m["role"] == "tool"]
    assert len(results) == 5 and all(r.startswith("Error: unknown tool") for r in results), results
    assert "Available tools: public." in results[0]  # the hidden tool is not offered either
    assert trace.stop_reason == "done" and trace.reward == 0.0
