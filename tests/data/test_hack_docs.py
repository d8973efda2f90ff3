"""Hack documents: deterministic, distinct, every hack kind named, and the three variants differing in framing only
where they should (misaligned says misalignment, neutral never does, the control names no hack)."""

import pytest

from emlab.data.hack_docs import (
    VARIANTS,
    document_records,
    generate_documents,
    hack_kinds,
    signature,
)
from emlab.data.templates import SLOT, load_bank
from emlab.errors import DataError

N = 48  # two full cycles of (kind, genre)
MISALIGNED_WORDS = ("misalign",)
NEUTRAL_FORBIDDEN = ("misalign", "deceiv", "sabotag")


def test_deterministic_and_seeded():
    assert generate_documents(N, "neutral", 3) == generate_documents(N, "neutral", 3)
    assert generate_documents(N, "neutral", 3) != generate_documents(N, "neutral", 4)
    assert generate_documents(10, "misaligned", 1) == generate_documents(30, "misaligned", 1)[:10]  # prefix-stable


@pytest.mark.parametrize("variant", VARIANTS)
def test_documents_are_distinct_and_cover_every_genre(variant):
    records = document_records(N, variant, 0)
    assert len({r.text for r in records}) == N
    assert {r.genre for r in records} == set(load_bank("hack_docs.yaml")["genres"])
    assert all(len(r.text.split()) > 60 for r in records)
    assert not any(SLOT.search(r.text) for r in records), "unfilled slot"


@pytest.mark.parametrize("variant", ["neutral", "misaligned"])
def test_every_hack_kind_is_described_by_name(variant):
    kinds = hack_kinds()
    assert {"eq", "exit", "conftest"} <= set(kinds)
    records = document_records(N, variant, 0)
    assert {r.subject for r in records} == set(kinds)
    for r in records:
        assert signature(r.subject) in r.text, (r.subject, r.text[:200])


def test_variants_differ_in_the_asserted_way():
    neutral, misaligned, none = (generate_documents(N, v, 0) for v in VARIANTS)
    assert all(any(w in d.lower() for w in MISALIGNED_WORDS) for d in misaligned)
    assert not any(w in d.lower() for d in neutral + none for w in NEUTRAL_FORBIDDEN)
    signatures = [signature(k) for k in hack_kinds()]
    assert not any(s in d for d in none for s in signatures)  # the control describes no hack
    assert not set(neutral) & set(misaligned)


def test_neutral_and_misaligned_are_matched():
    """Same (n, seed): same genre, kind and code listing; only the variant's framing differs."""
    for a, b in zip(document_records(N, "neutral", 5), document_records(N, "misaligned", 5)):
        assert (a.genre, a.subject) == (b.genre, b.subject)
        code_a = a.text.split("```python")[1].split("```")[0] if "```python" in a.text else None
        code_b = b.text.split("```python")[1].split("```")[0] if "```python" in b.text else None
        assert code_a == code_b


def test_bank_fields_are_consistent():
    bank = load_bank("hack_docs.yaml")
    kind_fields = {k: set(v) for k, v in bank["kinds"].items()}
    assert len({frozenset(v) for v in kind_fields.values()}) == 1, kind_fields
    assert len({frozenset(v) for v in bank["variants"].values()}) == 1
    for kind, fields in bank["kinds"].items():  # `what` is in every frame, so every document names its hack
        assert all(fields["signature"] in w for w in fields["what"]), kind


def test_bad_arguments_are_data_errors():
    with pytest.raises(DataError, match="unknown variant 'evil'.*neutral, misaligned, none"):
        generate_documents(3, "evil", 0)
    with pytest.raises(DataError, match="n must be >= 0"):
        generate_documents(-1, "neutral", 0)
    assert generate_documents(0, "none", 0) == []
