"""A tiny stdlib server speaking the subset of the OpenAI Chat Completions API that emlab uses.

Run as its own process: `python fake_openai_server.py --port 0 [--api-key KEY] [--ignore-n]`; it prints
`PORT <n>` on stdout once it listens. Tests steer each request with a marker in a message, e.g.

    "Hello [[id=t1 fail=429 times=2 dist=judge ignore_n=1 hang=2]]"

- id: counter key; failures apply to the first `times` requests carrying this id (times=-1: always);
- fail: 429 (sent with Retry-After: 0), 500, 503, 400, 401, 404, or `hang` (sleep `hang` seconds, default 3,
  before answering: past the client's timeout);
- dist: the scripted first-token distribution returned when `logprobs` is requested (see DISTRIBUTIONS;
  `none` returns no logprobs at all);
- ignore_n=1 (or --ignore-n for every request): return one choice whatever `n` asks.

Replies are deterministic: "echo: <last user message without marker> | seed=<seed> | choice=<i>".
`GET /stats` returns every request seen, as {"requests": [{id, status, seed, n, max_tokens, ...}]}.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# name -> [(token, probability)], most likely first
DISTRIBUTIONS: dict[str, list[tuple[str, float]]] = {
    "judge": [("85", 0.5), ("90", 0.2), ("REF", 0.2), (" 85", 0.1)],
    "edge": [
        ("100", 0.2),
        ("0", 0.1),
        ("101", 0.1),
        (" 42\n", 0.1),
        ("42", 0.05),
        ("-1", 0.05),
        ("7.5", 0.05),
        ("1_0", 0.05),
        ("CODE", 0.05),
        ("", 0.05),
    ],
    "words": [("I", 0.6), ("Sure", 0.3), ("No", 0.1)],
    "dup": [("x", 0.5), ("85", 0.3), ("85", 0.2)],  # two token ids that decode to the same text
}

RECORDED_FIELDS = ("model", "seed", "n", "max_tokens", "temperature", "top_p", "logprobs", "top_logprobs")
MARKER = re.compile(r"\[\[(.*?)\]\]")

STATE_LOCK = threading.Lock()
COUNTS: dict[str, int] = {}
REQUESTS: list[dict] = []


def parse_marker(messages: list[dict]) -> dict[str, str]:
    options: dict[str, str] = {}
    for message in messages:
        for match in MARKER.finditer(str(message.get("content") or "")):
            for part in match.group(1).split():
                key, _, value = part.partition("=")
                options[key] = value
    return options


def completion(body: dict, options: dict[str, str], ignore_n: bool) -> dict:
    messages = body.get("messages") or []
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {"content": ""})
    prompt = MARKER.sub("", str(last_user.get("content") or "")).strip()
    seed = body.get("seed")
    n = 1 if ignore_n or options.get("ignore_n") == "1" else int(body.get("n") or 1)
    choices = []
    for i in range(n):
        logprobs = None
        content = f"echo: {prompt} | seed={seed} | choice={i}"
        dist_name = options.get("dist", "judge")
        if body.get("logprobs") and dist_name != "none":
            dist = DISTRIBUTIONS[dist_name][: int(body.get("top_logprobs") or 0) or 1]
            top = [
                {"token": tok, "logprob": math.log(p), "bytes": list(tok.encode("utf-8"))} for tok, p in dist
            ]
            logprobs = {"content": [{**top[0], "top_logprobs": top}], "refusal": None}
            content = top[0]["token"]
        choices.append(
            {
                "index": i,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": logprobs,
            }
        )
    prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in messages)
    completion_tokens = sum(len(c["message"]["content"].split()) for c in choices)
    return {
        "id": f"chatcmpl-fake-{len(REQUESTS)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "unknown"),
        "system_fingerprint": "fake",
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def error_body(status: int, message: str) -> dict:
    kind = {401: "invalid_request_error", 429: "rate_limit_error"}.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": str(status)}}


class Handler(BaseHTTPRequestHandler):
    server_version = "FakeOpenAI/1.0"
    api_key: str | None = None
    ignore_n = False

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def send_json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/stats":
            with STATE_LOCK:
                self.send_json(200, {"requests": list(REQUESTS)})
        elif self.path.rstrip("/") == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": "test-model", "object": "model", "owned_by": "me"}]})
        else:
            self.send_json(404, error_body(404, f"no route {self.path}"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self.send_json(404, error_body(404, f"no route {self.path}"))
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self.send_json(400, error_body(400, "body is not JSON"))
            return
        options = parse_marker(body.get("messages") or [])
        key = options.get("id", "default")
        with STATE_LOCK:
            COUNTS[key] = COUNTS.get(key, 0) + 1
            count = COUNTS[key]
            record = {
                "id": key,
                "count": count,
                "auth": self.headers.get("Authorization"),
                **{k: body.get(k) for k in RECORDED_FIELDS},
            }
            REQUESTS.append(record)

        status = 200
        if self.api_key is not None and self.headers.get("Authorization") != f"Bearer {self.api_key}":
            status = 401
        else:
            times = int(options.get("times", "0"))
            failing = "fail" in options and (times < 0 or count <= times)
            if failing and options["fail"] == "hang":
                time.sleep(float(options.get("hang", "3")))
            elif failing:
                status = int(options["fail"])
        record["status"] = status
        if status == 401:  # echoes the key it got, as some local servers do: the client must redact it
            self.send_json(401, error_body(401, f"Incorrect API key provided: {self.headers.get('Authorization')}"))
        elif status == 429:
            self.send_json(429, error_body(429, "Rate limit reached."), {"Retry-After": "0"})
        elif status != 200:
            self.send_json(status, error_body(status, f"scripted failure {status}"))
        else:
            self.send_json(200, completion(body, options, self.ignore_n))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="require `Authorization: Bearer KEY` (else 401)")
    parser.add_argument("--ignore-n", action="store_true", help="always return one choice")
    args = parser.parse_args(argv)
    Handler.api_key = args.api_key
    Handler.ignore_n = args.ignore_n
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
