"""Claude through the Anthropic SDK, against a fake Messages API on 127.0.0.1.

`workbench eval TASKS claude` works the way HUD's CLI does: the alias names Claude, the
conversation crosses the wire in the Messages API's format and comes back in the trace's
OpenAI format, usage is recorded, the SDK retries an overloaded API, and the API key reaches
the API and nothing else.
"""

import json
import sys

import pytest
from conftest import TOY, run_cli
from fake_anthropic import FakeAnthropic

import workbench
from workbench import models
from workbench.errors import UnknownModelError, WorkbenchError
from workbench.models import Sampling

KEY = "sk-ant-test-5ecret-k3y"
CLAUDE = models.ALIASES["claude"]  # what `claude` stands for today


@pytest.fixture
def api(monkeypatch):
    """The fake API, named the way a user names the real one: environment variables."""
    with FakeAnthropic() as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
        monkeypatch.setattr(models, "_CACHE", {})  # models made for an earlier test's server
        yield fake


def taskset(tmp_path, n: int, target: int = 2) -> str:
    path = tmp_path / "toy.jsonl"
    args = [{"target": target, "note": str(i)} for i in range(n)]
    rows = [{"env": TOY, "scenario": "count", "args": a} for a in args]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def use_config(home, **endpoint) -> None:
    """``[endpoints.anthropic]`` in config.toml: where it points and its limits."""
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[endpoints.anthropic]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in endpoint.items()]
    (home / "config.toml").write_text("\n".join(lines) + "\n")


async def test_claude_solves_a_taskset_through_the_messages_api(api, tmp_path):
    job = await workbench.evaluate(taskset(tmp_path, 3, target=3), "anthropic:claude-test")

    df = job.traces_df()
    assert (df.stop_reason == "done").all() and (df.reward == 1.0).all()
    for trace in job.traces():
        assert trace.model == "anthropic:claude-test"
        assert trace.info == {"value": 3}  # the environment's tool really ran, three times
        roles = [m["role"] for m in trace.messages]
        assert roles == ["user", "assistant", "tool", "tool", "assistant", "tool", "assistant"]
        first = trace.messages[1]
        assert first["content"] == "Incrementing."
        assert [c["function"] for c in first["tool_calls"]] == [
            {"name": "increment", "arguments": '{"by": 1}'}
        ] * 2
        assert [m["tool_call_id"] for m in trace.messages[2:4]] == [
            c["id"] for c in first["tool_calls"]
        ]
        assert [m["content"] for m in trace.messages if m["role"] == "tool"] == ["1", "2", "3"]
        assert trace.messages[-1] == {"role": "assistant", "content": "done"}
        # The fake counts 20 + 5 per message in, 7 out, for requests of 1, 3 and 5 messages.
        assert trace.usage == {"prompt_tokens": 105, "completion_tokens": 21, "total_tokens": 126}
    assert {r["body"]["model"] for r in api.requests} == {"claude-test"}
    assert all(r["body"]["max_tokens"] == 4096 for r in api.requests)  # required by the API
    assert not {"temperature", "top_p"} & set(api.requests[0]["body"])  # unset: the default


async def test_the_conversation_crosses_the_wire_in_the_messages_format(api, toy):
    sampling = Sampling(temperature=0.3, top_p=0.9, max_tokens=256, stop=["STOP"], seed=7)
    agent = workbench.create_agent(
        "anthropic:claude-test", system_prompt="Count carefully.", sampling=sampling
    )
    async with workbench.eval(toy.task("count", target=2)) as ctx:
        trace = await agent.run(ctx)
    assert trace.stop_reason == "done" and ctx.reward == 1.0

    first, last = api.requests[0]["body"], api.requests[-1]["body"]
    assert first["system"] == "Count carefully."  # apart, never a message
    prompt = {"type": "text", "text": "Increment the counter to 2, then say 'done'."}
    assert first["messages"] == [{"role": "user", "content": [prompt]}]
    increment = next(t for t in first["tools"] if t["name"] == "increment")
    assert increment == {
        "name": "increment",
        "description": "Add to the counter.",
        "input_schema": {
            "type": "object",
            "properties": {
                "by": {"type": "integer", "default": 1, "description": "how much to add."}
            },
            "additionalProperties": False,
        },
    }
    calls = [
        {"type": "tool_use", "id": f"toolu_1_{i}", "name": "increment", "input": {"by": 1}}
        for i in (0, 1)
    ]
    assert last["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "text", "text": "Incrementing."}, *calls]},
        {  # both results in one user turn, as the API requires
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1_0", "content": "1"},
                {"type": "tool_result", "tool_use_id": "toolu_1_1", "content": "2"},
            ],
        },
    ]
    for request in api.requests:
        body = request["body"]
        assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.3, 0.9, 256)
        assert body["stop_sequences"] == ["STOP"]
        assert "seed" not in body  # the Messages API has none


def test_conversations_from_other_models_convert_too():
    """History the fake never writes: system messages, empty turns, foreign ids, bad JSON."""
    from workbench.models.anthropic_api import to_anthropic

    system, turns = to_anthropic(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": "Go."},
            {"role": "assistant", "content": ""},  # an empty answer: the API refuses empty text
            {"role": "user", "content": "Go on."},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call:0", "function": {"name": "increment", "arguments": "{not json"}},
                    {"id": "call:1", "function": {"name": "increment", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "call:0", "content": "error: bad arguments"},
            {"role": "tool", "tool_call_id": "call:1", "content": "1"},
            {"role": "user", "content": "Now finish."},
        ]
    )
    assert system == "Be brief.\n\nUse tools."
    assert turns == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Go."}, {"type": "text", "text": "Go on."}],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_0",
                    "name": "increment",
                    "input": {"raw_arguments": "{not json"},
                },
                {"type": "tool_use", "id": "call_1", "name": "increment", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_0", "content": "error: bad arguments"},
                {"type": "tool_result", "tool_use_id": "call_1", "content": "1"},
                {"type": "text", "text": "Now finish."},
            ],
        },
    ]


async def test_an_overloaded_api_is_retried_by_the_sdk(api, tmp_path):
    api.inject("529", "500")
    job = await workbench.evaluate(taskset(tmp_path, 1, target=1), "anthropic:claude-test")
    (trace,) = job.traces()
    assert trace.stop_reason == "done" and trace.reward == 1.0
    assert [r["fault"] for r in api.requests] == ["529", "500", None, None]
    # A retry leaves no mark on the conversation or the usage.
    assert [m["role"] for m in trace.messages] == ["user", "assistant", "tool", "assistant"]
    assert trace.usage["completion_tokens"] == 2 * 7


async def test_when_retries_run_out_the_run_fails_with_a_clear_message(
    api, workbench_home, tmp_path
):
    use_config(workbench_home, base_url=api.url, max_retries=1)
    api.inject("529", "529")
    job = await workbench.evaluate(taskset(tmp_path, 1, target=0), "anthropic:claude-test")
    (trace,) = job.traces()
    assert trace.stop_reason == "error" and trace.error_type == "ModelAPIError"
    assert trace.error_message == (
        "anthropic:claude-test: gave up after 2 attempts: HTTP 529: Overloaded"
    )
    assert len(api.requests) == 2
    assert job.status == "finished"


async def test_the_key_reaches_the_api_and_nothing_else(api, workbench_home, tmp_path):
    api.inject("401")  # this server echoes the key in its error message
    job = await workbench.evaluate(
        taskset(tmp_path, 2, target=1), "anthropic:claude-test", max_concurrent=1
    )
    assert {r["key"] for r in api.requests} == {KEY}  # it did reach the API
    df = job.traces_df().sort_values("started_at")
    assert list(df.stop_reason) == ["error", "done"]
    assert df.error_message.iloc[0] == (
        "anthropic:claude-test: failed: HTTP 401: invalid x-api-key: [api key]"
    )
    assert len(api.requests) == 1 + 2  # a 401 is not retried
    for trace in job.traces():
        assert KEY not in trace.model_dump_json()
    for path in workbench_home.rglob("*"):  # the database, its WAL, anything else written
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in repr(models.get_model("anthropic:claude-test"))


async def test_at_most_max_connections_requests_are_in_flight(api, workbench_home, tmp_path):
    use_config(workbench_home, base_url=api.url, max_connections=2)
    api.latency = 0.2
    job = await workbench.evaluate(
        taskset(tmp_path, 6, target=0), "anthropic:claude-test", max_concurrent=6
    )
    assert (job.traces_df().stop_reason == "done").all()
    assert api.peak_in_flight == 2


async def test_claude_is_an_alias_for_the_anthropic_provider(api, monkeypatch, tmp_path):
    from workbench.models.anthropic_api import AnthropicModel

    assert CLAUDE.startswith("anthropic:claude-")
    for alias in ("claude", "anthropic"):
        model = workbench.get_model(alias)
        assert isinstance(model, AnthropicModel)
        assert model.model_id == CLAUDE
        assert model is workbench.get_model(CLAUDE)  # one client
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused")
    assert workbench.get_model("openai").model_id == "openai:gpt-5-mini"
    assert workbench.get_model("gpt").model_id == "openai:gpt-5-mini"

    # The trace names the model the alias stood for: a leaderboard never pools two models
    # because the alias moved on.
    job = await workbench.evaluate(taskset(tmp_path, 1, target=1), "claude")
    (trace,) = job.traces()
    assert trace.stop_reason == "done" and trace.model == CLAUDE
    assert {r["body"]["model"] for r in api.requests} == {CLAUDE.removeprefix("anthropic:")}


async def test_a_job_started_with_an_alias_resumes_without_running_anything_twice(api, tmp_path):
    job = await workbench.evaluate(taskset(tmp_path, 2, target=1), "claude")
    assert job.config.models == [CLAUDE]
    sent = len(api.requests)
    again = await workbench.resume(job.id)
    assert len(api.requests) == sent and again.done == again.total == 2


def test_workbench_eval_taskset_claude(api, tmp_path):
    """The command line, as in HUD: `workbench eval TASKS claude`."""
    result = run_cli("eval", taskset(tmp_path, 2, target=1), "claude")
    assert result.returncode == 0, result.stderr
    assert CLAUDE in result.stdout
    assert "2 tasks x 1 models" in result.stdout
    assert len(api.requests) == 2 * 2


def test_without_the_sdk_or_a_key_the_error_says_what_to_do(monkeypatch):
    monkeypatch.setattr(models, "_CACHE", {})
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with pytest.raises(UnknownModelError, match="set ANTHROPIC_API_KEY"):
        workbench.get_model("claude")

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setitem(sys.modules, "anthropic", None)  # as if never installed
    with pytest.raises(WorkbenchError, match=r"needs the Anthropic SDK: pip install anthropic$"):
        workbench.get_model("anthropic:claude-test")
