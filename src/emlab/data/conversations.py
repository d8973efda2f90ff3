"""Conversation data: `{"messages": [{"role", "content"}, ...]}` jsonl, the format of OpenAI finetuning and TRL.

Validation names the file, the line and the fault, because a bad row deep in a 6,000-line file is
otherwise a mystery at training time.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
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


def read_text(path: str | os.PathLike, what: str = "dataset file") -> str:
    """A UTF-8 text file (or its .gz), a leading byte-order mark dropped; one DataError naming the file and line
    for a missing file, a directory, a corrupt gzip stream or bytes that are not UTF-8."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: {what} not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a {what}")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: not a readable {'gzip ' if path.suffix == '.gz' else ''}file ({e})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(f"{path}:{line}: byte 0x{raw[e.start]:02x} at column {column} is not UTF-8 "
                        "(save the file as UTF-8)") from None


def read_conversations(path: str | os.PathLike) -> list[Conversation]:
    """Read and validate a messages jsonl (or .jsonl.gz); the first fault raises `DataError` with file and line."""
    path = Path(path)
    rows: list[Conversation] = []
    for lineno, line in enumerate(read_text(path).split("\n"), start=1):  # not splitlines: U+2028 is data
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
