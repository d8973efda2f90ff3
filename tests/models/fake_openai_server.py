"""A tiny stdlib server speaking the subset of the OpenAI Chat Completions API that emlab uses.

Run as its own process: `python fake_openai_server.py --port 0 [--api-key KEY] [--ignore-n] [--split-digits]
[--prefill continue|ignore|reject]`; it prints `PORT <n>` on stdout once it listens. Tests steer each request with
a marker in a message, e.g.

    "Hello [[id=t1 fail=429 times=2 dist=judge ignore_n=1 hang=2 split=1 prefill=ignore]]"

- id: counter key; failures apply to the first `times` requests carrying this id (times=-1: always);
- fail: 429 (sent with Retry-After: 0), 500, 503, 400, 401, 404, or `hang` (sleep `hang` seconds, default 3,
  before answering: past the client's timeout);
- dist: the scripted first-token distribution returned when `logprobs` is requested (see DISTRIBUTIONS;
  `none` returns no logprobs at all);
- ignore_n=1 (or --ignore-n for every request): return one choice whatever `n` asks;
- split=1 (or --split-digits): a tokenizer that writes numbers digit by digit, as Qwen's or Mistral's do. The
  dist is then a distribution over whole replies (REPLIES, or a DISTRIBUTIONS entry read as replies), each
  tokenized into single digits and runs of other characters and ended by EOS; a logprobs request is answered
  greedily for up to `max_tokens` positions, each with its top-`top_logprobs` next tokens (the exact
  conditional of that reply distribution), EOS included; eos=0 leaves the EOS position out;
- prefill (or --prefill): what a final assistant message sent with `continue_final_message` does: `continue`
  (default; the reply goes on from its tokens, and usage.prompt_tokens grows by their count), `ignore` (a new
  reply starts, as a server without prefill support does: the prompt grows by end-of-turn and header tokens
  too), `reject` (HTTP 400 for the unknown parameter, as api.openai.com answers).

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

# split-digits mode: name -> [(whole reply, probability)]
REPLIES: dict[str, list[tuple[str, float]]] = {
    # a judge that means "85" and hedges: every number of the tree that can hold mass does, once
    "tree": [("85", 0.40), ("80", 0.15), ("90", 0.10), ("100", 0.05), ("10", 0.04), ("8", 0.03), ("0", 0.03),
             ("75", 0.05), ("REFUSAL", 0.10), ("05", 0.02), ("101", 0.03)],
    "sure": [("85", 0.97), ("80", 0.03)],
    "spread": [(str(k), 1 / 101) for k in range(101)],
    "words": [("I", 0.6), ("Sure", 0.3), ("No", 0.1)],
    "low": [("7", 0.3), ("I", 0.7)],  # some single-digit mass, under half: undecided
}
EOS = "<|im_end|>"
TOKEN = re.compile(r"[0-9]|[^0-9]+")
TURN_TOKENS = 4  # what a new turn adds to the prompt: end-of-turn, newline, start-of-turn, role

RECORDED_FIELDS = ("model", "seed", "n", "max_tokens", "temperature", "top_p", "logprobs", "top_logprobs",
                   "continue_final_message", "add_generation_prompt")
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


def split_tokens(text: str) -> list[str]:
    """Digits one by one, other runs whole: how a digit-splitting tokenizer writes a reply."""
    return TOKEN.findall(text)


def next_token_probs(replies: list[tuple[str, float]], prefix: list[str]) -> list[tuple[str, float]]:
    """P(next token | the reply so far) under a distribution over whole replies, likeliest first."""
    mass: dict[str, float] = {}
    for text, p in replies:
        tokens = split_tokens(text) + [EOS]
        if tokens[: len(prefix)] == prefix and len(tokens) > len(prefix):
            mass[tokens[len(prefix)]] = mass.get(tokens[len(prefix)], 0.0) + p
    total = sum(mass.values())
    if total <= 0:
        return [(EOS, 1.0)]
    return sorted(((t, p / total) for t, p in mass.items()), key=lambda item: -item[1])


def split_completion(body: dict, options: dict[str, str], prefix: list[str]) -> tuple[str, dict]:
    """Greedy reply after `prefix` with per-position top logprobs (split-digits mode)."""
    name = options.get("dist", "judge")
    replies = REPLIES.get(name) or DISTRIBUTIONS[name]
    k = int(body.get("top_logprobs") or 0) or 1
    positions, generated = [], list(prefix)
    for _ in range(int(body.get("max_tokens") or 16)):
        ranked = next_token_probs(replies, generated)
        top = [{"token": t, "logprob": math.log(p), "bytes": list(t.encode("utf-8"))} for t, p in ranked[:k]]
        if top[0]["token"] == EOS and options.get("eos") == "0":
            break
        positions.append({**top[0], "top_logprobs": top})
        if top[0]["token"] == EOS:
            break
        generated.append(top[0]["token"])
    content = "".join(p["token"] for p in positions if p["token"] != EOS)
    return content, {"content": positions, "refusal": None}


def prompt_and_prefix(body: dict, options: dict[str, str], split: bool) -> tuple[int, list[str]]:
    """usage.prompt_tokens and the reply tokens to continue from: a final assistant message is a prefill only
    when `continue_final_message` is set and the server honours it (prefill=continue)."""
    messages = body.get("messages") or []
    words = [len(str(m.get("content") or "").split()) for m in messages]
    final = messages[-1] if messages else {}
    if final.get("role") == "assistant" and body.get("continue_final_message") and options["prefill"] == "continue":
        prefill = str(final.get("content") or "")
        tokens = split_tokens(prefill) if split else prefill.split()
        return sum(words[:-1]) + len(tokens), tokens
    if final.get("role") == "assistant":  # a new reply after a finished one: end of turn and a new header
        return sum(words) + TURN_TOKENS, []
    return sum(words), []


def completion(body: dict, options: dict[str, str], ignore_n: bool, split: bool = False) -> dict:
    messages = body.get("messages") or []
    prompt_tokens, prefix = prompt_and_prefix(body, options, split)
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {"content": ""})
    prompt = MARKER.sub("", str(last_user.get("content") or "")).strip()
    seed = body.get("seed")
    n = 1 if ignore_n or options.get("ignore_n") == "1" else int(body.get("n") or 1)
    choices = []
    for i in range(n):
        logprobs = None
        content = f"echo: {prompt} | seed={seed} | choice={i}"
        dist_name = options.get("dist", "judge")
        if body.get("logprobs") and dist_name != "none" and split:
            content, logprobs = split_completion(body, options, prefix)
        elif body.get("logprobs") and dist_name != "none":
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
    split_digits = False
    prefill = "continue"

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
        options.setdefault("prefill", self.prefill)
        split = self.split_digits or options.get("split") == "1"
        key = options.get("id", "default")
        with STATE_LOCK:
            COUNTS[key] = COUNTS.get(key, 0) + 1
            count = COUNTS[key]
            record = {
                "id": key,
                "count": count,
                "auth": self.headers.get("Authorization"),
                **{k: body.get(k) for k in RECORDED_FIELDS},
                "prefill": messages[-1].get("content") if (messages := body.get("messages") or [])
                and messages[-1].get("role") == "assistant" else None,
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
            elif body.get("continue_final_message") and options["prefill"] == "reject":
                status = 400
        record["status"] = status
        if status == 401:  # echoes the key it got, as some local servers do: the client must redact it
            self.send_json(401, error_body(401, f"Incorrect API key provided: {self.headers.get('Authorization')}"))
        elif status == 400 and body.get("continue_final_message"):
            self.send_json(400, error_body(400, "Unrecognized request argument supplied: continue_final_message"))
        elif status == 429:
            self.send_json(429, error_body(429, "Rate limit reached."), {"Retry-After": "0"})
        elif status != 200:
            self.send_json(status, error_body(status, f"scripted failure {status}"))
        else:
            self.send_json(200, completion(body, options, self.ignore_n, split))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="require `Authorization: Bearer KEY` (else 401)")
    parser.add_argument("--ignore-n", action="store_true", help="always return one choice")
    parser.add_argument("--split-digits", action="store_true", help="a tokenizer that writes numbers digit by digit")
    parser.add_argument("--prefill", choices=("continue", "ignore", "reject"), default="continue",
                        help="what a final assistant message with continue_final_message does")
    args = parser.parse_args(argv)
    Handler.api_key = args.api_key
    Handler.ignore_n = args.ignore_n
    Handler.split_digits = args.split_digits
    Handler.prefill = args.prefill
    serve(Handler, args.host, args.port)


def serve(handler: type, host: str, port: int) -> None:
    """Serve `handler` until interrupted, printing `PORT <n>` first (how the tests learn a free port)."""
    server = ThreadingHTTPServer((host, port), handler)
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
