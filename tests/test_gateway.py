"""The OpenAI-compatible gateway, driven by the official `openai` client over 127.0.0.1."""

import httpx
import openai
import pytest
from gateway_server import running_gateway

KEY = "test-key-123"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway("--api-key", KEY, home=tmp_path_factory.mktemp("wb")) as url:
        yield url


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=KEY, max_retries=0)


SHOP_TASK = {"env": "shop", "scenario": "checkout", "args": {"product_name": "Desk Lamp"}}


def test_lists_models(client):
    ids = {m.id for m in client.models.list()}
    assert {"scripted:expert", "scripted:weak", "local:smollm2-135m"} <= ids


def test_scripted_policy_answers_with_a_tool_call(client):
    response = client.chat.completions.create(
        model="scripted:expert",
        messages=[{"role": "user", "content": "Buy the Desk Lamp"}],
        extra_body={"task": SHOP_TASK},
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls[0].function.name == "search_products"


def test_scripted_policy_streams(client):
    stream = client.chat.completions.create(
        model="scripted:expert",
        messages=[{"role": "user", "content": "Buy the Desk Lamp"}],
        extra_body={"task": SHOP_TASK},
        stream=True,
    )
    chunks = list(stream)
    calls = [c.choices[0].delta.tool_calls for c in chunks if c.choices[0].delta.tool_calls]
    assert calls[0][0].function.name == "search_products"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_wrong_or_missing_key_is_401(gateway):
    for headers in ({}, {"Authorization": "Bearer nope"}):
        r = httpx.get(f"{gateway}/v1/models", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    "body, status, param",
    [
        ({"model": "scripted:expert"}, 400, "messages"),
        ({"model": "scripted:expert", "messages": "hello"}, 400, "messages"),
        (
            {"model": "scripted:expert", "messages": [{"role": "wizard", "content": "x"}]},
            400,
            "messages.0.role",
        ),
        (
            {
                "model": "scripted:expert",
                "messages": [{"role": "user", "content": "x"}],
                "temperature": "hot",
            },
            400,
            "temperature",
        ),
        ({"model": "gpt-17", "messages": [{"role": "user", "content": "x"}]}, 404, "model"),
        (
            {"model": "scripted:expert", "messages": [{"role": "user", "content": "x"}]},
            400,
            "task",
        ),  # a scripted policy without its task
    ],
)
def test_malformed_requests_get_openai_format_errors(gateway, body, status, param):
    r = httpx.post(
        f"{gateway}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert r.status_code == status
    error = r.json()["error"]
    assert error["param"] == param and error["message"] and error["type"]


def test_invalid_json_is_400_and_the_server_keeps_serving(gateway, client):
    r = httpx.post(
        f"{gateway}/v1/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope:x", messages=[{"role": "user", "content": "x"}])
    assert client.models.list().data  # still serving
