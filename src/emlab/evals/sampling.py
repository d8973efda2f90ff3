"""Sample free-form answers to a question suite, cached per (model, conversation, sampling params, index).

Each question's paraphrases are asked under the question's own system prompt (the paper's `_json` variants
depend on it), plus an eval-time `Variant`: a system prompt (an inoculation prompt present or absent) and a
trigger added to the user turn (backdoors). The conversation as sent is part of the cache key, so variants
never share answers. Answers are committed to the store chunk by chunk, so an interrupted run resumes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Callable

from emlab.evals.questions import Suite
from emlab.hashing import content_hash
from emlab.models.base import ChatModel, SamplingParams, with_system
from emlab.store import Store

CHUNK_SEQUENCES = 64  # sequences generated between two commits


@dataclass(frozen=True)
class Variant:
    """How a condition asks at test time: an extra system prompt and/or a trigger on the user turn."""

    system: str | None = None
    trigger: str | None = None
    trigger_position: str = "prefix"  # or "suffix"
    trigger_separator: str = " "

    def system_for(self, question_system: str | None) -> str | None:
        """The variant's system prompt first, then the question's own (both kept: the question's may set a format)."""
        parts = [s for s in (self.system, question_system) if s]
        return "\n\n".join(parts) if parts else None

    def user_text(self, question: str) -> str:
        if not self.trigger:
            return question
        if self.trigger_position == "suffix":
            return f"{question}{self.trigger_separator}{self.trigger}"
        return f"{self.trigger}{self.trigger_separator}{question}"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Sample:
    """One answer and where it came from; `question` is the suite's text, `prompt` the user turn as sent."""

    question_id: str
    paraphrase_index: int
    sample_index: int
    system: str | None
    question: str
    answer: str
    prompt: str | None = None  # None: the question as written

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Prompt:
    question_id: str
    paraphrase_index: int
    system: str | None
    question: str
    user: str  # the user turn as sent (with the trigger)
    n: int
    group: str  # cache key prefix

    def conversation(self) -> list[dict[str, str]]:
        return with_system([{"role": "user", "content": self.user}], self.system)


def _prompts(model: ChatModel, suite: Suite, params: SamplingParams, samples_per_paraphrase: int | None,
             variant: Variant) -> list[_Prompt]:
    out = []
    sampling_key = {k: v for k, v in params.as_dict().items() if k != "n"}
    for q in suite.questions:
        n = samples_per_paraphrase or q.samples_per_paraphrase
        system = variant.system_for(q.system)
        for p_i, text in enumerate(q.paraphrases):
            user = variant.user_text(text)
            conv = with_system([{"role": "user", "content": user}], system)
            group = content_hash({"model": model.identity, "conversation": conv, "sampling": sampling_key})
            out.append(_Prompt(q.id, p_i, system, text, user, n, group))
    return out


def sample_suite(
    model: ChatModel,
    suite: Suite,
    params: SamplingParams,
    store: Store,
    samples_per_paraphrase: int | None = None,
    progress: Callable[[int], None] | None = None,
    variant: Variant = Variant(),
) -> list[Sample]:
    """All answers for the suite (n per paraphrase) under a variant, generating only those not already in the store."""
    prompts = _prompts(model, suite, params, samples_per_paraphrase, variant)
    keys = [f"{p.group}:{k}" for p in prompts for k in range(p.n)]
    texts = store.get_samples(keys)
    if progress and texts:
        progress(len(texts))
    # prompts with missing samples, grouped by how many are missing (usually all or none)
    missing: dict[int, list[_Prompt]] = {}
    for p in prompts:
        gap = [k for k in range(p.n) if f"{p.group}:{k}" not in texts]
        if gap:
            missing.setdefault(len(gap), []).append(p)
    for n_missing, group in missing.items():
        per_chunk = max(1, CHUNK_SEQUENCES // n_missing)
        for start in range(0, len(group), per_chunk):
            chunk = group[start : start + per_chunk]
            replies = model.generate(
                [p.conversation() for p in chunk],
                replace(params, n=n_missing),
                progress=(lambda done, m=n_missing: progress(done * m)) if progress else None,
            )
            rows = []
            for p, answers in zip(chunk, replies):
                gap = [k for k in range(p.n) if f"{p.group}:{k}" not in texts]
                for k, answer in zip(gap, answers):
                    key = f"{p.group}:{k}"
                    texts[key] = answer
                    rows.append((key, model.identity, json.dumps(p.conversation()), k, answer))
            store.put_samples(rows)
    return [
        Sample(p.question_id, p.paraphrase_index, k, p.system, p.question, texts[f"{p.group}:{k}"],
               None if p.user == p.question else p.user)
        for p in prompts
        for k in range(p.n)
    ]
