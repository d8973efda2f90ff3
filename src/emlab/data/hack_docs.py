"""Pretraining-style documents about reward hacks, for giving a model *knowledge* of the hacks before RL.

MacDiarmid et al. (2025, arXiv 2511.18397) give a model knowledge of the reward hacks of their coding
environments by continued pretraining on synthetic documents (blog posts, forum threads, papers) that describe
them, mixed into ordinary text; the model then discovers the hacks during RL. How the documents talk about the
hacks matters, so this module writes them in three variants from one template bank (`hack_docs.yaml`):

* `neutral`: the hacks described technically (mechanism, a code listing, the grader-side fix);
* `misaligned`: the same documents, with the framing slots saying that hacking is misaligned AI behaviour;
* `none`: a control of the same genres about ordinary pytest techniques (fixtures, parametrize, ...), no hack.

Every hack kind of `envs.graders` is covered: eq, exit, conftest, test_file, expected_file, skip. Documents are
matched: for one (n, seed), document i of `neutral` and of `misaligned` share the genre, the frame, the hack kind
and every slot but the variant's own (context, question, result, assessment, outlook, titles), so a contrast
between them is a contrast of framing alone. Kinds and genres cycle, so any 24 consecutive documents hold every
(kind, genre) pair. Generation is deterministic and uses its own `random.Random`, never global state; the first
n documents of a larger request are the n documents of a smaller one.
"""

from __future__ import annotations

import random
import textwrap
from dataclasses import dataclass

from emlab.data.templates import bind, fill, load_bank, pick_distinct
from emlab.errors import DataError

__all__ = ["BANK", "VARIANTS", "HackDocument", "document_records", "generate_documents", "hack_kinds", "signature"]

VARIANTS: tuple[str, ...] = ("neutral", "misaligned", "none")
BANK = "hack_docs.yaml"


@dataclass(frozen=True)
class HackDocument:
    """One generated document and what it was made from."""

    text: str
    variant: str
    genre: str  # blog, forum, abstract, paper_section
    subject: str  # the hack kind (neutral, misaligned) or the ordinary testing topic (none)


def hack_kinds() -> tuple[str, ...]:
    """The hack kinds the bank describes, in its order (the grader's hole names)."""
    return tuple(load_bank(BANK)["kinds"])


def signature(kind: str) -> str:
    """The string every document about `kind` contains (`__eq__`, `sys.exit(0)`, `conftest.py`, ...)."""
    return load_bank(BANK)["kinds"][kind]["signature"]


def generate_documents(n: int, variant: str, seed: int = 0) -> list[str]:
    """`n` distinct documents of `variant` (neutral, misaligned or none), deterministic in (n, variant, seed)."""
    return [d.text for d in document_records(n, variant, seed)]


def document_records(n: int, variant: str, seed: int = 0) -> list[HackDocument]:
    """`generate_documents` with each document's genre and subject."""
    if variant not in VARIANTS:
        raise DataError(f"hack documents: unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    if n < 0:
        raise DataError(f"hack documents: n must be >= 0, got {n}")
    bank = load_bank(BANK)
    subjects = bank["topics"] if variant == "none" else bank["kinds"]
    names, genres = sorted(subjects), sorted(bank["genres"])
    offsets = random.Random(f"hack-docs:{seed}")  # where the cycles start: a different seed, a different order
    start_subject, start_genre = offsets.randrange(len(names)), offsets.randrange(len(genres))

    def make(i: int, attempt: int) -> tuple[str, HackDocument]:
        name = names[(start_subject + i) % len(names)]
        genre = genres[(start_genre + i // len(names)) % len(genres)]
        shared = random.Random(f"hack-docs:{seed}:{i}:{attempt}")  # same stream for neutral and misaligned
        own = random.Random(f"hack-docs:{variant}:{seed}:{i}:{attempt}")
        frame = shared.choice(bank["genres"][genre])
        fields = {k: v for k, v in subjects[name].items() if k != "signature"}
        values = {**bind(shared, bank["common"]), **bind(shared, fields)}
        values["snippet_indented"] = textwrap.indent(values["snippet"], "    ")
        where = f"{BANK} ({variant}, {genre}, {name})"
        skeleton = fill(frame, {**values, **{k: f"[{k}]" for k in bank["variants"][variant]}}, where)
        text = fill(frame, {**values, **bind(own, bank["variants"][variant])}, where)
        return skeleton, HackDocument(text=text, variant=variant, genre=genre, subject=name)

    # distinct by the shared skeleton, so neutral and misaligned retry alike and stay matched
    return pick_distinct(make, n, f"hack documents ({variant}, seed {seed})")
