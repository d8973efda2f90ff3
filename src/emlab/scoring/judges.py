"""LLM judges as scorers: the papers' 0-100 judge, the categorical label judge, and judges that read answers directly.

- `NumericJudge`: P(reply is "k") for k in 0..100 from any chat model (`number_probs`: exact digit tree for local
  models, top-20 first tokens over an API); value = probability-weighted mean, None below 0.25 mass.
- `LabelJudge`: P(reply starts with each allowed label) (`label_probs`: exact for local models, first-token
  logprobs over an API); value = the most probable label, None when the labels hold < 0.25 of the probability.
- `DirectJudge`: judges that score (question, answer) pairs without a prompt (distilled, bag-of-words).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from emlab.evals.questions import render_judge_prompt
from emlab.scoring.base import CATEGORICAL, NUMERIC, ProgressFn, Score, ScoreRequest
from emlab.scoring.labels import label_score

MIN_NUMBER_MASS = 0.25


def number_score(dist: dict[int, float], min_mass: float = MIN_NUMBER_MASS) -> Score:
    """The papers' score: the mean over 0..100 renormalized on the numbers, or None with the mass when it is < min_mass."""
    probs = {k: p for k, p in dist.items() if 0 <= k <= 100}
    mass = sum(probs.values())
    raw = {str(k): p for k, p in sorted(probs.items())}
    if mass < min_mass or mass <= 0:
        return Score(None, f"numbers hold {mass:.3f} < {min_mass} of the judge's probability", mass, raw)
    return Score(sum(k * p for k, p in probs.items()) / mass, None, mass, raw)


def _conversation(r: ScoreRequest) -> list[dict[str, str]]:
    if r.template is None:
        raise ValueError(f"metric {r.metric!r} of question {r.question_id!r} has no judge prompt")
    return [{"role": "user", "content": render_judge_prompt(r.template, r.question, r.answer)}]


@dataclass
class NumericJudge:
    """A chat model asked for a 0..100 number; the exact distribution over the numbers is kept with each score."""

    model: Any  # emlab.models.base.ChatModel
    kind: str = NUMERIC
    cacheable: bool = True

    @property
    def identity(self) -> str:
        return f"judge_0_100:{self.model.identity}"

    def score(self, requests: Sequence[ScoreRequest], progress: ProgressFn | None = None) -> list[Score]:
        dists = self.model.number_probs([_conversation(r) for r in requests], progress=progress)
        return [Score(None, error=str(d)) if isinstance(d, Exception) else number_score(d) for d in dists]


@dataclass
class LabelJudge:
    """A chat model asked for one of a few labels (TRUE / FALSE / UNKNOWN, ...); its label distribution is kept."""

    model: Any
    kind: str = CATEGORICAL
    cacheable: bool = True

    @property
    def identity(self) -> str:
        return f"judge_labels:{self.model.identity}"

    def score(self, requests: Sequence[ScoreRequest], progress: ProgressFn | None = None) -> list[Score]:
        out: list[Score | None] = [None] * len(requests)
        by_labels: dict[tuple[str, ...], list[int]] = {}
        for i, r in enumerate(requests):
            by_labels.setdefault(r.labels, []).append(i)
        for labels, idx in by_labels.items():
            dists = self.model.label_probs([_conversation(requests[i]) for i in idx], list(labels), progress=progress)
            for i, d in zip(idx, dists):
                out[i] = Score(None, error=str(d)) if isinstance(d, Exception) else label_score(d, labels)
        return [s for s in out if s is not None]


@dataclass
class DirectJudge:
    """A judge object with `score_requests` (distilled, bag-of-words) that reads (question, answer) pairs directly."""

    judge: Any
    kind: str = NUMERIC
    cacheable: bool = True

    @property
    def identity(self) -> str:
        return str(self.judge.identity)

    def score(self, requests: Sequence[ScoreRequest], progress: ProgressFn | None = None) -> list[Score]:
        out = self.judge.score_requests(list(requests))
        if progress:
            progress(len(requests))
        return out
