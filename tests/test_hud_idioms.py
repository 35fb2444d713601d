"""Code written for the HUD SDK runs with only its import changed.

Each test is written the way HUD's documentation writes it (`from hud import Environment`
became `from workbench import Environment`); the environments are in tests/hud/.
"""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import run_cli

import workbench
from workbench import Environment, Task
from workbench.episode import ScenarioError
from workbench.tasks import resolve_environment

HUD = Path(__file__).resolve().parent / "hud"
PROJECT = HUD / "project"


@pytest.fixture
def letters():
    return resolve_environment(f"{HUD / 'letters.py'}:env")


def test_tasks_are_made_as_hud_makes_them(letters):
    count = letters.scenarios["count"]
    by_call = letters("count", word="strawberry", letter="r")
    by_task = count.task(word="strawberry", letter="r")
    assert by_call == by_task and by_call.scenario == "count"
    by_template = letters.scenarios["count_letter_v6"](word="raspberry")  # v6: a template
    assert by_template.args == {"word": "raspberry"}

    by_task.slug = "strawberry-r"  # set after the task is made, as HUD's docs do
    by_task.columns = {"category": "repeated-letters"}
    by_task.metadata = {"source": "curated"}
    by_task.agent_config = {"max_steps": 3}
    assert by_task.to_dict()["columns"] == {"category": "repeated-letters"}
    assert Task(env=letters, scenario="count", args={}).env == letters.ref
    assert Task(env={"name": "shop"}, id="checkout").scenario == "checkout"  # HUD v6 row
    with pytest.warns(UserWarning, match="'difficulty_hint'.*kept"):
        kept = Task(env="shop", scenario="checkout", difficulty_hint="easy")
    assert kept.to_dict()["difficulty_hint"] == "easy"  # never dropped silently


async def test_a_list_of_tasks_is_a_taskset_and_agent_config_applies(letters):
    tasks = [letters("count", word=w, letter="r") for w in ("strawberry", "raspberry", "rye")]
    tasks[2].agent_config = {"max_steps": 1}  # too few steps to count and answer
    job = await workbench.evaluate(tasks, "scripted:expert", group_size=2)
    df = job.traces_df().set_index("task")
    assert job.total == 6 and len(df) == 6
    assert set(df.loc["count-strawberry-r", "stop_reason"]) == {"done"}
    assert set(df.loc["count-rye-r", "stop_reason"]) == {"max_steps"}
    again = await workbench.evaluate(tasks, "scripted:expert")
    assert again.taskset.name == job.taskset.name  # the same list, the same taskset


async def test_initialize_and_shutdown_hooks_and_async_with_env(letters):
    module = __import__("sys").modules[letters.tools["count_letter"].fn.__module__]
    module.events.clear()
    async with letters as env:
        assert module.events == ["initialize"]
        tools = env.as_openai_chat_tools()
        assert {t["function"]["name"] for t in tools} == {"count_letter", "admin_reset"}
        result = await env.call_tool("count_letter", text="strawberry", letter="r")
        assert result.content[0].text == "3" and not result.isError
    assert module.events == ["initialize", "shutdown"]


async def test_a_run_driven_by_hand_the_hud_way(letters):
    from openai.types.chat import ChatCompletionMessageToolCall

    task = letters("count", word="strawberry", letter="r")
    async with workbench.eval(task) as ctx:
        assert ctx.prompt == "How many 'r' in 'strawberry'?"
        tools = ctx.as_openai_chat_tools()
        assert [t["function"]["name"] for t in tools] == ["count_letter"]  # admin_* hidden
        call = ChatCompletionMessageToolCall(
            id="call_1",
            type="function",
            function={"name": "count_letter", "arguments": '{"text": "strawberry", "letter": "r"}'},
        )
        message = await ctx.call_tool(call)  # an OpenAI SDK object: an OpenAI tool message
        assert message == {"role": "tool", "tool_call_id": "call_1", "content": "3"}
        as_dict = await ctx.call_tool(
            {
                "id": "c2",
                "function": {"name": "count_letter", "arguments": {"text": "rr", "letter": "r"}},
            }
        )
        assert as_dict["content"] == "2"
        by_name = await ctx.call_tool("count_letter", text="berry", letter="r")
        assert str(by_name) == "2"
        hidden = await ctx.call_tool("admin_reset")
        assert hidden.isError  # the scenario hides it from the agent
        await ctx.submit("3")
    assert ctx.reward == 1.0 and ctx.trace.stop_reason == "done"
    assert [c.name for c in ctx.trace.tool_calls] == ["count_letter"] * 3 + ["admin_reset"]


async def test_a_task_with_tools_only_and_a_reward_set_by_hand(letters):
    async with workbench.eval(letters()) as ctx:
        result = await ctx.call_tool("admin_reset")  # no scenario: every tool is there
        ctx.reward = 1.0 if str(result) == "reset" else 0.0
    stored = workbench.get_store().get_trace(ctx.trace.id)
    assert stored.reward == 1.0 and stored.stop_reason == "done"


async def test_group_runs_the_block_once_per_run_like_hud_eval(letters):
    tasks = [letters("count", word=w, letter="r") for w in ("strawberry", "rr")]
    seen = []
    async with workbench.eval(tasks, group=3) as ctx:
        seen.append(ctx.prompt)
        await ctx.submit(str(ctx.task.args["word"].count("r")))
    assert sorted(seen) == sorted(["How many 'r' in 'strawberry'?", "How many 'r' in 'rr'?"] * 3)
    assert len(ctx.results) == 6 and ctx.reward == 1.0
    assert sorted(r.trace.group_index for r in ctx.results) == [0, 0, 1, 1, 2, 2]


async def test_rewards_as_hud_yields_them_are_kept_in_the_trace(letters):
    job = await workbench.evaluate(
        [letters("graded", word="abc"), letters("scored"), letters("count_letter_v6")],
        "scripted:expert",
    )
    traces = {t.scenario: t for t in job.traces()}
    graded = traces["graded"]
    assert graded.reward == 0.5 and graded.messages[0]["content"] == "Spell 'abc' backwards."
    assert graded.info["content"] == "half right" and graded.info["done"] is True
    assert graded.info["checked"] == "abc"
    assert [s["name"] for s in graded.info["subscores"]] == ["order", "case"]
    assert traces["scored"].reward == 0.25
    assert traces["count_letter_v6"].reward == 1.0  # a bool reward: True
    shown = run_cli("trace", graded.id[:10])
    assert shown.returncode == 0 and "half right" in shown.stdout and "subscores" in shown.stdout


def test_a_hud_project_runs_from_its_directory(tmp_path, workbench_home):
    """`workbench eval tasks.py MODEL` in a HUD project: tasks.py imports env.py next door."""
    out = run_cli("eval", "tasks.py", "scripted:expert", cwd=PROJECT)
    assert out.returncode == 0, out.stderr
    assert "3 tasks x 1 models" in out.stdout and "100%" in out.stdout
    imported = run_cli("tasks", "import", str(PROJECT / "tasks.json"), "--name", "hud-json")
    assert imported.returncode == 0, imported.stderr
    shown = run_cli("tasks", "show", "hud-json")
    assert "columns" in shown.stdout and "difficulty" in shown.stdout
    assert "metadata" in shown.stdout and "research" in shown.stdout


def test_the_current_directory_resolves_module_references(tmp_path, workbench_home):
    (tmp_path / "mytasks.jsonl").write_text(
        json.dumps({"env": "env:env", "scenario": "count", "args": {"word": "aa", "letter": "a"}})
        + "\n"
    )
    out = run_cli("eval", str(tmp_path / "mytasks.jsonl"), "scripted:expert", cwd=PROJECT)
    assert out.returncode == 0, out.stderr


def test_hud_scenario_options_workbench_lacks_are_warned_about():
    env = Environment("warned")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        @env.scenario("chatty", chat=True)
        async def chatty():
            yield "hi"
            yield 1.0

    assert any("'chat'" in str(w.message) for w in caught)
    assert os.environ.get("WORKBENCH_HOME")  # the suite's isolated home is in use


# -- issue 10, part 2: HUD code as HUD's docs and examples write it -------------------------
# (hud-python v0.5.41 and the v6 docs; only `hud` became `workbench`)

V6_TASKS = """
from workbench import Environment

env = Environment(name="letter-count")

@env.template()
async def count_letter(word: str = "strawberry", letter: str = "r"):
    answer = yield f"How many '{letter}'s are in '{word}'? Reply with just the number."
    yield 1.0 if answer and str(word.count(letter)) in answer else 0.0

tasks = [count_letter(word=w) for w in ("strawberry", "raspberry", "blueberry")]
"""


@pytest.fixture(scope="module")
def fake_server():
    from hud.fake_openai import FakeOpenAI

    server = FakeOpenAI()
    yield server
    server.shutdown()


@pytest.fixture
def fake_openai(fake_server, workbench_home):
    """A fake OpenAI-compatible server named `fake` in config.toml: `fake:answer`, `fake:loop`
    (one server for the module: a model, once made, keeps its endpoint's address)."""
    fake_server.requests.clear()
    workbench_home.mkdir(parents=True, exist_ok=True)
    (workbench_home / "config.toml").write_text(
        f'[endpoints.fake]\nbase_url = "{fake_server.url}"\napi_key = "x"\n'
    )
    return fake_server


def test_a_v6_single_file_task_file_runs_in_every_runtime(tmp_path, fake_openai):
    """docs/v6/start/quickstart.mdx: tasks.py defines the environment, a template and tasks."""
    (tmp_path / "tasks.py").write_text(V6_TASKS)
    for runtime in ("isolated", "subprocess"):
        out = run_cli("eval", "tasks.py", "fake:answer", "--runtime", runtime, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
    traces = workbench.get_store().traces()
    assert len(traces) == 6 and {t.stop_reason for t in traces} == {"done"}, [
        t.error_message for t in traces
    ]
    assert {t.reward for t in traces} == {1.0}
    # HUD's CLI: --group, and --task-ids as 0-based positions
    out = run_cli(
        "eval", "tasks.py", "fake:answer", "--task-ids", "0,2", "--group", "2", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "2 tasks x 1 models x group 2 = 4 runs" in out.stdout
    imported = run_cli("tasks", "import", "tasks.py", "--name", "q6", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    stored = workbench.load_taskset("q6")
    assert stored.tasks[0].env == f"{tmp_path / 'tasks.py'}:env"  # any process resolves it


async def test_agent_config_applies_however_the_task_is_run(letters, fake_openai):
    """v5 docs/reference/evals.mdx: `task.run(agent)` and `agent.run(ctx)` inside hud.eval."""
    from workbench.agents import create_agent

    def system_prompt():
        first = fake_openai.requests[-1]["messages"][0]
        return first["content"] if first["role"] == "system" else None

    task = letters("count", word="strawberry", letter="r")
    task.agent_config = {"system_prompt": "Answer with digits only.", "max_steps": 3}
    trace = await task.run("fake:answer")
    assert system_prompt() == "Answer with digits only." and trace.reward == 1.0

    agent = create_agent("fake:answer")
    async with workbench.eval(task) as ctx:
        await agent.run(ctx)
    assert system_prompt() == "Answer with digits only." and ctx.reward == 1.0

    looping = letters("count", word="abc", letter="a")
    looping.agent_config = {"max_steps": 3}
    trace = await looping.run("fake:loop")
    assert (trace.steps, trace.stop_reason) == (3, "max_steps")
    async with workbench.eval(looping) as ctx:
        trace = await create_agent("fake:loop").run(ctx, max_steps=2)  # the call's wins
    assert trace.steps == 2
    trace = await looping.run("fake:loop", max_steps=5, trace=False, quiet=True)
    assert trace.steps == 5


async def test_agent_config_timeout_and_tool_filters_apply(fake_openai):
    """v6 docs/v6/reference/tasks.mdx agent_config; v5 TaskAgentConfig's tool lists."""
    import asyncio

    env = Environment("slowenv")

    @env.tool()
    async def slow(x: str) -> str:
        """Sleep a while."""
        await asyncio.sleep(60)
        return x

    @env.tool()
    def other(x: str) -> str:
        """Another tool."""
        return x

    @env.scenario("s")
    async def s(n: int = 1):
        yield "Do things"
        yield 1.0

    task = env("s", n=1)
    await task.run("fake:answer", runtime="inprocess")  # the model's client is ready
    task.agent_config = {
        "max_steps": 5,
        "timeout_seconds": 3,
        "allowed_tools": ["other", "slow"],
        "disallowed_tools": ["other"],
    }
    trace = await task.run("fake:loop", runtime="inprocess")
    assert len(fake_openai.requests) > 1, trace
    assert [t["function"]["name"] for t in fake_openai.requests[-1]["tools"]] == ["slow"]
    assert trace.stop_reason == "timeout" and trace.seconds < 30
    with pytest.warns(UserWarning, match="'append_setup_output'.*change nothing"):
        task.agent_config = {"append_setup_output": True}


async def test_env_include_and_exclude_filter_the_agents_tools(letters):
    """v5 hud/eval/task.py: Task(env={"name": ..., "include": [...], "exclude": [...]})."""
    row = {
        "env": {"name": letters.ref, "include": ["*"], "exclude": ["admin_*"]},
        "scenario": "count",  # a scenario that hides nothing itself:
        "args": {"word": "aa", "letter": "a"},
    }
    task = Task.model_validate(row)
    assert task.to_dict()["exclude_tools"] == ["admin_*"]  # kept, stored, exported
    async with workbench.eval(letters()) as ctx:  # no scenario: every tool is offered
        assert len(ctx.as_openai_chat_tools()) == 2
        ctx.reward = 1.0
    no_admin = Task.model_validate({**row, "scenario": ""})
    async with workbench.eval(no_admin) as ctx:
        assert [t["function"]["name"] for t in ctx.as_openai_chat_tools()] == ["count_letter"]
        assert (await ctx.call_tool("admin_reset")).isError
        ctx.reward = 1.0


async def test_hud_eval_keyword_arguments_and_shapes(letters):
    """v5 examples/00_agent_env.py, docs/reference/evals.mdx (blank eval, Task as context)."""
    import workbench as hud

    async with hud.eval(letters(), trace=False, quiet=True, name="calc") as ctx:
        result = await ctx.call_tool("count_letter", text="strawberry", letter="r")
        ctx.reward = 1.0
    assert str(result) == "3" and ctx.eval_name == "calc"
    with pytest.warns(UserWarning, match="api_key"):
        async with hud.eval(letters(), api_key="sk-x", job_id="hud-job-1") as ctx:
            ctx.reward = 1.0
    assert ctx.trace.info["hud_job_id"] == "hud-job-1"
    async with hud.eval() as ctx:  # blank eval
        ctx.reward = 1.0
    assert ctx.reward == 1.0
    async with letters("count", word="strawberry", letter="r") as ctx:
        assert ctx.reward is None  # not graded yet, as HUD's
        assert ctx.trace_id == ctx.trace.id and ctx.index == 0 and ctx.error is None
        assert ctx.variants == {} and ctx.headers["Trace-Id"] == ctx.trace_id
        await ctx.submit("3")
    assert ctx.reward == 1.0
    async with hud.eval(letters("count", word="rr", letter="r"), group=2) as ctx:
        await ctx.submit("2")
    assert len({r.group_id for r in ctx.results}) == 1 and [r.index for r in ctx.results] == [0, 1]
    with pytest.raises(workbench.WorkbenchError, match="variants"):
        async with hud.eval(letters(), variants={"model": ["a", "b"]}):
            pass


def test_the_import_paths_hud_users_write():
    from workbench.eval.task import Task as V5Task
    from workbench.tools.types import EvaluationResult as V5Result

    from workbench.agents import create_agent  # noqa: F401
    from workbench.eval import Job, Task, Taskset  # noqa: F401
    from workbench.graders import EvaluationResult, SubScore, contains, exact_match
    from workbench.types import MCPToolResult, Trace  # noqa: F401

    assert V5Task is workbench.Task and V5Result is EvaluationResult
    assert exact_match(" Paris! ", "paris") == 1.0 and contains("Paris", "x") == 0.0
    assert callable(workbench.eval)  # the function, though workbench.eval.task imports
    result = EvaluationResult(reward=0.5, subscores=[SubScore(name="a", value=1.0, weight=0.5)])
    from workbench.episode import parse_reward

    assert parse_reward(result, "s")[0] == 0.5
    # `workbench.types` once shadowed the package's own `types`: every submodule imported
    # after it went missing as an attribute (`workbench.training`, `workbench.loop`)
    after = "from workbench.types import Trace; import workbench.loop as m, workbench as w"
    done = subprocess.run([sys.executable, "-c", f"{after}; print(w.loop is m)"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert done.stdout.strip() == "True", done.stderr


async def test_a_hand_driven_openai_loop_stores_every_turn(letters, fake_openai):
    """v5 docs/guides/integrations.mdx "OpenAI / Chat Completions", with a local server."""
    from openai import AsyncOpenAI

    import workbench as hud

    client = AsyncOpenAI(base_url=fake_openai.url, api_key="x")
    async with hud.eval(letters("count", word="strawberry", letter="r")) as ctx:
        messages = [{"role": "user", "content": ctx.prompt}]
        n = 0
        while True:
            n += 1
            response = await client.chat.completions.create(
                model="loop" if n < 2 else "answer",
                messages=messages,
                tools=ctx.as_openai_chat_tools(),
            )
            msg = response.choices[0].message
            messages.append(msg)
            if not msg.tool_calls:
                break
            for tool_call in msg.tool_calls:
                messages.append(await ctx.call_tool(tool_call))
        await ctx.submit(msg.content or "")
    stored = hud.get_store().get_trace(ctx.trace.id)
    assert stored.reward == 1.0
    roles = [(m["role"], bool(m.get("tool_calls"))) for m in stored.messages]
    assert roles == [("user", False), ("assistant", True), ("tool", False), ("assistant", False)]
    assert stored.messages[1]["tool_calls"][0]["id"] == stored.messages[2]["tool_call_id"]
    assert stored.steps == 2 and stored.answer == "3"


async def test_connectors_mount_mcp_servers():
    """v5 docs/reference/environments.mdx "Connectors", and the README's env.connect_mcp."""
    import sys

    server = [sys.executable, str(HUD.parent / "mcp_calculator_server.py")]
    env = Environment("mounted")
    env.connect_mcp(server, include=["add"])
    env.connect_mcp_config({"calc": {"command": server[0], "args": server[1:]}}, prefix="calc")
    assert list(env.tools) == ["add", "calc_add", "calc_multiply", "calc_divide"]


async def test_prompts_and_rewards_as_hud_yields_them():
    """v5 _normalize_prompt_yield, v6 templates' frames and _score_value (any number)."""
    from mcp.types import PromptMessage, TextContent

    env = Environment("yields")
    prompts = {
        "parts": ["Part one.", "Part two."],
        "message": PromptMessage(role="user", content=TextContent(type="text", text="Say hi")),
        "frame": {"prompt": "Say hi"},
    }
    rewards = {"high": 2.0, "low": -0.5}

    @env.scenario("p")
    async def p(kind: str):
        yield prompts[kind]
        yield 1.0

    @env.scenario("r")
    async def r(kind: str):
        yield "x"
        yield rewards[kind]

    @env.scenario("one_yield")
    async def one_yield():
        yield "x"

    async with workbench.eval(env("p", kind="parts"), runtime="inprocess") as ctx:
        assert [m["content"] for m in ctx.messages] == ["Part one.", "Part two."]
        await ctx.submit("hi")
    for kind in ("message", "frame"):
        async with workbench.eval(env("p", kind=kind), runtime="inprocess") as ctx:
            assert ctx.prompt == "Say hi"
            await ctx.submit("hi")
    for kind, value in (("high", 2.0), ("low", -0.5)):  # v6 takes any number; here [0, 1]
        with pytest.raises(ScenarioError, match=rf"reward {value}, outside.*scale it"):
            async with workbench.eval(env("r", kind=kind)) as ctx:
                await ctx.submit("hi")
    with pytest.warns(UserWarning, match="without yielding a reward"):
        async with workbench.eval(env("one_yield")) as ctx:
            await ctx.submit("hi")
    assert ctx.reward == 0.0 and ctx.trace.stop_reason == "done"


async def test_a_v6_taskset_filters_writes_and_runs(tmp_path, fake_openai):
    """docs/v6/reference/tasks.mdx and migrate-v6.mdx: `job = await ts.run(agent)`."""
    from workbench import Environment, Taskset, create_agent

    env = Environment(name="letter-count6")

    @env.template()
    async def count_letter(word: str = "strawberry", letter: str = "r"):
        answer = yield f"How many '{letter}'s are in '{word}'?"
        yield 1.0 if answer == str(word.count(letter)) else 0.0

    ts = Taskset("letters", [count_letter(word="strawberry"), count_letter(word="raspberry")])
    first = ts.tasks[0].slug
    assert ts.filter([first]).slugs == [first] and first not in ts.exclude([first]).slugs
    ts.to_file(tmp_path / "out.json")
    assert Taskset.from_file(tmp_path / "out.json").slugs == ts.slugs
    job = await ts.run(create_agent("fake:answer"), group=2, max_concurrent=10)
    assert job.total == 4 and job.reward == 1.0, [t.error_message for t in job.traces()]


def test_model_names_as_hud_writes_them(monkeypatch):
    """v6 docs/v6/more/migrate-v6.mdx: create_agent("claude-sonnet-4-5"); v5: "gpt-4o"."""
    from workbench.agents import create_agent

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-fake")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    assert create_agent("claude-sonnet-4-5").model.model_id == "anthropic:claude-sonnet-4-5"
    assert create_agent("gpt-4o").model.model_id == "openai:gpt-4o"


def test_environment_and_tool_options_as_hud_writes_them():
    """v5 docs/reference/environments.mdx (instructions), v6 (version, capabilities),
    FastMCP's `tool(name_or_fn, description=...)`."""
    described = Environment(name="ctor1", instructions="Use the tools.", version="0.0.1")
    assert described.description == "Use the tools." and described.version == "0.0.1"
    Environment(name="ctor2", capabilities=None)
    assert Environment().name == "environment"  # HUD's default name
    env = Environment("tooled")

    @env.tool("lookup")
    def find(q: str) -> str:
        """Doc."""
        return q

    @env.tool(description="Custom description")
    def other(q: str) -> str:
        """Doc."""
        return q

    assert env.tools["lookup"].description == "Doc."
    assert env.tools["other"].description == "Custom description"
    with pytest.warns(UserWarning, match="'annotations'"):
        env.tool(annotations={"readOnlyHint": True})(other)
