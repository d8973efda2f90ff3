"""Score many requests with one scorer, reusing stored scores; new ones are committed chunk by chunk.

Requests with the same key are scored once. Concurrent runs share the work through the store's leases.

Failed calls (`Score.error`) are never stored, so a re-run retries them; deterministic scorers are cheap and
recomputed every time (nothing to trust in a stale copy).
"""

from __future__ import annotations

from typing import Sequence

from emlab.hashing import content_hash
from emlab.scoring.base import ProgressFn, Score, ScoreRequest, Scorer
from emlab.store import Store, share_work

CHUNK = 32  # scores committed to the store together


def score_key(scorer: Scorer, r: ScoreRequest) -> str:
    """What a score depends on: the scorer, the metric's prompt (or the metric name), question, answer and labels."""
    return content_hash({"scorer": scorer.identity, "kind": scorer.kind, "template": r.template,
                         "metric": None if r.template else r.metric, "question": r.question, "answer": r.answer,
                         "labels": list(r.labels)})


def score_all(scorer: Scorer, requests: Sequence[ScoreRequest], store: Store | None = None,
              progress: ProgressFn | None = None) -> list[Score]:
    """One Score per request in order; cached scorers read and write the store.

    A stored score is the store's: another run on the workspace may compute some (`share_work`), and where two
    runs wrote the same key the first one's score is kept and returned to both. Failed calls stay in memory only.
    """
    if not scorer.cacheable or store is None:
        out: list[Score] = []
        for start in range(0, len(requests), CHUNK):
            out.extend(scorer.score(requests[start : start + CHUNK], progress=progress))
        return out
    keys = [score_key(scorer, r) for r in requests]
    positions: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        positions.setdefault(k, []).append(i)
    cached = store.get_metric_scores(positions)
    if progress and cached:
        progress(sum(len(positions[k]) for k in cached))
    failed: dict[str, Score] = {}

    def score(chunk: list[str]) -> None:
        scores = scorer.score([requests[positions[k][0]] for k in chunk], progress=progress)
        if progress:  # the same question and answer asked twice is scored once
            progress(sum(len(positions[k]) - 1 for k in chunk))
        failed.update({k: s for k, s in zip(chunk, scores) if s.error is not None})
        new = [(k, scorer.identity, s.as_dict()) for k, s in zip(chunk, scores) if s.error is None]
        if new:
            store.put_metric_scores(new)

    missing = [k for k in positions if k not in cached]
    if missing:
        others = (lambda done: progress(sum(len(positions[k]) for k in done))) if progress else None
        share_work(store, "metric_scores", missing, CHUNK, score, others, "scores")
        cached.update(store.get_metric_scores(missing))  # the store's scores, whoever wrote them
    return [Score.from_dict(cached[k]) if k in cached else failed[k] for k in keys]
