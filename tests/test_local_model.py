"""The bundled SmolLM2-135M: in-process, through the batcher, and through the gateway.

Slow: loading the model takes ~20 s and generation runs on the CPU.
"""

import asyncio

import openai
import pytest
from gateway_server import running_gateway

import workbench
from workbench.models import RunInfo, Sampling, get_model

pytestmark = pytest.mark.slow

MODEL = "local:smollm2-135m"
WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def weather_call(city: str, i: int) -> dict:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"c{i}",
                "type": "function",
                "function": {"name": "get_weather", "arguments": f'{{"city": "{city}"}}'},
            }
        ],
    }


# Two worked examples: a 135M model then calls the tool for the third city.
FEW_SHOT = [
    {"role": "user", "content": "What is the weather in Paris?"},
    weather_call("Paris", 1),
    {"role": "user", "content": "What is the weather in Oslo?"},
    weather_call("Oslo", 2),
    {"role": "user", "content": "What is the weather in Rome?"},
]


@pytest.fixture(scope="module")
def local():
    model = get_model(MODEL)
    assert model.engine is not None  # load once for the module
    return model


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    home = tmp_path_factory.mktemp("wb")
    with running_gateway("--preload", MODEL, home=home) as url:
        yield url


async def test_greedy_is_reproducible_and_batching_changes_nothing(local):
    greedy = Sampling(temperature=0, max_tokens=24)
    prompts = [[{"role": "user", "content": f"What is {i} + {i + 2}?"}] for i in range(6)]
    one_by_one = [(await local.complete(p, [], greedy, RunInfo())).message for p in prompts]
    together = await asyncio.gather(*(local.complete(p, [], greedy, RunInfo()) for p in prompts))
    assert [c.message for c in together] == one_by_one
    assert max(local.engine.batch_sizes[-3:]) > 1  # they really shared a batch


async def test_sampling_follows_the_openai_parameters(local):
    msgs = [{"role": "user", "content": "Tell me a story about a cat."}]
    seeded = Sampling(temperature=1.0, seed=7, max_tokens=16)
    a = await local.complete(msgs, [], seeded, RunInfo())
    b = await local.complete(msgs, [], seeded, RunInfo())
    assert a.message == b.message  # same seed, same sample
    assert a.usage["completion_tokens"] <= 16
    stopped = await local.complete(
        msgs, [], Sampling(temperature=0, max_tokens=40, stop=[" the"]), RunInfo()
    )
    assert " the" not in stopped.message["content"]


async def test_a_local_model_calls_tools_in_the_documented_format(local):
    completion = await local.complete(FEW_SHOT, WEATHER, Sampling(temperature=0), RunInfo())
    call = completion.message["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert "Rome" in call["function"]["arguments"]


@pytest.mark.timeout(1200)
async def test_arithmetic_basics_success_rate_is_neither_0_nor_1(local):
    # max_tokens bounds the time: a right answer is a few tokens, a ramble is cut short
    job = await workbench.evaluate("arithmetic-basics", MODEL, group_size=4, max_tokens=128)
    board = job.leaderboard().iloc[0]
    assert board["runs"] == 48 and board["errors"] == 0
    assert 0 < board["success_rate"] < 1


def test_openai_client_against_the_gateway(gateway):
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
    assert MODEL in {m.id for m in client.models.list()}

    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        temperature=0,
        max_tokens=20,
    )
    text = reply.choices[0].message.content
    assert text and reply.usage.completion_tokens <= 20

    tools = client.chat.completions.create(
        model=MODEL, messages=FEW_SHOT, tools=WEATHER, temperature=0
    )
    assert tools.choices[0].finish_reason == "tool_calls"
    assert tools.choices[0].message.tool_calls[0].function.name == "get_weather"

    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        temperature=0,
        max_tokens=20,
        stream=True,
    )
    pieces = [
        c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 3 and "".join(pieces) == text  # chunk by chunk, same greedy text

    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=10**7
        )
    again = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        temperature=0,
        max_tokens=20,
    )
    assert again.choices[0].message.content == text  # still serving, still greedy


async def test_evaluating_through_the_gateway_gives_the_same_traces(local, gateway, workbench_home):
    (workbench_home / "config.toml").parent.mkdir(parents=True, exist_ok=True)
    (workbench_home / "config.toml").write_text(f'[endpoints.gw]\nbase_url = "{gateway}/v1"\n')
    options = dict(
        group_size=1,
        max_concurrent=1,
        temperature=0,
        max_tokens=48,
        task_ids=["solve-1-0", "solve-2-0", "solve-7-1"],
    )
    direct = await workbench.evaluate("arithmetic-basics", MODEL, **options)
    remote = await workbench.evaluate("arithmetic-basics", f"gw:{MODEL}", **options)
    by_task = {t.task: t for t in direct.traces()}
    for trace in remote.traces():
        assert trace.messages == by_task[trace.task].messages
        assert trace.reward == by_task[trace.task].reward
