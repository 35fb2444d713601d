"""A fake Anthropic Messages API on 127.0.0.1, for tests: the real SDK talks to it over HTTP.

It plays the toy environment's ``count`` scenario (call ``increment``, twice a turn where it
can, until the target in the prompt, then answer "done"), checks each request the way the API does (turns alternate and
start with the user, every ``tool_use`` is answered by a ``tool_result`` in the next turn, no
empty text, ``max_tokens`` given, tools have an ``input_schema``) and answers 400 where the
API would, and keeps every request it got, so a test can read what went over the wire.

```python
with FakeAnthropic() as api:
    api.inject("529")          # the next request is answered "overloaded"
    ...                        # ANTHROPIC_BASE_URL=api.url
    api.requests[-1]["body"]   # the JSON the SDK sent; ["key"]: the API key it carried
```

Faults: ``529``, ``500``, ``429`` (transient: the SDK retries them) and ``401`` (echoes the
caller's key in its message, as careless servers do). ``latency`` delays every answer, and
``peak_in_flight`` says how many requests were ever answered at once.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ERRORS = {
    "529": ("overloaded_error", "Overloaded"),
    "500": ("api_error", "Internal server error"),
    "429": ("rate_limit_error", "Number of requests has exceeded your rate limit"),
    "401": ("authentication_error", "invalid x-api-key: {key}"),
}


class FakeAnthropic:
    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.requests: list[dict] = []  # every request: body, key, headers, fault, time
        self.in_flight = 0
        self.peak_in_flight = 0
        self._faults: deque[str] = deque()
        self._lock = threading.Lock()

    def inject(self, *faults: str) -> None:
        """The next requests fail with these faults, in order."""
        with self._lock:
            self._faults.extend(faults)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeAnthropic:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status, payload = fake._answer(self.path, dict(self.headers), body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    # -- one request ----------------------------------------------------------------------

    def _answer(self, path: str, headers: dict, raw: bytes) -> tuple[int, dict]:
        headers = {k.lower(): v for k, v in headers.items()}
        # The SDK has sent the key as x-api-key, and lately as a bearer token: take either.
        key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            body = json.loads(raw or b"{}")
            self.requests.append(
                {
                    "at": time.monotonic(),
                    "body": body,
                    "key": key,
                    "headers": headers,
                    "fault": fault,
                }
            )
            if self.latency:
                time.sleep(self.latency)
            if path.rstrip("/") != "/v1/messages":
                return _error(404, "not_found_error", f"no route {path}")
            if fault is not None:
                kind, message = ERRORS[fault]
                return _error(int(fault), kind, message.format(key=key))
            problem = _invalid(body)
            if problem:
                return _error(400, "invalid_request_error", problem)
            return 200, _reply(body)
        finally:
            with self._lock:
                self.in_flight -= 1


def _error(status: int, kind: str, message: str) -> tuple[int, dict]:
    return status, {"type": "error", "error": {"type": kind, "message": message}}


def _invalid(body: dict) -> str | None:
    """What the real API would refuse in this request, if anything."""
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    for tool in body.get("tools") or []:
        if set(tool) - {"name", "description", "input_schema"} or "input_schema" not in tool:
            return f"tools: unexpected tool format {sorted(tool)}"
    messages = body.get("messages") or []
    if not messages or messages[0]["role"] != "user":
        return "messages: first message must use the 'user' role"
    pending: set[str] = set()  # tool_use ids the next user turn must answer
    for i, message in enumerate(messages):
        if message["role"] != ("user" if i % 2 == 0 else "assistant"):
            return f"messages.{i}: roles must alternate between 'user' and 'assistant'"
        blocks = message["content"]
        if isinstance(blocks, str):
            blocks = [{"type": "text", "text": blocks}]
        answered = {b["tool_use_id"] for b in blocks if b["type"] == "tool_result"}
        if answered != pending:
            return f"messages.{i}: tool_use ids without tool_result: {sorted(pending - answered)}"
        kinds = [b["type"] for b in blocks]
        if kinds[: len(answered)] != ["tool_result"] * len(answered):
            return f"messages.{i}: tool_result blocks must come first"
        for block in blocks:
            if block["type"] == "text" and not block["text"]:
                return f"messages.{i}: text content blocks must be non-empty"
            if block["type"] == "tool_use" and not re.fullmatch(r"[a-zA-Z0-9_-]+", block["id"]):
                return f"messages.{i}: tool_use.id: String should match pattern"
        pending = {b["id"] for b in blocks if b["type"] == "tool_use"}
    if pending:
        return "messages: the last assistant turn has tool_use ids without tool_result"
    return None


def _reply(body: dict) -> dict:
    """The toy ``count`` policy: increment until the target from the prompt, then 'done'."""
    first = body["messages"][0]["content"]
    prompt = first if isinstance(first, str) else first[0]["text"]
    target = int(re.search(r"to (\d+)", prompt).group(1))
    results = sum(
        1
        for m in body["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "tool_result"
    )
    n = len(body["messages"])
    if results < target:  # two calls in one turn where it can: their results share a turn
        calls = [
            {"type": "tool_use", "id": f"toolu_{n}_{i}", "name": "increment", "input": {"by": 1}}
            for i in range(min(2, target - results))
        ]
        content, stop = [{"type": "text", "text": "Incrementing."}, *calls], "tool_use"
    else:
        content, stop = [{"type": "text", "text": "done"}], "end_turn"
    return {
        "id": f"msg_{n:04d}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 20 + 5 * n, "output_tokens": 7},
    }
