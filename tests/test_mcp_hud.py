"""MCP as HUD speaks it: a plain `mcp` client plays the shop, and any MCP server's tools mount.

The clients here are the `mcp` SDK's own (`ClientSession` over stdio or streamable HTTP), as a
researcher with no Workbench on their side would write them: scenarios are prompts, the
answer goes in through `_hud_submit`, the reward comes out of the scenario's resource.
"""

import asyncio
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from test_runtimes import needs_docker

import workbench
from environments.shop import env as shop
from environments.shop.policies import expert
from workbench import Environment, PolicyContext, Taskset, answer, call
from workbench.mcp_mount import connect_mcp
from workbench.runtimes.docker import SANDBOX_USER
from workbench.runtimes.mcp_server import CONTROL_TOOLS

WORKBENCH = str(Path(sys.executable).with_name("workbench"))
CALCULATOR = str(Path(__file__).with_name("mcp_calculator_server.py"))
MCP_ENVS = Path(__file__).with_name("mcp_envs.py")
SHOP_TOOLS = set(shop.tools)


@asynccontextmanager
async def shop_over_stdio():
    server = StdioServerParameters(command=WORKBENCH, args=["env", "serve", "shop"])
    async with stdio_client(server) as (read, write), ClientSession(read, write) as mcp:
        await mcp.initialize()
        yield mcp


@dataclass
class HttpServer:
    """A `workbench env serve ... --transport http` process: where it listens and the header
    it asks for, both as it printed them."""

    url: str
    headers: dict[str, str]
    process: subprocess.Popen
    banner: str


@contextmanager
def serve_over_http(ref: str, env: dict[str, str] | None = None):
    """`workbench env serve REF --transport http --port 0`, its address and token read from
    the two lines it prints on stderr once it listens (the rest of stderr is drained)."""
    environ = {k: v for k, v in os.environ.items() if k != "WORKBENCH_MCP_TOKEN"}
    server = subprocess.Popen(
        [WORKBENCH, "env", "serve", ref, "--transport", "http", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**environ, **(env or {})},
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in server.stderr], daemon=True).start()
    try:
        banner = [lines.get(timeout=120)]  # serving 'shop' over MCP at http://...
        with contextlib.suppress(queue.Empty):  # Authorization: Bearer TOKEN, right after
            banner.append(lines.get(timeout=10))
        assert "http://127.0.0.1:" in banner[0], banner
        url = banner[0].split(" at ")[-1].strip()
        name, _, value = banner[-1].strip().partition(": ")
        headers = {name: value} if name == "Authorization" else {}
        yield HttpServer(url, headers, server, "".join(banner))
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def shop_over_http():
    with serve_over_http("shop") as server:
        yield server


@asynccontextmanager
async def connect_http(server: HttpServer):
    """A plain `mcp` client over streamable HTTP, sending the server's token."""
    http = create_mcp_http_client(headers=server.headers)
    async with (
        http,
        streamable_http_client(server.url, http_client=http) as (read, write),
        ClientSession(read, write) as mcp,
    ):
        await mcp.initialize()
        yield mcp


async def play(mcp: ClientSession, scenario: str, policy=expert, **args) -> dict:
    """One run as a generic agent does it: the prompt, the policy's tool calls, the answer,
    then the scenario's evaluation. Arguments go as strings, as MCP prompts carry them."""
    task = shop.task(scenario, **args)
    strings = {k: v if isinstance(v, str) else json.dumps(v) for k, v in args.items()}
    prompt = await mcp.get_prompt(f"shop:{scenario}", strings)
    messages = [{"role": m.role, "content": m.content.text} for m in prompt.messages]
    tools = [
        {"type": "function", "function": {"name": t.name}} for t in (await mcp.list_tools()).tools
    ]
    while True:
        step = policy(PolicyContext(task=task, messages=messages, tools=tools))
        messages.append(step)
        if not step.get("tool_calls"):
            break
        for tool_call in step["tool_calls"]:
            function = tool_call["function"]
            result = await mcp.call_tool(function["name"], json.loads(function["arguments"]))
            text = result.content[0].text
            messages.append({"role": "tool", "tool_call_id": tool_call["id"], "content": text})
    submitted = await mcp.call_tool(
        "_hud_submit", {"scenario": scenario, "answer": step["content"]}
    )
    assert not submitted.is_error, submitted.content[0].text
    evaluation = await mcp.read_resource(f"shop:{scenario}")
    return json.loads(evaluation.contents[0].text)


def careless(ctx: PolicyContext) -> dict:
    """Says it bought the product without buying anything."""
    return answer(f"I bought the {ctx.args['product_name']}.")


# -- the shop over stdio ---------------------------------------------------------------------


async def test_scenarios_are_prompts_and_resources_and_only_the_shop_tools_are_listed():
    async with shop_over_stdio() as mcp:
        prompts = {p.name: p for p in (await mcp.list_prompts()).prompts}
        assert set(prompts) == {"shop:checkout", "shop:price_check", "shop:cheapest_in"}
        checkout = {a.name: a for a in prompts["shop:checkout"].arguments}
        assert checkout["product_name"].required and not checkout["apply_coupon"].required
        assert "Gaming Mouse" in checkout["product_name"].description
        assert prompts["shop:checkout"].meta["arguments"][1] == {
            "name": "apply_coupon",
            "required": False,
            "default": False,
            "type": "boolean",
        }

        resources = (await mcp.list_resources()).resources
        assert {r.uri for r in resources} == set(prompts)
        assert {r.mime_type for r in resources} == {"application/json"}

        listed = {t.name for t in (await mcp.list_tools()).tools}
        assert listed == SHOP_TOOLS  # no workbench_* control tools, no _hud_submit
        assert not listed & set(CONTROL_TOOLS)


async def test_a_generic_client_plays_a_scenario_and_reads_its_reward():
    async with shop_over_stdio() as mcp:
        good = await play(mcp, "checkout", product_name="Gaming Mouse", apply_coupon=True)
        assert good["reward"] == 1.0 and good["done"] is True and not good["isError"]
        assert good["content"] == "bought Gaming Mouse with TECH20"
        again = await mcp.read_resource("shop:checkout")  # a second read: the same evaluation
        assert json.loads(again.contents[0].text) == good

        # A new prompt is a new run on a fresh state: the first run's order is gone.
        wrong = await play(mcp, "checkout", policy=careless, product_name="Gaming Mouse")
        assert wrong["reward"] == 0.0 and wrong["content"] == "no order was placed"

        priced = await play(mcp, "price_check", product_name="Desk Lamp")
        assert priced["reward"] == 1.0 and priced["info"]["price"] == 34.9


async def test_mistakes_are_errors_that_say_what_to_do():
    async with shop_over_stdio() as mcp:
        with pytest.raises(MCPError, match="get a scenario's prompt first"):
            await mcp.read_resource("shop:checkout")
        with pytest.raises(MCPError, match="argument 'product_name'"):
            await mcp.get_prompt("shop:checkout", {"product_name": "Flying Car"})
        with pytest.raises(MCPError, match="has no scenario 'shop:refund'"):
            await mcp.get_prompt("shop:refund", {})

        await mcp.get_prompt("shop:price_check", {"product_name": "Desk Lamp"})
        other = await mcp.call_tool("_hud_submit", {"scenario": "checkout", "answer": "$1"})
        assert other.is_error and "not 'checkout'" in other.content[0].text
        with pytest.raises(MCPError, match="'price_check', not 'cheapest_in'"):
            await mcp.read_resource("shop:cheapest_in")

        # Workbench's own control tools are unlisted but still answer.
        started = await mcp.call_tool(
            "workbench_start", {"scenario": "price_check", "args": {"product_name": "Desk Lamp"}}
        )
        assert "Desk Lamp" in started.structured_content["messages"][0]["content"]
        graded = await mcp.call_tool("workbench_grade", {"answer": "$34.90"})
        assert graded.structured_content["reward"] == 1.0


# -- the shop over streamable HTTP -----------------------------------------------------------


async def test_over_http_each_session_has_its_own_run(shop_over_http):
    async def expert_session():
        async with connect_http(shop_over_http) as mcp:
            assert {t.name for t in (await mcp.list_tools()).tools} == SHOP_TOOLS
            return await play(mcp, "checkout", product_name="Gaming Mouse", apply_coupon=True)

    async def careless_session():
        async with connect_http(shop_over_http) as mcp:
            return await play(mcp, "checkout", policy=careless, product_name="Gaming Mouse")

    # Concurrent sessions: one session's order never counts for the other's run.
    good, wrong = await asyncio.gather(expert_session(), careless_session())
    assert (good["reward"], wrong["reward"]) == (1.0, 0.0)


def test_mounted_over_http_with_its_token_the_shop_shows_its_tools_and_nothing_else(
    shop_over_http,
):
    # The token goes as HUD's mcp_config sends headers.
    mall = Environment("mall")
    config = {"shop": {"url": shop_over_http.url, "headers": shop_over_http.headers}}
    connect_mcp(mall, config, name_prefix="shop")
    assert set(mall.tools) == {f"shop_{name}" for name in SHOP_TOOLS}


# -- who may connect over HTTP, and where its runs play ---------------------------------------

MCP_REQUEST = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "curl", "version": "1"},
    },
}


def test_over_http_a_request_without_the_token_is_refused(shop_over_http):
    url, token = shop_over_http.url, shop_over_http.headers
    assert token["Authorization"].startswith("Bearer mcp-")  # a fresh one, printed
    for auth in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": token["Authorization"] + "x"},
    ):
        refused = httpx.post(url, json=INITIALIZE, headers={**MCP_REQUEST, **auth})
        assert refused.status_code == 401, refused.text
        assert (
            "mcp-session-id" not in refused.headers
            and "Bearer" in refused.headers["www-authenticate"]
        )

    opened = httpx.post(url, json=INITIALIZE, headers={**MCP_REQUEST, **token})
    assert opened.status_code == 200 and opened.headers["mcp-session-id"]
    # A session's id is no key: a tool call without the token is refused all the same.
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "view_cart", "arguments": {}},
    }
    session = {
        "mcp-session-id": opened.headers["mcp-session-id"],
        "mcp-protocol-version": "2025-06-18",
    }
    assert httpx.post(url, json=call, headers={**MCP_REQUEST, **session}).status_code == 401
    # The SDK's DNS-rebinding check still applies to a request with the token.
    rebound = {**MCP_REQUEST, **token, "Host": "evil.example"}
    assert httpx.post(url, json=INITIALIZE, headers=rebound).status_code == 421


def test_over_http_the_token_can_come_from_the_environment_and_is_not_printed():
    with serve_over_http("shop", env={"WORKBENCH_MCP_TOKEN": "s3cret-from-env"}) as server:
        assert "s3cret" not in server.banner
        assert server.headers == {"Authorization": "Bearer $WORKBENCH_MCP_TOKEN"}
        mine = {"Authorization": "Bearer s3cret-from-env"}
        assert httpx.post(server.url, json=INITIALIZE, headers={**MCP_REQUEST, **mine}).is_success
        assert httpx.post(server.url, json=INITIALIZE, headers=MCP_REQUEST).status_code == 401


async def evaluation(mcp: ClientSession, resource: str) -> dict:
    return json.loads((await mcp.read_resource(resource)).contents[0].text)


async def test_over_http_sessions_of_a_hud_style_environment_share_no_globals():
    # Its state is a module global: sessions that shared the server's process would share it.
    with serve_over_http(f"{MCP_ENVS}:globals_env") as server:
        async with connect_http(server) as idle:
            await idle.get_prompt("mcp-globals:idle", {})
            async with connect_http(server) as busy:  # both sessions open at once
                await busy.get_prompt("mcp-globals:idle", {})
                solved = await busy.call_tool("solve", {})
                await busy.call_tool("_hud_submit", {"scenario": "idle", "answer": "solved"})
                busy_result = await evaluation(busy, "mcp-globals:idle")
            await idle.call_tool("_hud_submit", {"scenario": "idle", "answer": "nothing"})
            idle_result = await evaluation(idle, "mcp-globals:idle")
    # Each graded on its own actions: the other session's solve() is not this one's.
    assert (busy_result["reward"], idle_result["reward"]) == (1.0, 0.0)
    assert f"process {server.process.pid}" not in solved.content[0].text


async def runs_pids(mcp: ClientSession, runs: int = 2) -> list[str]:
    """Play ``runs`` runs of mcp-code's scenario; the pid each one's tool ran in."""
    pids = []
    for _ in range(runs):
        await mcp.get_prompt("mcp-code:pid", {})
        pid = (await mcp.call_tool("whoami", {})).content[0].text
        await mcp.call_tool("_hud_submit", {"scenario": "pid", "answer": pid})
        assert (await evaluation(mcp, "mcp-code:pid"))["reward"] == 1.0  # graded there too
        pids.append(pid)
    return pids


async def test_an_environment_that_refuses_inprocess_never_plays_in_the_server():
    with serve_over_http(f"{MCP_ENVS}:code_env") as server:
        async with connect_http(server) as mcp:
            pids = await runs_pids(mcp)
        async with connect_http(server) as mcp:  # tools alone, no prompt: a run of its own too
            pids.append((await mcp.call_tool("whoami", {})).content[0].text)
    assert str(server.process.pid) not in pids and len(set(pids)) == 3, pids

    # On stdio too: each run in a process of its own, never the server's one process.
    command = StdioServerParameters(
        command=WORKBENCH, args=["env", "serve", f"{MCP_ENVS}:code_env"]
    )
    async with stdio_client(command) as (read, write), ClientSession(read, write) as mcp:
        await mcp.initialize()
        pids = await runs_pids(mcp)
    assert len(set(pids)) == 2, pids


@needs_docker
async def test_pycode_over_http_runs_model_code_in_a_container_as_nobody():
    # What an attacker on the machine did: open a session and call run_python, no prompt.
    with serve_over_http("pycode") as server:
        async with connect_http(server) as mcp:
            code = "import os; print(os.getuid()); print(os.path.exists('/work'))"
            ran = await mcp.call_tool("run_python", {"code": code})
    printed = json.loads(ran.content[0].text)["printed"].split()
    assert printed == [str(SANDBOX_USER), "False"], ran.content[0].text


# -- any MCP server's tools, mounted into an environment --------------------------------------


def calculator_env() -> Environment:
    env = Environment("calc-mounted")
    connect_mcp(env, [sys.executable, CALCULATOR])

    @env.scenario("divide")
    async def divide(a: int, b: int):
        reply = yield f"What is {a} divided by {b}? Use the divide tool."
        yield 1.0 if reply is not None and float(reply) == a / b else 0.0

    @env.policy("solver")
    def solver(ctx: PolicyContext) -> dict:
        results = ctx.tool_results()
        return answer(results[-1]) if results else call("divide", a=ctx.args["a"], b=ctx.args["b"])

    return env


async def test_mounted_tools_keep_the_server_schema_and_answer_in_a_run():
    env = calculator_env()
    assert set(env.tools) == {"add", "multiply", "divide"}
    schema = env.tools["add"].parameters
    assert schema["required"] == ["a", "b"] and schema["properties"]["a"]["type"] == "integer"

    async with workbench.eval(env.task("divide", a=84, b=2), record=False) as ctx:
        divided = await ctx.call_tool("divide", a=84, b=2)
        assert str(divided) == "42.0" and not divided.isError
        by_zero = await ctx.call_tool(call("divide", a=1, b=0)["tool_calls"][0])
        assert by_zero["role"] == "tool" and "cannot divide by zero" in by_zero["content"]
        assert ctx.trace.tool_calls[-1].error
        assert await ctx.submit(str(divided)) == 1.0


@pytest.mark.parametrize("runtime", ["inprocess", "isolated"])
async def test_a_job_on_mounted_tools_gets_the_rewards(runtime):
    env = calculator_env()
    # A session is open here first: a forked run process must open one of its own.
    assert await env.tools["add"].call(None, {"a": 1, "b": 2}) == "3"
    tasks = Taskset("calc", [env.task("divide", a=a, b=b) for a, b in [(9, 3), (7, 2), (1, 4)]])
    job = await workbench.evaluate(tasks, "scripted:solver", runtime=runtime, max_concurrent=3)
    df = job.traces_df()
    assert (df["stop_reason"] == "done").all(), df["error_message"].tolist()
    assert df["reward"].tolist() == [1.0, 1.0, 1.0]
