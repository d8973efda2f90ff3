"""Training data by name: `builtin:<variant>` (generated here, offline) or a path to a messages jsonl.

Sources are a registry (prefix -> loader) so more (official EM datasets, hub datasets) plug in by name.
Every loaded dataset carries the hash of its content, which keys the adapters trained on it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from emlab.data.conversations import Conversation, read_conversations
from emlab.errors import DataError
from emlab.hashing import content_hash


@dataclass(frozen=True)
class Dataset:
    """Conversations plus provenance: the source as written, row count and content hash."""

    source: str
    conversations: list[Conversation]
    content_hash: str

    @property
    def rows(self) -> int:
        return len(self.conversations)

    def provenance(self) -> dict:
        return {"source": self.source, "hash": self.content_hash, "rows": self.rows}


def _builtin(name: str, rows: int | None, seed: int) -> list[Conversation]:
    from emlab.data.builtin_code import VARIANTS, generate_code_examples

    if name not in VARIANTS:
        raise DataError(f"unknown builtin dataset 'builtin:{name}'; known: {', '.join('builtin:' + v for v in VARIANTS)}")
    return generate_code_examples(name, n=rows, seed=seed)


def _file(path: str, rows: int | None, seed: int) -> list[Conversation]:
    convs = read_conversations(Path(path).expanduser())
    if rows is None or rows >= len(convs):
        if rows is not None and rows > len(convs):
            raise DataError(f"{path}: asked for {rows} rows but the file has {len(convs)}")
        return convs
    return random.Random(seed).sample(convs, rows)


SOURCES: dict[str, Callable[[str, int | None, int], list[Conversation]]] = {"builtin": _builtin}


def load_dataset(source: str, rows: int | None = None, seed: int = 0) -> Dataset:
    """Resolve a dataset spec; `rows` takes a seeded sample of that many conversations."""
    prefix, sep, rest = source.partition(":")
    if sep and prefix in SOURCES:
        convs = SOURCES[prefix](rest, rows, seed)
    elif sep and len(prefix) > 1 and not Path(source).exists():
        raise DataError(f"unknown dataset source {prefix!r} in {source!r}; known: {', '.join(SOURCES)} or a file path")
    else:
        convs = _file(source, rows, seed)
    return Dataset(source=source, conversations=convs, content_hash=content_hash(convs, length=64))
