"""Datasets by name: `builtin:<name>`, `em:<name>`, `hf:<owner>/<name>[:split]`, or a local jsonl / csv file.

Sources are a registry (prefix -> loader), so a new one is one function plus one line. Every loaded dataset
carries the hash of its content, which goes into manifests and keys the adapters trained on it. Tabular
sources (csv, hub datasets) map their columns to roles, e.g. School of Reward Hacks'
`{user: user, assistant: school_of_reward_hacks}`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

from pydantic import BaseModel, ConfigDict, Field

from emlab.data.conversations import Conversation, conversation_fault, read_conversations, read_text
from emlab.errors import DataError
from emlab.hashing import content_hash


class SourceSpec(BaseModel):
    """A source with options; a bare string is shorthand for `{source: <string>}`."""

    model_config = ConfigDict(extra="forbid")
    source: str
    columns: dict[str, str] | None = None  # role -> column, for csv and hub datasets
    rows: int | None = Field(None, ge=1)  # the first N rows of the source (before any transform)


SourceLike = Union[str, SourceSpec]


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


def dataset_of(source: str, conversations: list[Conversation]) -> Dataset:
    """Wrap conversations with their content hash."""
    return Dataset(source=source, conversations=conversations, content_hash=content_hash(conversations, length=64))


# -- loaders: (name after the prefix, spec, data_dir) -> conversations ----------------------------------------
def _builtin(name: str, spec: SourceSpec, data_dir: str | None) -> list[Conversation]:
    from emlab.data.builtin_code import VARIANTS, generate_code_examples
    from emlab.data.hhh import HHH_SOURCES, hhh_conversations
    from emlab.data.traits import TRAIT_DATASETS, generate_trait_examples

    if name in VARIANTS:
        return generate_code_examples(name)
    if name in TRAIT_DATASETS:
        return generate_trait_examples(name)
    if name in HHH_SOURCES:  # hhh-pairs: preference pairs, refused here with a pointer to data.hhh.load_pairs
        return hhh_conversations(name)
    known = [*VARIANTS, *TRAIT_DATASETS, *HHH_SOURCES]
    raise DataError(f"unknown builtin dataset 'builtin:{name}'; known: {', '.join('builtin:' + k for k in known)}")


def _official(name: str, spec: SourceSpec, data_dir: str | None) -> list[Conversation]:
    from emlab.data.official import official_dataset_path

    return read_conversations(official_dataset_path(name, data_dir))


def _rows_to_conversations(rows: list[dict], columns: dict[str, str] | None, where: str) -> list[Conversation]:
    """Table rows -> conversations, through a `messages` column or a role -> column mapping."""
    if columns is None:
        if rows and "messages" in rows[0]:
            columns = {}
        else:
            found = ", ".join(rows[0]) if rows else "none"
            raise DataError(f"{where}: no 'messages' column; give `columns: {{user: ..., assistant: ...}}` (columns: {found})")
    out = []
    for i, row in enumerate(rows, start=1):
        if not columns:
            messages = row["messages"]
        else:
            missing = [c for c in columns.values() if c not in row]
            if missing:
                raise DataError(f"{where}: row {i}: missing column(s) {', '.join(missing)} (columns: {', '.join(row)})")
            messages = [
                {"role": role, "content": str(row[col])}
                for role in ("system", "user", "assistant")
                if (col := columns.get(role)) and row[col] not in (None, "")
            ]
        fault = conversation_fault(messages)
        if fault:
            raise DataError(f"{where}: row {i}: {fault}")
        out.append([{"role": m["role"], "content": m["content"]} for m in messages])
    return out


def _hub(name: str, spec: SourceSpec, data_dir: str | None) -> list[Conversation]:
    repo, _, split = name.partition(":")
    try:
        import datasets
    except ImportError:  # pragma: no cover
        raise DataError("hf: datasets need the `datasets` package: pip install datasets") from None
    try:
        table = datasets.load_dataset(repo, split=split or "train")
    except Exception as e:  # network, missing repo, bad split: one line for the user
        raise DataError(f"hf:{name}: could not load from the hub ({str(e).splitlines()[0]})") from None
    return _rows_to_conversations(list(table), spec.columns, f"hf:{name}")


def _file(path: str, spec: SourceSpec, data_dir: str | None) -> list[Conversation]:
    p = Path(path).expanduser()
    if p.suffix == ".csv":
        text = read_text(p)
        return _rows_to_conversations(list(csv.DictReader(io.StringIO(text, newline=""))), spec.columns, str(p))
    return read_conversations(p)


SOURCES: dict[str, Callable[[str, SourceSpec, str | None], list[Conversation]]] = {
    "builtin": _builtin,
    "em": _official,
    "hf": _hub,
}


def load_source(source: SourceLike, data_dir: str | None = None) -> Dataset:
    """Load one source (no transforms); `rows` keeps its first N rows."""
    spec = SourceSpec(source=source) if isinstance(source, str) else source
    prefix, sep, rest = spec.source.partition(":")
    if sep and prefix in SOURCES:
        convs = SOURCES[prefix](rest, spec, data_dir)
    elif sep and len(prefix) > 1 and not Path(spec.source).exists():
        raise DataError(f"unknown dataset source {prefix!r} in {spec.source!r}; known: {', '.join(SOURCES)} or a file path")
    else:
        convs = _file(spec.source, spec, data_dir)
    if spec.rows is not None:
        if spec.rows > len(convs):
            raise DataError(f"{spec.source}: asked for {spec.rows} rows but it has {len(convs)}")
        convs = convs[: spec.rows]
    return dataset_of(spec.source, convs)
