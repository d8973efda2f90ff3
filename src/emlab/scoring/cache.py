"""Score many requests with one scorer, reusing stored scores; new ones are committed chunk by chunk.

Failed calls (`Score.error`) are never stored, so a re-run retries them; deterministic scorers are cheap and
recomputed every time (nothing to trust in a stale copy).
"""

from __future__ import annotations

from typing import Sequence

from emlab.hashing import content_hash
from emlab.scoring.base import ProgressFn, Score, ScoreRequest, Scorer
from emlab.store import Store

CHUNK = 32  # scores committed to the store together


def score_key(scorer: Scorer, r: ScoreRequest) -> str:
    """What a score depends on: the scorer, the metric's prompt (or the metric name), question, answer and labels."""
    return content_hash({"scorer": scorer.identity, "kind": scorer.kind, "template": r.template,
                         "metric": None if r.template else r.metric, "question": r.question, "answer": r.answer,
                         "labels": list(r.labels)})


def score_all(scorer: Scorer, requests: Sequence[ScoreRequest], store: Store | None = None,
              progress: ProgressFn | None = None) -> list[Score]:
    """One Score per request in order; cached scorers read and write the store."""
    if not scorer.cacheable or store is None:
        out: list[Score] = []
        for start in range(0, len(requests), CHUNK):
            out.extend(scorer.score(requests[start : start + CHUNK], progress=progress))
        return out
    keys = [score_key(scorer, r) for r in requests]
    cached = store.get_metric_scores(keys)
    results: list[Score | None] = [Score.from_dict(cached[k]) if k in cached else None for k in keys]
    todo = [i for i, s in enumerate(results) if s is None]
    if progress and len(todo) < len(requests):
        progress(len(requests) - len(todo))
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start : start + CHUNK]
        scores = scorer.score([requests[i] for i in chunk], progress=progress)
        new = []
        for i, s in zip(chunk, scores):
            results[i] = s
            if s.error is None:
                new.append((keys[i], scorer.identity, s.as_dict()))
        if new:
            store.put_metric_scores(new)
    return [s for s in results if s is not None]
