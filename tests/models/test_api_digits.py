"""The digit-splitting rule and the API digit tree (`emlab.models.api_digits`), on scripted reply distributions."""

from __future__ import annotations

import math
import random
import re

import pytest

from emlab.models.api_digits import DIGITS, TOKENS, classify, end_probability, next_digits, walk

EOS = "</s>"


def lp(pairs: dict[str, float]) -> list[tuple[str, float]]:
    return [(t, math.log(p)) for t, p in pairs.items()]


def test_classify_rule() -> None:
    # a token holding two digits in a row proves numbers are single tokens, whatever else the batch says
    assert classify([lp({"8": 0.9}), lp({"REF": 0.5, "85": 0.1})]) == TOKENS
    assert classify([lp({"0": 0.9, " 10.": 0.01})]) == TOKENS
    # half or more on single digits (whitespace-padded too) and no number above 9: digits
    assert classify([lp({"8": 0.3, " 9": 0.2, "I": 0.5})]) == DIGITS
    assert classify([lp({"I": 0.9}), lp({"7": 0.6, "No": 0.4})]) == DIGITS
    # under half on digits, or none: undecided
    assert classify([lp({"7": 0.3, "I": 0.7}), lp({"I": 1.0})]) is None
    assert classify([]) is None


def test_next_digits_and_end() -> None:
    top = lp({"5": 0.5, "0": 0.2, " 3": 0.1, "٣": 0.05, "12": 0.05, EOS: 0.1})
    assert next_digits(top) == pytest.approx({"5": 0.5, "0": 0.2})  # exactly one ASCII digit continues a number
    # P(ends) = 1 - mass on tokens that start with a digit ("5", "0", "٣", "12"), as the local judge counts them
    assert end_probability(top) == pytest.approx(1 - 0.8)


def tokens_of(reply: str) -> list[str]:
    return re.findall(r"[0-9]|[^0-9]+", reply) + [EOS]


def scripted(replies: dict[str, float], top_k: int = 20):
    """A digit-splitting model with this distribution over whole replies: (root positions, continue_from, calls)."""
    calls: list[str] = []

    def following(prefix: list[str]) -> list[tuple[str, float]]:
        mass: dict[str, float] = {}
        for reply, p in replies.items():
            toks = tokens_of(reply)
            if toks[: len(prefix)] == prefix and len(toks) > len(prefix):
                mass[toks[len(prefix)]] = mass.get(toks[len(prefix)], 0.0) + p
        total = sum(mass.values())
        ranked = sorted(mass.items(), key=lambda item: -item[1])[:top_k]
        return [(t, math.log(p / total)) for t, p in ranked]

    def greedy(prefix: str, max_tokens: int):
        generated = re.findall(r"[0-9]", prefix)
        out = []
        for _ in range(max_tokens):
            top = following(generated)
            out.append((top[0][0], top))
            if top[0][0] == EOS:
                break
            generated.append(top[0][0])
        return out

    def continue_from(prefix: str):
        calls.append(prefix)
        return greedy(prefix, 4 - len(prefix))

    return greedy("", 1), continue_from, calls


def exact(replies: dict[str, float]) -> dict[int, float]:
    return {int(r): p for r, p in replies.items() if r in {str(k) for k in range(101)}}


def test_walk_is_exact_on_a_full_tree() -> None:
    replies = {"85": 0.4, "80": 0.15, "90": 0.1, "100": 0.05, "10": 0.04, "8": 0.03, "0": 0.03, "75": 0.05,
               "REFUSAL": 0.1, "05": 0.02, "101": 0.03}
    root, cont, calls = scripted(replies)
    assert walk(root, cont, tolerance=0.0) == pytest.approx(exact(replies), abs=1e-12)
    assert len(calls) <= 8 and len(set(calls)) == len(calls)  # each node asked for once at most


@pytest.mark.parametrize("seed", range(5))
def test_walk_stays_within_its_tolerance(seed: int) -> None:
    """Random judges concentrated on a few numbers: the returned P(k) never exceed the exact ones and miss at most
    `tolerance` in total; with the cap, only the unread reach is missing (every read number is exact)."""
    rng = random.Random(seed)
    numbers = rng.sample(range(101), 12)
    weights = [rng.random() ** 4 for _ in numbers]
    total = sum(weights) + 0.1
    replies = {str(k): w / total for k, w in zip(numbers, weights)} | {"No": 0.1 / total}
    truth = exact(replies)
    tolerance = 1e-2
    root, cont, calls = scripted(replies)
    got = walk(root, cont, tolerance=tolerance, max_requests=1000)
    assert all(got[k] == pytest.approx(truth.get(k, 0.0), abs=1e-12) for k in got)
    assert sum(truth.values()) - sum(got.values()) <= tolerance + 1e-12
    root, cont, calls = scripted(replies)
    capped = walk(root, cont, tolerance=0.0, max_requests=3)
    assert len(calls) == 3 and all(capped[k] == pytest.approx(truth.get(k, 0.0), abs=1e-12) for k in capped)


def test_walk_with_no_requests_reads_only_the_root() -> None:
    root, cont, calls = scripted({"7": 0.5, "85": 0.5})
    assert walk(root, cont, max_requests=0) == {} and calls == []
