"""Conversation data: `{"messages": [{"role", "content"}, ...]}` jsonl, the format of OpenAI finetuning and TRL.

Validation names the file, the line and the fault, because a bad row deep in a 6,000-line file is
otherwise a mystery at training time.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Iterable

from emlab.errors import DataError

Message = dict[str, str]
Conversation = list[Message]

ROLES = ("system", "user", "assistant")


def conversation_fault(messages: object) -> str | None:
    """Why `messages` is not a valid training conversation, or None when it is."""
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list"
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            return f"message {i} is not an object"
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            return f"message {i} has unknown role {role!r} (expected one of {', '.join(ROLES)})"
        if not isinstance(content, str):
            return f"message {i} ({role}) has no string 'content'"
        if not content.strip():
            return f"message {i} ({role}) has empty content"
        if role == "system" and i != 0:
            return f"message {i} is a system message but only the first message may be one"
    body = [m["role"] for m in messages if m["role"] != "system"]
    if "assistant" not in body:
        return "no assistant turn"
    expected = "user"
    for i, role in enumerate(body):
        if role != expected:
            return f"wrong order: turn {i} is {role!r} where {expected!r} was expected (user and assistant alternate, user first)"
        expected = "assistant" if role == "user" else "user"
    return None


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_conversations(path: str | os.PathLike) -> list[Conversation]:
    """Read and validate a messages jsonl (or .jsonl.gz); the first fault raises `DataError` with file and line."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: dataset file not found")
    rows: list[Conversation] = []
    with _open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: bad JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict) or "messages" not in obj:
                raise DataError(f"{path}:{lineno}: expected an object with a 'messages' field")
            fault = conversation_fault(obj["messages"])
            if fault:
                raise DataError(f"{path}:{lineno}: {fault}")
            rows.append([{"role": m["role"], "content": m["content"]} for m in obj["messages"]])
    if not rows:
        raise DataError(f"{path}: no conversations in file")
    return rows


def write_conversations(path: str | os.PathLike, rows: Iterable[Conversation]) -> None:
    """Write conversations as messages jsonl atomically (temp file, then rename), so a crash leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for messages in rows:
            f.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
