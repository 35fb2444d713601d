"""Code written for the HUD SDK runs with only its import changed.

Each test is written the way HUD's documentation writes it (`from hud import Environment`
became `from workbench import Environment`); the environments are in tests/hud/.
"""

import json
import os
import warnings
from pathlib import Path

import pytest
from conftest import run_cli

import workbench
from workbench import Environment, Task
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
