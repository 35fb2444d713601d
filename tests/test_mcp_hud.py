"""MCP as HUD speaks it: a plain `mcp` client plays the shop, and any MCP server's tools mount.

The clients here are the `mcp` SDK's own (`ClientSession` over stdio or streamable HTTP), as a
researcher with no Workbench on their side would write them: scenarios are prompts, the
answer goes in through `_hud_submit`, the reward comes out of the scenario's resource.
"""

import asyncio
import json
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

import workbench
from environments.shop import env as shop
from environments.shop.policies import expert
from workbench import Environment, PolicyContext, Taskset, answer, call
from workbench.mcp_mount import connect_mcp
from workbench.runtimes.mcp_server import CONTROL_TOOLS

WORKBENCH = str(Path(sys.executable).with_name("workbench"))
CALCULATOR = str(Path(__file__).with_name("mcp_calculator_server.py"))
SHOP_TOOLS = set(shop.tools)


@asynccontextmanager
async def shop_over_stdio():
    server = StdioServerParameters(command=WORKBENCH, args=["env", "serve", "shop"])
    async with stdio_client(server) as (read, write), ClientSession(read, write) as mcp:
        await mcp.initialize()
        yield mcp


@asynccontextmanager
async def connect_http(url: str):
    async with streamable_http_client(url) as (read, write), ClientSession(read, write) as mcp:
        await mcp.initialize()
        yield mcp


@pytest.fixture
def shop_over_http():
    """`workbench env serve shop --transport http --port 0`: its URL, read from its stderr."""
    server = subprocess.Popen(
        [WORKBENCH, "env", "serve", "shop", "--transport", "http", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stderr.readline()  # "serving 'shop' over MCP at http://127.0.0.1:PORT/mcp"
        assert "http://127.0.0.1:" in line, line
        yield line.split(" at ")[-1].strip()
    finally:
        server.terminate()
        server.wait(timeout=30)


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

    # Mounted over HTTP into another environment, the shop shows its tools and nothing else.
    mall = Environment("mall")
    connect_mcp(mall, shop_over_http, name_prefix="shop")
    assert set(mall.tools) == {f"shop_{name}" for name in SHOP_TOOLS}


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
