"""Two arms compared: paired on shared questions for one model each, or as groups of models.

Why: "finetune A is more misaligned than finetune B" needs an interval and a test that respect how the
data were drawn. Two arms asked the same questions are paired by question (a hard question is hard for
both), so the bootstrap resamples the same questions for both arms and the permutation test swaps the
arms within a question. Two groups of finetuning seeds are not paired (seed 3 of A has nothing to do with
seed 3 of B), so their difference is bootstrapped by resampling models independently within each arm.

What:

* `paired_comparison(a, b)`: diff of pooled shares over shared questions, a paired question bootstrap
  interval and a two-sided paired permutation p-value; None with a note when there is too little to pair.
* `group_comparison(a_models, b_models)`: diff of the group means of per-model rates (`group_rate`) with
  an independent bootstrap over models in each arm.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from emlab.analysis.groups import check_resampling, group_rate, percentile_interval, question_counts
from emlab.analysis.outcome import Outcome

__all__ = ["paired_comparison", "group_comparison"]

PAIRED_METHOD = (
    "diff = pooled share of a minus pooled share of b over questions with kept answers in both arms; "
    "interval: percentile bootstrap resampling shared questions (the same ones for both arms); "
    "p-value: two-sided paired permutation test swapping the arms within each question with probability 1/2."
)
GROUP_METHOD = (
    "diff = equal-weight mean of per-model rates in a minus that in b; interval: percentile bootstrap "
    "resampling models with replacement independently within each arm (seeds are not paired between arms)."
)


def _share_diff(ah: np.ndarray, ak: np.ndarray, bh: np.ndarray, bk: np.ndarray) -> np.ndarray:
    """ah/ak - bh/bk as one division, so integer counts give the correctly rounded difference (0.3-0.1 is 0.2)."""
    return (ah * bk - bh * ak) / (ak * bk)


def paired_comparison(
    a: Sequence[Outcome],
    b: Sequence[Outcome],
    question_ids: Sequence[str] | None = None,
    n_resamples: int = 2000,
    n_permutations: int = 10000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Arm a minus arm b on shared questions, with a paired bootstrap interval and permutation p-value."""
    check_resampling(n_resamples, confidence, "paired_comparison")
    if n_permutations < 1:
        raise ValueError("paired_comparison: n_permutations must be at least 1")
    if question_ids is None:
        question_ids = list(dict.fromkeys([o.question_id for o in a] + [o.question_id for o in b]))
    ids, ah, ak = question_counts(a, question_ids)
    _, bh, bk = question_counts(b, ids)
    in_a, in_b = ak > 0, bk > 0
    both = in_a & in_b
    ah, ak, bh, bk = ah[both], ak[both], bh[both], bk[both]
    shared = [q for q, s in zip(ids, both) if s]

    def arm(h: np.ndarray, k: np.ndarray) -> dict:
        hits, kept = int(h.sum()), int(k.sum())
        return {"hits": hits, "kept": kept, "share": hits / kept if kept else None}

    out: dict = {
        "shared_questions": shared,
        "questions_only_in_a": [q for q, x, y in zip(ids, in_a, in_b) if x and not y],
        "questions_only_in_b": [q for q, x, y in zip(ids, in_a, in_b) if y and not x],
        "questions_with_no_kept": [q for q, x, y in zip(ids, in_a, in_b) if not x and not y],
        "a": arm(ah, ak),
        "b": arm(bh, bk),
        "diff": None,
        "ci": None,
        "p_value": None,
        "n_resamples": n_resamples,
        "n_permutations": n_permutations,
        "seed": seed,
        "method": PAIRED_METHOD,
    }
    if shared:
        out["diff"] = float(_share_diff(ah.sum(), ak.sum(), bh.sum(), bk.sum()))
    if len(shared) < 2:
        out["note"] = (
            f"{len(shared)} shared question(s) with kept answers in both arms: "
            "at least 2 are needed for an interval or a p-value"
        )
        return out

    rng = np.random.default_rng(seed)
    n = len(shared)
    idx = rng.integers(0, n, size=(n_resamples, n))  # (R, Q): the same questions for both arms
    boot = _share_diff(ah[idx].sum(1), ak[idx].sum(1), bh[idx].sum(1), bk[idx].sum(1))
    out["ci"] = percentile_interval(boot, confidence)

    swap = (rng.random((n_permutations, n)) < 0.5).astype(np.int64)  # (P, Q): 1 = swap arms on that question
    # a's totals after swapping = a's totals + swapped questions' (b - a); b's the other way round
    dh, dk = swap @ (bh - ah), swap @ (bk - ak)
    perm = _share_diff(ah.sum() + dh, ak.sum() + dk, bh.sum() - dh, bk.sum() - dk)
    extreme = int(np.count_nonzero(np.abs(perm) >= abs(out["diff"]) - 1e-12))
    out["p_value"] = (1 + extreme) / (1 + n_permutations)
    return out


def group_comparison(
    a_models: Mapping[str, Sequence[Outcome]],
    b_models: Mapping[str, Sequence[Outcome]],
    question_ids: Sequence[str] | None = None,
    min_kept_per_question: int = 5,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Group mean of a minus group mean of b, bootstrapping models within each arm since seeds are unpaired."""
    check_resampling(n_resamples, confidence, "group_comparison")
    args = (question_ids, min_kept_per_question, n_resamples, seed, confidence)
    ga, gb = group_rate(a_models, *args), group_rate(b_models, *args)
    keys = ("mean", "ci", "n_models", "per_model", "dropped_models", "cells_dropped", "note")
    out: dict = {
        "a": {k: ga[k] for k in keys if k in ga},
        "b": {k: gb[k] for k in keys if k in gb},
        "diff": None,
        "ci": None,
        "min_kept_per_question": min_kept_per_question,
        "n_resamples": n_resamples,
        "seed": seed,
        "method": GROUP_METHOD,
    }
    va = np.array([r for r in ga["per_model"].values() if r is not None], dtype=float)
    vb = np.array([r for r in gb["per_model"].values() if r is not None], dtype=float)
    if va.size and vb.size:
        out["diff"] = float(va.mean() - vb.mean())
    if va.size < 2 or vb.size < 2:
        out["note"] = (
            f"models with a rate: {va.size} in a, {vb.size} in b; "
            "each arm needs at least 2 for an interval over models"
        )
        return out
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, va.size, size=(n_resamples, va.size))  # (R, n_a)
    ib = rng.integers(0, vb.size, size=(n_resamples, vb.size))  # (R, n_b), drawn independently of ia
    out["ci"] = percentile_interval(va[ia].mean(1) - vb[ib].mean(1), confidence)
    return out
