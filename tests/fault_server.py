"""An OpenAI-compatible chat server on 127.0.0.1 that injects faults on demand, for tests.

It plays a simple policy for the toy environment's ``count`` scenario (call ``increment``
until the target, then answer "done"), so a run against it succeeds unless a fault stops it.
It is plain asyncio over TCP, not a framework, so it can misbehave the way networks do:
drop a connection without a word, or cut a chunked response off half-way.

```python
with FaultServer() as server:
    server.inject("429", "429", "500", "drop")   # the next four requests fail like this
    server.fault_rate = 0.3                       # then each request fails with p=0.3
```

Faults: ``429`` (with ``Retry-After: retry_after``), ``500``, ``503``, ``400``, ``401``
(echoing the caller's key, as careless servers do), ``slow`` (waits ``slow_seconds``,
then answers), ``drop`` (closes the connection), ``malformed`` (a 200 whose body is not
JSON), ``truncated`` (a chunked 200 that stops half-way).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
from collections import deque

TRANSIENT = ("429", "500", "503", "slow", "drop", "truncated")


class FaultServer:
    def __init__(
        self, retry_after: str = "0", slow_seconds: float = 2.0, latency: float = 0.0, seed=0
    ):
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.latency = latency
        self.fault_rate = 0.0
        self.faults: tuple[str, ...] = TRANSIENT
        self.requests: list[dict] = []  # every request: time, fault, auth header
        self.in_flight = 0
        self.peak_in_flight = 0
        self._queue: deque[str] = deque()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server = None
        self.port = 0

    # -- control --------------------------------------------------------------------------

    def inject(self, *faults: str) -> None:
        """The next requests fail with these faults, in order."""
        with self._lock:
            self._queue.extend(faults)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def count(self, fault: str | None) -> int:
        return sum(r["fault"] == fault for r in self.requests)

    def _next_fault(self) -> str | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            if self.fault_rate and self._random.random() < self.fault_rate:
                return self._random.choice(self.faults)
            return None

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> FaultServer:
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        async def stop() -> None:
            self._server.close()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    # -- HTTP -----------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one request after another on this connection
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                if not await self._respond(lines[0], headers, body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _respond(self, request_line, headers, body, writer) -> bool:
        """Answer one request; False closes the connection."""
        if "/chat/completions" not in request_line:
            self._send(writer, 404, {"error": {"message": "not found"}})
            return True
        fault = self._next_fault()
        auth = headers.get("authorization", "")
        self.requests.append({"at": time.monotonic(), "fault": fault, "auth": auth})
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            if fault == "slow":
                await asyncio.sleep(self.slow_seconds)
            if fault == "drop":
                return False
            if fault in ("429", "500", "503", "400", "401"):
                message = {
                    "429": "rate limited",
                    "500": "internal error",
                    "503": "overloaded",
                    "400": "bad request: model does not support tools",
                    "401": f"invalid api key: {auth.removeprefix('Bearer ')}",
                }[fault]
                extra = {"Retry-After": self.retry_after} if fault == "429" else {}
                self._send(writer, int(fault), {"error": {"message": message}}, extra)
                return True
            reply = json.dumps(_completion(json.loads(body))).encode()
            if fault == "malformed":
                self._send_raw(writer, 200, b'{"id": "chatcmpl-1", "choices": [{"mess')
                return True
            if fault == "truncated":
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                )
                half = reply[: len(reply) // 2]
                writer.write(f"{len(reply):x}\r\n".encode() + half)
                await writer.drain()
                return False
            self._send_raw(writer, 200, reply)
            return True
        finally:
            self.in_flight -= 1

    def _send(self, writer, status: int, payload: dict, extra: dict | None = None) -> None:
        self._send_raw(writer, status, json.dumps(payload).encode(), extra)

    @staticmethod
    def _send_raw(writer, status: int, body: bytes, extra: dict | None = None) -> None:
        head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
        head += f"content-length: {len(body)}\r\n"
        for k, v in (extra or {}).items():
            head += f"{k}: {v}\r\n"
        writer.write(head.encode() + b"\r\n" + body)


def _completion(request: dict) -> dict:
    """The toy ``count`` policy: increment until the target from the prompt, then 'done'."""
    messages = request["messages"]
    prompt = next(m["content"] for m in messages if m["role"] == "user")
    target = int(re.search(r"to (\d+)", prompt).group(1))
    calls = sum(1 for m in messages if m["role"] == "tool")
    if calls < target:
        n = sum(1 for m in messages if m["role"] == "assistant")
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{n}",
                    "type": "function",
                    "function": {"name": "increment", "arguments": "{}"},
                }
            ],
        }
        finish = "tool_calls"
    else:
        message, finish = {"role": "assistant", "content": "done"}, "stop"
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }
