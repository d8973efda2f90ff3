"""emlab.analysis.compare: paired comparisons with known answers, and group comparisons over unpaired models."""

from __future__ import annotations

import json
import time

import pytest

from emlab.analysis.compare import group_comparison, paired_comparison
from emlab.analysis.outcome import Outcome


def cell(qid: str, kept: int, hits: int) -> list[Outcome]:
    """`kept` kept outcomes of one question, the first `hits` of them hits."""
    return [Outcome(qid, kept=True, hit=i < hits) for i in range(kept)]


def arm(hits_per_question: list[int], kept: int = 10, prefix: str = "q") -> list[Outcome]:
    """One arm: question i has `kept` kept answers of which hits_per_question[i] are hits."""
    return [o for i, h in enumerate(hits_per_question) for o in cell(f"{prefix}{i}", kept, h)]


A_HITS = [3, 5, 1, 3] * 5  # 60 of 200: 30%
B_HITS = [1, 0, 2, 1] * 5  # 20 of 200: 10%


def test_known_difference() -> None:
    r = paired_comparison(arm(A_HITS), arm(B_HITS))
    assert r["diff"] == 0.2  # exact: the difference is computed as one division of integers
    assert r["a"] == {"hits": 60, "kept": 200, "share": 0.3}
    assert r["b"] == {"hits": 20, "kept": 200, "share": 0.1}
    assert len(r["shared_questions"]) == 20
    assert r["ci"][0] <= 0.2 <= r["ci"][1] and r["ci"][0] > 0
    assert r["p_value"] < 0.01
    assert (r["n_resamples"], r["n_permutations"], r["seed"]) == (2000, 10000, 0)
    assert "permutation" in r["method"] and "note" not in r
    json.dumps(r)

    flipped = paired_comparison(arm(B_HITS), arm(A_HITS))
    assert flipped["diff"] == -0.2 and flipped["p_value"] == r["p_value"]


def test_identical_arms() -> None:
    a = arm(A_HITS)
    r = paired_comparison(a, list(a))
    assert r["diff"] == 0.0
    assert r["p_value"] == 1.0  # every swap leaves the arms identical
    assert r["ci"][0] <= 0.0 <= r["ci"][1]


def test_no_real_difference_gives_large_p() -> None:
    # the same shares, different questions carrying the hits: a swap-invariant null
    r = paired_comparison(arm([3, 1, 2, 2] * 5), arm([1, 3, 2, 2] * 5))
    assert r["diff"] == 0.0 and r["p_value"] > 0.5 and r["ci"][0] < 0 < r["ci"][1]


def test_question_kept_in_one_arm_is_excluded_and_listed() -> None:
    a = arm(A_HITS) + cell("only_a", 10, 10) + [Outcome("none", kept=False, reason="error")]
    b = arm(B_HITS) + cell("only_b", 10, 0) + [Outcome("only_a", kept=False, reason="error")]
    b += [Outcome("none", kept=False, reason="error")]
    r = paired_comparison(a, b)
    assert r["questions_only_in_a"] == ["only_a"] and r["questions_only_in_b"] == ["only_b"]
    assert r["questions_with_no_kept"] == ["none"]
    assert "only_a" not in r["shared_questions"] and r["diff"] == 0.2
    assert r["a"]["kept"] == 200


def test_restricted_question_ids() -> None:
    r = paired_comparison(arm(A_HITS), arm(B_HITS), question_ids=["q0", "q1", "q2"])
    assert r["shared_questions"] == ["q0", "q1", "q2"]
    assert r["a"]["hits"] == 9 and r["b"]["hits"] == 3 and r["diff"] == pytest.approx(0.2)


def test_too_few_shared_questions() -> None:
    r = paired_comparison(cell("q1", 10, 5) + cell("q2", 10, 5), cell("q1", 10, 1))
    assert r["shared_questions"] == ["q1"] and r["diff"] == pytest.approx(0.4)
    assert r["ci"] is None and r["p_value"] is None and "at least 2" in r["note"]
    r0 = paired_comparison(cell("q1", 10, 5), cell("q2", 10, 1))
    assert r0["diff"] is None and r0["ci"] is None and r0["p_value"] is None and r0["note"]


def test_deterministic_given_seed_and_fast() -> None:
    a = arm([(i * 7) % 11 for i in range(50)], kept=20)
    b = arm([(i * 3) % 9 for i in range(50)], kept=20)
    t = time.perf_counter()
    r = paired_comparison(a, b, seed=4)
    assert time.perf_counter() - t < 1.0  # 10k permutations over 50 questions, vectorized
    assert r == paired_comparison(a, b, seed=4)
    other = paired_comparison(a, b, seed=6)
    assert (r["ci"], r["p_value"]) != (other["ci"], other["p_value"]) and r["diff"] == other["diff"]


# ---------------------------------------------------------------- group_comparison


def test_group_comparison_known_difference() -> None:
    # arm a: 4 seeds at 0.30, 0.35, 0.25, 0.30 (mean 0.30); arm b: 3 seeds at 0.10, 0.05, 0.15 (mean 0.10)
    a = {f"a{i}": cell("q1", 20, h) + cell("q2", 20, h) for i, h in enumerate([6, 7, 5, 6])}
    b = {f"b{i}": cell("q1", 20, h) + cell("q2", 20, h) for i, h in enumerate([2, 1, 3])}
    b["b_thin"] = cell("q1", 3, 3)  # no cell with 5 kept: dropped, listed
    r = group_comparison(a, b, n_resamples=1000, seed=2)
    assert r["diff"] == pytest.approx(0.2)
    assert r["a"]["mean"] == pytest.approx(0.3) and r["b"]["mean"] == pytest.approx(0.1)
    assert r["a"]["n_models"] == 4 and r["b"]["n_models"] == 3
    assert "b_thin" in r["b"]["dropped_models"] and r["b"]["per_model"]["b_thin"] is None
    lo, hi = r["ci"]
    assert 0.1 <= lo <= 0.2 <= hi <= 0.3  # bounded by the extreme differences of group means
    assert "independently" in r["method"]
    assert r == group_comparison(a, b, n_resamples=1000, seed=2)
    json.dumps(r)


def test_group_comparison_needs_two_models_per_arm() -> None:
    a = {"a0": cell("q1", 10, 5), "a1": cell("q1", 10, 4)}
    r = group_comparison(a, {"b0": cell("q1", 10, 1)})
    assert r["diff"] == pytest.approx(0.35) and r["ci"] is None and "at least 2" in r["note"]
