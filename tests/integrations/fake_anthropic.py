"""A scripted stand-in for the Anthropic Messages API on 127.0.0.1, so the real Claude Code
CLI (bundled in `claude-agent-sdk`) runs with no network: the first turn asks to run one tool
call (`tool_use`), every later turn ends with a text; every request is recorded, so a test can
read the tool results Claude Code sent back to the model."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeAnthropic:
    def __init__(self, tool: str, tool_input: dict, *, tool_use_id: str = "toolu_hitl_01"):
        self.tool, self.tool_input, self.tool_use_id = tool, tool_input, tool_use_id
        self.requests: list[dict] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeAnthropic:
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def tool_results(self) -> list[dict]:
        """The `tool_result` blocks Claude Code sent to the model."""
        found = []
        for body in self.requests:
            for message in body.get("messages", []):
                content = message.get("content")
                if isinstance(content, list):
                    found += [b for b in content if b.get("type") == "tool_result"]
        return found

    def _reply(self, body: dict) -> tuple[list[dict], str]:
        offered = {t.get("name") for t in body.get("tools") or []}
        if self.tool in offered and not self.tool_results():
            block = {"type": "tool_use", "id": self.tool_use_id, "name": self.tool, "input": {}}
            return [block], "tool_use"
        return [{"type": "text", "text": "done"}], "end_turn"

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                if not self.path.startswith("/v1/messages") or "count_tokens" in self.path:
                    self._json({"input_tokens": 10} if "count_tokens" in self.path else {}, 200)
                    return
                fake.requests.append(body)
                blocks, stop = fake._reply(body)
                if body.get("stream"):
                    self._stream(blocks, stop)
                else:
                    for b in blocks:
                        if b["type"] == "tool_use":
                            b["input"] = fake.tool_input
                    self._json(_message(blocks, stop), 200)

            def _json(self, data, status):
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _stream(self, blocks, stop):
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.end_headers()
                events = [
                    ("message_start", {"type": "message_start", "message": _message([], None)})
                ]
                for i, block in enumerate(blocks):
                    events.append(
                        ("content_block_start",
                         {"type": "content_block_start", "index": i, "content_block": block})
                    )  # fmt: skip
                    if block["type"] == "tool_use":
                        delta = {"type": "input_json_delta",
                                 "partial_json": json.dumps(fake.tool_input)}  # fmt: skip
                    else:
                        delta = {"type": "text_delta", "text": block.pop("text")}
                        block["text"] = ""
                    events.append(
                        ("content_block_delta",
                         {"type": "content_block_delta", "index": i, "delta": delta})
                    )  # fmt: skip
                    events.append(
                        ("content_block_stop", {"type": "content_block_stop", "index": i})
                    )
                done = {"stop_reason": stop, "stop_sequence": None}
                events.append(
                    ("message_delta",
                     {"type": "message_delta", "delta": done, "usage": {"output_tokens": 5}})
                )  # fmt: skip
                events.append(("message_stop", {"type": "message_stop"}))
                for name, data in events:
                    self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()

        return Handler


def _message(content: list[dict], stop: str | None) -> dict:
    return {
        "id": "msg_scripted",
        "type": "message",
        "role": "assistant",
        "model": "claude-scripted",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 1},
    }
