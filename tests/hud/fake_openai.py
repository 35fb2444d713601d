"""A fake OpenAI chat completions server on 127.0.0.1, for HUD code that needs a model.

The model name picks its behaviour: ``loop`` always calls the first tool offered; ``answer``
answers "How many 'X' in 'Y'?" with the count. Every request is kept in ``requests``.
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI(ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.requests.append(body)
        messages, tools = body["messages"], body.get("tools") or []
        turns = sum(1 for m in messages if m["role"] == "assistant")
        user = " ".join(
            m["content"] for m in messages if m["role"] == "user" and isinstance(m["content"], str)
        )
        message = {"role": "assistant", "content": None}
        if body["model"] == "loop" and tools:
            tool = tools[0]["function"]
            properties = tool["parameters"].get("properties", {})
            args = {k: "a" if v.get("type") == "string" else 1 for k, v in properties.items()}
            message["tool_calls"] = [
                {
                    "id": f"call_{turns}",
                    "type": "function",
                    "function": {"name": tool["name"], "arguments": json.dumps(args)},
                }
            ]
        else:
            found = re.search(r"How many '(.)'s? (?:in|are in) '([^']*)'", user)
            message["content"] = (
                str(found.group(2).lower().count(found.group(1).lower())) if found else "ok"
            )
        reply = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
