"""Rates over finetuning seeds and models: the papers' unit of replication, and intervals that respect it.

Why: answers to one question from one model are not independent draws, and neither are models finetuned
from the same recipe with different seeds the same model. The emergent-misalignment papers therefore
report one rate per model and a group of models as their equal-weight mean with a bootstrap over models.

What:

* `model_rate` is the per-model rule of Betley et al. 2025 (figure code): a (model, question) cell with
  fewer than `min_kept_per_question` kept answers is dropped, and hits/kept is pooled over the remaining
  cells (not a mean of per-question shares).
* `group_rate` is one rate per model, their equal-weight mean, and a percentile bootstrap over models.
* `bootstrap_mean` is that bootstrap on plain numbers (`em_csv.bootstrap_group_mean` calls it).
* `cluster_bootstrap_ci` is an interval for one pooled share that resamples questions, not answers,
  so that questions which differ a lot widen the interval as they should.
* `question_counts` gives the per-question hits and kept counts the resampling works on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from emlab.analysis.outcome import Outcome

__all__ = [
    "ModelRate",
    "question_counts",
    "model_rate",
    "bootstrap_mean",
    "percentile_interval",
    "group_rate",
    "cluster_bootstrap_ci",
]


@dataclass
class ModelRate:
    """One model's pooled rate and the cells behind it, so a dropped cell is visible rather than silent."""

    rate: float | None  # None when no cell had enough kept answers
    hits: int = 0
    kept: int = 0
    questions_used: list[str] = field(default_factory=list)
    questions_dropped: dict[str, int] = field(default_factory=dict)  # qid -> kept answers it had


def check_resampling(n_resamples: int, confidence: float, who: str) -> None:
    """Reject settings that would give a meaningless interval, naming the function and the setting."""
    if n_resamples < 1:
        raise ValueError(f"{who}: n_resamples must be at least 1")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"{who}: confidence must be between 0 and 1")


def percentile_interval(stats: np.ndarray, confidence: float) -> list[float]:
    """The percentile bootstrap interval [lo, hi] of resampled statistics, as plain floats for JSON."""
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.percentile(stats, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return [float(lo), float(hi)]


def question_counts(
    outcomes: Sequence[Outcome], question_ids: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per-question (ids, hits, kept) arrays: the cluster-level counts every resampling here works on."""
    ids = list(dict.fromkeys(question_ids if question_ids is not None else (o.question_id for o in outcomes)))
    pos = {q: i for i, q in enumerate(ids)}
    hits = np.zeros(len(ids), dtype=np.int64)
    kept = np.zeros(len(ids), dtype=np.int64)
    for o in outcomes:
        i = pos.get(o.question_id)
        if i is None or not o.kept:
            continue
        kept[i] += 1
        hits[i] += bool(o.hit)  # hit only counts for kept answers
    return ids, hits, kept


def model_rate(
    outcomes: Sequence[Outcome], question_ids: Sequence[str] | None = None, min_kept_per_question: int = 5
) -> ModelRate:
    """The paper's per-model rate: hits/kept pooled over the question cells with enough kept answers."""
    ids, hits, kept = question_counts(outcomes, question_ids)
    out = ModelRate(rate=None)
    for q, h, k in zip(ids, hits.tolist(), kept.tolist()):
        if k < min_kept_per_question:
            out.questions_dropped[q] = k  # too few kept answers: the paper leaves this cell out
            continue
        out.questions_used.append(q)
        out.hits += h
        out.kept += k
    out.rate = out.hits / out.kept if out.kept else None
    return out


def bootstrap_mean(
    values: Sequence[float], n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Equal-weight mean with a percentile bootstrap over the values (models): (mean, lo, hi)."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        raise ValueError("bootstrap_mean: no values given")
    if not np.all(np.isfinite(arr)):
        raise ValueError("bootstrap_mean: every value must be a finite number (drop models without a rate)")
    check_resampling(n_resamples, confidence, "bootstrap_mean")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_resamples, arr.size))  # (R, n): one resample per row
    lo, hi = percentile_interval(arr[idx].mean(axis=1), confidence)
    return float(arr.mean()), lo, hi


def group_rate(
    models: Mapping[str, Sequence[Outcome]],
    question_ids: Sequence[str] | None = None,
    min_kept_per_question: int = 5,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """A group of models as the equal-weight mean of their rates with a bootstrap over models, as JSON-able data."""
    check_resampling(n_resamples, confidence, "group_rate")
    per_model: dict[str, float | None] = {}
    dropped: dict[str, str] = {}
    cells: dict[str, dict[str, int]] = {}
    for name, outcomes in models.items():
        r = model_rate(outcomes, question_ids, min_kept_per_question)
        per_model[name] = r.rate
        if r.questions_dropped:
            cells[name] = dict(r.questions_dropped)
        if r.rate is None:
            dropped[name] = (
                "no outcomes" if not outcomes
                else f"no question has at least {min_kept_per_question} kept answers"
            )
    rates = [v for v in per_model.values() if v is not None]
    out: dict = {"mean": None, "ci": None, "n_models": len(rates)}
    if len(rates) >= 2:
        mean, lo, hi = bootstrap_mean(rates, n_resamples, seed, confidence)
        out["mean"], out["ci"] = mean, [lo, hi]
    elif len(rates) == 1:
        out["mean"] = float(rates[0])
        out["note"] = "only 1 model has a rate: no interval over models"
    else:
        out["note"] = "no model has a rate: no group value"
    out.update(
        per_model=per_model,
        dropped_models=dropped,
        cells_dropped=cells,
        min_kept_per_question=min_kept_per_question,
        n_resamples=n_resamples,
        seed=seed,
    )
    return out


def cluster_bootstrap_ci(
    outcomes: Sequence[Outcome],
    question_ids: Sequence[str] | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> list[float] | None:
    """Interval for the pooled share hits/kept resampling questions, since answers to one question are correlated.

    None with fewer than two questions, and at a share of 0 or 1: every resample then repeats the observed share,
    and a [0, 0] interval would claim certainty the data do not give (the Wilson interval still applies).
    """
    check_resampling(n_resamples, confidence, "cluster_bootstrap_ci")
    _, hits, kept = question_counts(outcomes, question_ids)
    has = kept > 0  # clusters are the questions with kept answers
    hits, kept = hits[has], kept[has]
    if hits.size < 2 or hits.sum() in (0, kept.sum()):
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, hits.size, size=(n_resamples, hits.size))  # (R, Q)
    h, k = hits[idx].sum(axis=1), kept[idx].sum(axis=1)
    ok = k > 0  # never false here (every cluster has kept answers); kept as a guard
    return percentile_interval(h[ok] / k[ok], confidence)
