"""The OpenAI-compatible gateway, driven by the official `openai` client over 127.0.0.1."""

import json
import re
import resource
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from conftest import TOY, run_cli
from fault_server import FaultServer
from gateway_server import free_port, gateway_process, running_gateway

KEY = "test-key-123"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    home = tmp_path_factory.mktemp("wb")
    with running_gateway("--api-key", KEY, "--env", TOY, home=home) as url:
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


# -- hardening (issue 11) -------------------------------------------------------------------

ATTACKS = Path(__file__).parent / "attacks"
AUTH = {"Authorization": f"Bearer {KEY}"}


def chat(url: str, task: dict, model: str = "scripted:expert", headers=AUTH) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "go"}], "task": task}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60)


def test_a_request_cannot_make_the_gateway_import_a_file(gateway, tmp_path):
    evil = tmp_path / "evil.py"
    shutil.copy(ATTACKS / "env_that_runs_on_import.py", evil)
    refs = [f"{evil}:env", f"{tmp_path / 'missing.py'}:env", "os:system", "../../etc/passwd"]
    replies = [chat(gateway, {"env": ref, "scenario": "x", "args": {}}) for ref in refs]
    assert not evil.with_suffix(".ran").exists()  # the file never ran
    assert {r.status_code for r in replies} == {400}
    errors = [r.json()["error"] for r in replies]
    assert {e["param"] for e in errors} == {"task.env"}
    # One message for all: whether a path exists cannot be learnt from the answer.
    assert len({e["message"] for e in errors}) == 1
    assert str(tmp_path) not in errors[0]["message"]


def test_a_request_cannot_make_the_gateway_load_a_model_file(gateway, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    for model in (f"local:{tmp_path / 'model'}", f"local:{tmp_path / 'missing'}"):
        reply = chat(gateway, SHOP_TASK, model=model)
        assert reply.status_code == 404 and reply.json()["error"]["code"] == "model_not_found"
        assert "not served here" in reply.json()["error"]["message"]


def test_the_owner_allows_more_environments_and_their_arguments_are_checked(gateway):
    for ref in ("toy", TOY):  # by name, or by the reference the owner gave
        reply = chat(gateway, {"env": ref, "scenario": "count", "args": {"target": 2}})
        assert reply.status_code == 200
        call = reply.json()["choices"][0]["message"]["tool_calls"][0]
        assert call["function"]["name"] == "increment"
    bad = chat(gateway, {"env": "toy", "scenario": "count", "args": {"target": "lots"}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "task.args.target"
    unknown = chat(gateway, {"env": "shop", "scenario": "teleport", "args": {}})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "task.scenario"


def test_authentication_is_on_by_default_and_an_empty_key_is_refused(tmp_path):
    with gateway_process(home=tmp_path) as server:
        printed = re.search(r"API key: (\S+)", server.stdout.read_text())
        assert printed, server.stdout.read_text()
        assert httpx.get(f"{server.url}/v1/models").status_code == 401
        key = {"Authorization": f"Bearer {printed[1]}"}
        assert httpx.get(f"{server.url}/v1/models", headers=key).status_code == 200
    for args, env in ((["--api-key", ""], {}), ([], {"WORKBENCH_API_KEY": ""})):
        result = run_cli("serve", "--port", str(free_port()), *args, env=env, timeout=120)
        assert result.returncode == 2, result.stderr
        assert "API key is empty" in result.stderr and "Traceback" not in result.stderr


def test_no_auth_is_allowed_with_a_warning(tmp_path):
    with gateway_process("--no-auth", home=tmp_path) as server:
        assert httpx.get(f"{server.url}/v1/models").status_code == 200
        assert "without an API key" in server.log()


def test_a_web_page_cannot_drive_the_gateway(tmp_path):
    with gateway_process("--no-auth", home=tmp_path) as server:
        url = f"{server.url}/v1/chat/completions"
        body = json.dumps(
            {
                "model": "scripted:expert",
                "messages": [{"role": "user", "content": "go"}],
                "task": SHOP_TASK,
            }
        )
        # What a page on another site can send without the browser asking first.
        drive_by = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
        reply = httpx.post(url, content=body, headers=drive_by)
        assert reply.status_code == 403 and reply.json()["error"]["code"] == "origin_not_allowed"
        json_from_page = {"Origin": "http://evil.example", "Content-Type": "application/json"}
        assert httpx.post(url, content=body, headers=json_from_page).status_code == 403
        not_json = httpx.post(url, content=body, headers={"Content-Type": "text/plain"})
        assert not_json.status_code == 415
        own = {"Origin": f"http://127.0.0.1:{server.port}", "Content-Type": "application/json"}
        assert httpx.post(url, content=body, headers=own).status_code == 200


def send_body(port: int, head: bytes, size: int, chunked: bool) -> bytes:
    """Send a request with a ``size``-byte body, 1 MB at a time, and return the status line.

    The answer is read while the body is still going out, as a server may answer early.
    """
    sock = socket.create_connection(("127.0.0.1", port))
    answer: list[bytes] = []
    reader = threading.Thread(target=lambda: answer.append(sock.recv(4096)), daemon=True)
    reader.start()
    chunk = b"x" * (1 << 20)
    try:
        sock.sendall(head)
        for _ in range(size // len(chunk)):
            if answer:
                break
            sock.sendall(b"100000\r\n" + chunk + b"\r\n" if chunked else chunk)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server stopped reading: its answer is what counts
    reader.join(timeout=60)
    sock.close()
    return answer[0].split(b"\r\n")[0] if answer else b""


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_100_mb_body_is_refused_with_413(gateway, chunked):
    port = int(gateway.rsplit(":", 1)[1])
    size = 100 << 20
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % size
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + KEY.encode() + b"\r\n"
        b"Content-Type: application/json\r\n" + framing + b"\r\n\r\n"
    )
    assert send_body(port, head, size, chunked).startswith(b"HTTP/1.1 413")
    assert httpx.get(f"{gateway}/health").status_code == 200


@pytest.mark.slow
def test_thousands_of_idle_connections_do_not_lock_clients_out(tmp_path):
    # The server gets 2,048 file descriptors; 5,000 sockets that connect and send nothing
    # would use them all up, and then no one else gets in.
    def few_descriptors():
        resource.setrlimit(resource.RLIMIT_NOFILE, (2048, 2048))

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 5200:
        pytest.skip(f"this test opens 5,000 sockets; the descriptor limit here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 5200), hard))
    idle: list[socket.socket] = []
    try:
        with gateway_process("--no-auth", home=tmp_path, preexec_fn=few_descriptors) as server:
            for _ in range(5000):
                try:
                    idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=2))
                except OSError:
                    pass  # a full accept queue: the flood is on regardless
            assert len(idle) > 4000
            assert httpx.get(f"{server.url}/health", timeout=30).status_code == 200
            # A client that starts a request head and never ends it is dropped too.
            slow = socket.create_connection(("127.0.0.1", server.port))
            slow.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.settimeout(60)
            assert slow.recv(4096) == b""  # closed by the server, with no answer
            slow.close()
            assert httpx.get(f"{server.url}/health", timeout=30).status_code == 200
    finally:
        for s in idle:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def hang_up(port: int, body: dict, key: str = KEY, after: float = 0.5) -> None:
    """Send a chat request, then close the connection before the answer comes."""
    data = json.dumps(body).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (key.encode(), len(data), data)
        )
        time.sleep(after)


def wait_for(condition, timeout: float = 30.0, server=None) -> None:
    deadline = time.monotonic() + timeout  # a hang bound, not a speed check
    while not condition():
        assert time.monotonic() < deadline, server.log() if server else "timed out"
        time.sleep(0.05)


def test_a_client_that_hangs_up_is_cancelled_with_one_log_line(tmp_path):
    with gateway_process("--api-key", KEY, home=tmp_path) as server:
        for stream in (False, True):
            body = {
                "model": "scripted:expert?latency=60",
                "messages": [{"role": "user", "content": "go"}],
                "task": SHOP_TASK,
                "stream": stream,
            }
            hang_up(server.port, body)
        wait_for(lambda: server.log().count("hung up") == 2, server=server)
        lines = [line for line in server.log().splitlines() if line.strip()]
        assert len(lines) == 2 and "Traceback" not in server.log(), server.log()
        assert all("cancelled" in line for line in lines)
        assert httpx.get(f"{server.url}/health").status_code == 200


@pytest.mark.slow
def test_a_client_that_hangs_up_stops_local_generation_within_a_second(tmp_path):
    prompt = [{"role": "user", "content": "Write a very long story about a lighthouse."}]
    # Seeded: unseeded, one story in six or so ends within a few seconds, answered before
    # the client hangs up. With seed 0 the model writes all 1,500 tokens (~20 s).
    long = {"model": "local:smollm2-135m", "messages": prompt, "max_tokens": 1500, "seed": 0}
    with gateway_process("--no-auth", "--preload", long["model"], home=tmp_path) as server:

        def busy(seconds: float = 1.0) -> float:
            """CPU seconds the server used in the next ``seconds``."""
            before = server.cpu_seconds()
            time.sleep(seconds)
            return server.cpu_seconds() - before

        # Streaming: read a few chunks, then go away.
        started = time.monotonic()
        with httpx.Client(timeout=300) as client:
            url = f"{server.url}/v1/chat/completions"
            with client.stream("POST", url, json={**long, "stream": True}) as reply:
                lines = reply.iter_lines()
                for _ in range(4):
                    next(lines)
                first_tokens = time.monotonic() - started
        time.sleep(1.0)
        assert busy() < 0.25  # generating takes a core or more
        # Not streaming: the answer would take minutes. Go away once it is surely decoding
        # (a forward pass already under way finishes: on a loaded CPU, the prompt's is long).
        hang_up(server.port, long, after=max(2.0, 2 * first_tokens))
        time.sleep(1.0)
        assert busy() < 0.25
        wait_for(lambda: server.log().count("hung up") == 2, server=server)


@pytest.mark.parametrize(
    "fault, status",
    [("500", 502), ("401", 502), ("503", 503), ("drop", 503), ("400", 400)],
)
def test_an_upstream_failure_is_a_502_or_503_naming_its_status(tmp_path, fault, status):
    home = tmp_path / "wb"
    home.mkdir()
    with FaultServer() as upstream:
        (home / "config.toml").write_text(
            f'[endpoints.faulty]\nbase_url = "{upstream.url}"\nmax_retries = 0\n'
        )
        with gateway_process("--api-key", KEY, home=home) as server:
            upstream.inject(fault)
            body = {"model": "faulty:m", "messages": [{"role": "user", "content": "hi"}]}
            reply = httpx.post(
                f"{server.url}/v1/chat/completions", json=body, headers=AUTH, timeout=60
            )
    assert reply.status_code == status
    error = reply.json()["error"]
    assert error["code"] == "upstream_error"
    if fault.isdigit():
        assert f"HTTP {fault}" in error["message"]


def test_junk_model_ids_are_refused_and_not_kept(gateway, client):
    for i in range(20):  # each a megabyte: a server that kept them would grow by 20 MB
        reply = chat(gateway, SHOP_TASK, model=f"scripted:{i}" + "x" * (1 << 20))
        assert reply.status_code == 404 and reply.json()["error"]["code"] == "model_not_found"
        assert "longer than 512 characters" in reply.json()["error"]["message"]
    assert client.models.list().data  # still serving


def test_a_dns_rebinding_page_cannot_read_a_gateway_without_a_key(tmp_path):
    with gateway_process("--no-auth", home=tmp_path) as server:
        # A page of evil.example whose name now points at 127.0.0.1: same origin to the
        # browser, so a GET goes without Origin, its own name in Host.
        for host in (
            f"evil.example:{server.port}",
            "evil.example",
            f"127.0.0.1.evil:{server.port}",
        ):
            reply = httpx.get(f"{server.url}/v1/models", headers={"Host": host})
            assert reply.status_code == 421, (host, reply.text)
            assert reply.json()["error"]["code"] == "host_not_allowed"
        # The real client, by any loopback name, is served.
        for base in (server.url, f"http://localhost:{server.port}"):
            client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
            assert "scripted:expert" in {m.id for m in client.models.list()}


def test_refused_model_ids_are_not_kept_and_served_ones_are_bounded(monkeypatch):
    from starlette.testclient import TestClient

    from workbench import models
    from workbench.gateway import create_app

    monkeypatch.setattr(models, "_CACHE", {})
    go = [{"role": "user", "content": "Count to 2."}]  # what the upstream plays
    with FaultServer() as upstream, TestClient(create_app(KEY)) as http:
        monkeypatch.setenv("OPENAI_BASE_URL", upstream.url)
        monkeypatch.setenv("OPENAI_API_KEY", "upstream-key")
        # The real client, its requests handed to the app in this process.
        client = openai.OpenAI(
            base_url="http://testserver/v1", api_key=KEY, http_client=http, max_retries=0
        )
        for i in range(30):  # ids the gateway takes for names, each request refused
            with pytest.raises(openai.BadRequestError):  # a scripted policy needs a task
                client.chat.completions.create(model=f"scripted:p{i}" + "x" * 400, messages=go)
            with pytest.raises(openai.BadRequestError):  # no such policy in the shop
                client.chat.completions.create(
                    model=f"scripted:p{i}", messages=go, extra_body={"task": SHOP_TASK}
                )
            upstream.inject("400")
            with pytest.raises(openai.BadRequestError):  # the upstream refuses it
                client.chat.completions.create(model=f"openai:m{i}" + "x" * 400, messages=go)
        assert models._CACHE == {}  # nothing kept

        # Served ids are kept (one client each), up to the bound, least recently used first.
        monkeypatch.setattr(models, "MAX_CACHED", 4)
        for i in range(10):
            assert client.chat.completions.create(model=f"openai:m{i}", messages=go).choices
        assert list(models._CACHE) == [f"openai:m{i}" for i in range(6, 10)]
