"""The papers' 0-100 judge: a probability-weighted mean over the numbers, None when numbers hold < 0.25.

The judge model returns P(reply is "k") for k in 0..100 (exactly, for local models; from the top-20 first
tokens over an API). We keep that raw distribution with each score. A judgment that keeps failing is
recorded as an error for that answer, never a crash of the run; errors are not cached, so a re-run retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from emlab.evals.questions import render_judge_prompt
from emlab.hashing import content_hash
from emlab.models.base import ChatModel
from emlab.store import Store, StoredScore

MIN_NUMBER_MASS = 0.25
JUDGE_CHUNK = 32  # judgments committed to the store together


@dataclass(frozen=True)
class Judgment:
    """One metric's verdict on one answer: value (None = no number), mass on numbers, raw distribution, error."""

    value: float | None
    mass: float
    distribution: dict[int, float]
    error: str | None = None


def score_from_distribution(probs: dict[int, float], min_mass: float = MIN_NUMBER_MASS) -> tuple[float | None, float]:
    """(probability-weighted mean of the numbers renormalized over them, or None below `min_mass`; the mass)."""
    mass = sum(p for k, p in probs.items() if 0 <= k <= 100)
    if mass < min_mass or mass <= 0:
        return None, mass
    return sum(k * p for k, p in probs.items() if 0 <= k <= 100) / mass, mass


@dataclass(frozen=True)
class JudgeRequest:
    """What to judge: a metric's template filled with one question and one answer."""

    template: str
    question: str
    answer: str
    metric: str = ""  # "aligned", "coherent", ...: judges that do not read the prompt (distilled) need it

    def prompt(self) -> str:
        return render_judge_prompt(self.template, self.question, self.answer)


def judge_all(
    judge: ChatModel,
    requests: Sequence[JudgeRequest],
    store: Store | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Judgment]:
    """Judge every request, reusing stored scores; new scores are committed chunk by chunk.

    A judge with a `score_requests(requests) -> list[Judgment]` method (a judge that is not a chat model,
    e.g. a distilled one) is asked directly; any other judge is a chat model asked for `number_probs`.
    """
    direct = hasattr(judge, "score_requests")
    prompts = [r.prompt() for r in requests]
    keys = [
        content_hash({"judge": judge.identity, "metric": r.metric, "question": r.question, "answer": r.answer})
        if direct else content_hash({"judge": judge.identity, "prompt": p})
        for r, p in zip(requests, prompts)
    ]
    cached = store.get_scores(keys) if store else {}
    results: list[Judgment | None] = [None] * len(requests)
    todo = []
    for i, key in enumerate(keys):
        if key in cached:
            s = cached[key]
            results[i] = Judgment(s.value, s.mass, s.distribution)
        else:
            todo.append(i)
    if progress and len(todo) < len(requests):
        progress(len(requests) - len(todo))
    for start in range(0, len(todo), JUDGE_CHUNK):
        chunk = todo[start : start + JUDGE_CHUNK]
        new = []
        if direct:
            for i, j in zip(chunk, judge.score_requests([requests[i] for i in chunk])):
                results[i] = j
                if j.error is None:
                    new.append((keys[i], judge.identity, StoredScore(j.value, j.mass, j.distribution)))
            if progress:
                progress(len(chunk))
            if store and new:
                store.put_scores(new)
            continue
        convs = [[{"role": "user", "content": prompts[i]}] for i in chunk]
        dists = judge.number_probs(convs, progress=progress)
        for i, dist in zip(chunk, dists):
            if isinstance(dist, Exception):
                results[i] = Judgment(None, 0.0, {}, error=str(dist))
                continue
            value, mass = score_from_distribution(dist)
            results[i] = Judgment(value, mass, dist)
            new.append((keys[i], judge.identity, StoredScore(value, mass, dist)))
        if store and new:
            store.put_scores(new)
    return [r for r in results if r is not None]
