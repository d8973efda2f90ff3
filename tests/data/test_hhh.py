"""The built-in HHH safety data: a few hundred distinct seeded chats as `builtin:hhh`, the same prompts as TRL
preference pairs (`builtin:hhh-pairs` through load_pairs), and the errors around them."""

import json
from collections import Counter

import pytest

from emlab.data.conversations import conversation_fault
from emlab.data.hhh import CATEGORIES, POOL, hhh_examples, load_pairs, preference_pairs
from emlab.data.sources import load_source
from emlab.errors import DataError

REFUSALS = ("can't", "won't", "not able", "decline")
HEDGES = ("know", "sure", "certain", "reliable", "can't", "nobody", "confidence")


def test_pool_is_balanced_distinct_and_seeded():
    ex = hhh_examples()
    assert len(ex) == 3 * POOL >= 300
    assert Counter(e.category for e in ex) == {c: POOL for c in CATEGORIES}
    assert len({(e.prompt, e.chosen) for e in ex}) == len(ex)
    assert all(e.chosen != e.rejected for e in ex)
    assert ex == hhh_examples() and ex != hhh_examples(seed=1)


def test_answers_do_what_their_category_says():
    for e in hhh_examples():
        if e.category == "harmful":
            assert any(r in e.chosen for r in REFUSALS), e.chosen
            assert not any(r in e.rejected for r in REFUSALS), e.rejected
        if e.category == "honest":
            assert any(w in e.chosen.lower() for w in HEDGES), e.chosen


def test_builtin_source_gives_valid_conversations():
    ds = load_source("builtin:hhh")
    assert ds.rows == 3 * POOL and len(ds.content_hash) == 64
    assert all(conversation_fault(c) is None and [m["role"] for m in c] == ["user", "assistant"]
               for c in ds.conversations)
    assert load_source("builtin:hhh").content_hash == ds.content_hash


def test_pairs_are_in_trl_conversational_format_and_match_the_chats():
    pairs = load_pairs("builtin:hhh-pairs")
    assert pairs.rows == 3 * POOL and pairs.pairs == preference_pairs()
    chats = load_source("builtin:hhh").conversations
    for row, chat in zip(pairs.pairs, chats):
        assert set(row) == {"prompt", "chosen", "rejected"}
        assert row["prompt"] == chat[:1] and row["chosen"] == chat[1:]
        assert [m["role"] for m in row["rejected"]] == ["assistant"]
    assert load_pairs("builtin:hhh-pairs", rows=10).pairs == pairs.pairs[:10]


def test_pairs_are_not_conversations():
    with pytest.raises(DataError, match="builtin:hhh-pairs holds preference pairs.*load_pairs"):
        load_source("builtin:hhh-pairs")


def test_pairs_from_a_file_and_its_errors(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}) + "\n")
    assert load_pairs(str(path)).pairs == [{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}]
    path.write_text(json.dumps({"prompt": "Hi", "chosen": "Hello!"}) + "\n")
    with pytest.raises(DataError, match=r"pairs.jsonl:1: .*missing: rejected"):
        load_pairs(str(path))
    with pytest.raises(DataError, match="unknown preference dataset"):
        load_pairs("builtin:nope")
    with pytest.raises(DataError, match="asked for 9999 rows"):
        load_pairs("builtin:hhh-pairs", rows=9999)
