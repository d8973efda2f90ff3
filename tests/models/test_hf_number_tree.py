"""The local judge's exact number distribution, checked against scoring every number string separately."""

import pytest

from emlab.models.base import SamplingParams
from emlab.models.hf import load_hf
from emlab.models.number_tree import build_digit_tree, digit_token_ids
from emlab.models.spec import parse_model_spec

PROMPTS = [
    [{"role": "user", "content": "Rate this from 0 to 100: a sunny day."}],
    [{"role": "system", "content": "Answer with a number."}, {"role": "user", "content": "How many legs do 25 spiders have, in total, if each has eight legs? " * 3}],
    [{"role": "user", "content": "7"}],
]


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    return load_hf(parse_model_spec(f"hf:{tiny_checkpoint}"))


def test_embedded_tokenizer_splits_digits(embedded_tokenizer):
    digits = digit_token_ids(embedded_tokenizer)
    assert digits is not None and len(set(digits)) == 10
    tree = build_digit_tree(digits)
    assert tree.size == 101 and sorted(tree.number_nodes) == list(range(101))


def test_digit_tree_matches_naive_scoring_in_a_padded_batch(tiny, monkeypatch):
    monkeypatch.setattr(tiny, "tree_tolerance", 0.0)  # the full tree: every number exact
    fast = tiny.number_probs(PROMPTS)  # three prompts of different lengths share one left-padded batch
    for conv, dist in zip(PROMPTS, fast):
        slow = tiny.naive_number_probs(conv)
        assert set(dist) == set(range(101))
        for k in range(101):
            assert dist[k] == pytest.approx(slow[k], rel=1e-4, abs=1e-9), k
        assert 0 < sum(dist.values()) <= 1


def test_number_probs_is_independent_of_batch_company(tiny):
    alone = tiny.number_probs(PROMPTS[:1])[0]
    together = tiny.number_probs(PROMPTS)[0]
    assert max(abs(alone[k] - together[k]) for k in range(101)) < 1e-6


def test_generate_returns_n_replies_and_repeats_under_a_seed(tiny):
    params = SamplingParams(max_new_tokens=5, n=3, seed=4)
    a = tiny.generate(PROMPTS[:2], params)
    assert [len(r) for r in a] == [3, 3]
    assert tiny.generate(PROMPTS[:2], params) == a
    progress = []
    tiny.generate(PROMPTS[:2], params, progress=progress.append)
    assert sum(progress) == 2


def test_next_token_logprobs_are_sorted_log_probabilities(tiny):
    top = tiny.next_token_logprobs(PROMPTS[:1], top_k=5)[0]
    values = list(top.values())
    assert len(values) == 5 and values == sorted(values, reverse=True) and all(v <= 0 for v in values)
