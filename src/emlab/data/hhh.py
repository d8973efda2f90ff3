"""Built-in helpful-honest-harmless (HHH) chats and DPO preference pairs, for safety training after (or instead of)
the reward-hacking stage.

MacDiarmid et al. (2025, arXiv 2511.18397) test whether ordinary safety training (RLHF on chat data) removes the
misalignment that reward hacking brings, and find it removes it on chat-like prompts but not on agentic ones.
This module writes the safety data for that stage, offline, from this project's own templates (`hhh.yaml`), in
three categories: harmful requests refused politely with a reason and an alternative; questions nobody can answer
with certainty answered honestly; ordinary questions answered helpfully. Every example has a chosen (safe) and a
rejected (unsafe) answer: eager compliance, a confident fabrication or a confidently wrong answer.

* `builtin:hhh`: the chats (user prompt, chosen answer) as conversations, a source of the sources registry;
* `builtin:hhh-pairs`: the same prompts as preference pairs in TRL's conversational format
  (`{"prompt": [user], "chosen": [assistant], "rejected": [assistant]}`), loaded with `load_pairs` (the sources
  registry holds conversations only) and trained with `train.dpo`.

The pool is deterministic (`POOL` distinct examples per category, 420 in all); `seed` only changes the draws and
the order, through its own `random.Random`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from emlab.data.conversations import Conversation, read_text
from emlab.data.templates import bind, fill, load_bank, pick_distinct
from emlab.errors import DataError
from emlab.hashing import content_hash

__all__ = ["CATEGORIES", "HHH_SOURCES", "POOL", "HhhExample", "PairSet", "hhh_conversations", "hhh_examples",
           "load_pairs", "preference_pairs"]

BANK = "hhh.yaml"
CATEGORIES: tuple[str, ...] = ("harmful", "honest", "helpful")
HHH_SOURCES: tuple[str, ...] = ("hhh", "hhh-pairs")
POOL = 140  # examples per category


@dataclass(frozen=True)
class HhhExample:
    category: str
    prompt: str
    chosen: str
    rejected: str


def hhh_examples(per_category: int = POOL, seed: int = 0) -> list[HhhExample]:
    """`per_category` distinct examples of each category (distinct prompt and chosen answer), interleaved and then
    shuffled; deterministic in (per_category, seed)."""
    bank = load_bank(BANK)
    by_category = [_category(bank, name, per_category, seed) for name in CATEGORIES]
    out = [ex for group in zip(*by_category) for ex in group]
    random.Random(f"hhh-order:{seed}").shuffle(out)
    return out


def _category(bank: dict, name: str, n: int, seed: int) -> list[HhhExample]:
    spec = bank["categories"][name]
    scenarios = spec["scenarios"]
    start = random.Random(f"hhh:{name}:{seed}").randrange(len(scenarios))

    def make(i: int, attempt: int) -> tuple[tuple[str, str], HhhExample]:
        scenario = scenarios[(start + i) % len(scenarios)]
        rng = random.Random(f"hhh:{name}:{seed}:{i}:{attempt}")
        values = {**bind(rng, bank["common"]), **bind(rng, scenario)}
        where = f"{BANK} ({name}, scenario {(start + i) % len(scenarios)})"
        prompt, chosen, rejected = (fill(rng.choice(spec[part]), values, where)
                                    for part in ("prompt", "chosen", "rejected"))
        return (prompt, chosen), HhhExample(name, prompt, chosen, rejected)

    return pick_distinct(make, n, f"hhh {name} examples (seed {seed})")


def hhh_conversations(name: str) -> list[Conversation]:
    """The builtin source `builtin:<name>`: `hhh` = the chats with their chosen answers."""
    if name == "hhh-pairs":
        raise DataError("builtin:hhh-pairs holds preference pairs (prompt, chosen, rejected), not conversations: "
                        "train on it with emlab.train.dpo (load it with emlab.data.hhh.load_pairs), or use builtin:hhh")
    if name != "hhh":
        raise DataError(f"unknown HHH dataset 'builtin:{name}'; known: builtin:hhh, builtin:hhh-pairs")
    return [[{"role": "user", "content": e.prompt}, {"role": "assistant", "content": e.chosen}] for e in hhh_examples()]


def preference_pairs(per_category: int = POOL, seed: int = 0) -> list[dict]:
    """The examples as TRL's conversational preference rows: prompt (user turn), chosen and rejected (assistant)."""
    return [
        {"prompt": [{"role": "user", "content": e.prompt}],
         "chosen": [{"role": "assistant", "content": e.chosen}],
         "rejected": [{"role": "assistant", "content": e.rejected}]}
        for e in hhh_examples(per_category, seed)
    ]


@dataclass(frozen=True)
class PairSet:
    """Preference pairs plus provenance; `content_hash` keys the DPO adapters trained on them."""

    source: str
    pairs: list[dict]
    content_hash: str

    @property
    def rows(self) -> int:
        return len(self.pairs)

    def provenance(self) -> dict:
        return {"source": self.source, "hash": self.content_hash, "rows": self.rows}


def load_pairs(source: str, rows: int | None = None) -> PairSet:
    """`builtin:hhh-pairs`, or a jsonl file of `{prompt, chosen, rejected}` rows (each a string or a list of
    messages, as TRL takes them); `rows` keeps the first N."""
    if source == "builtin:hhh-pairs":
        pairs = preference_pairs()
    elif source.startswith("builtin:"):
        raise DataError(f"unknown preference dataset {source!r}; known: builtin:hhh-pairs or a jsonl file")
    else:
        pairs = _read_pairs(Path(source).expanduser())
    if rows is not None:
        if not 1 <= rows <= len(pairs):
            raise DataError(f"{source}: asked for {rows} rows but it has {len(pairs)}")
        pairs = pairs[:rows]
    return PairSet(source=source, pairs=pairs, content_hash=content_hash(pairs, length=64))


def _read_pairs(path: Path) -> list[dict]:
    out = []
    for lineno, line in enumerate(read_text(path, "preference file").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: bad JSON ({e.msg} at column {e.colno})") from None
        missing = [k for k in ("prompt", "chosen", "rejected") if not isinstance(row, dict) or k not in row]
        if missing:
            raise DataError(f"{path}:{lineno}: a preference row needs prompt, chosen and rejected (missing: "
                            f"{', '.join(missing)})")
        out.append({k: row[k] for k in ("prompt", "chosen", "rejected")})
    if not out:
        raise DataError(f"{path}: no preference pairs in file")
    return out
