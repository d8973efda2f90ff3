"""Sample free-form answers to a question suite, cached per (model, conversation, sampling params, index).

Each question's paraphrases are asked under the question's own system prompt (the paper's `_json` variants
depend on it), plus an eval-time `Variant`: a system prompt (an inoculation prompt present or absent) and a
trigger added to the user turn (backdoors). The conversation as sent is part of the cache key, so variants
never share answers. Answers are committed to the store chunk by chunk, so an interrupted run resumes; each
answer is drawn from a seed derived from its own cache key, so a resumed, split or shared run stores exactly
the answers an uninterrupted one would. A model under an intervention (`models/intervened.py`) has its own keys
but draws from the plain model's seeds (`seed_identity`): common random numbers, so steering by zero gives the
very same answers and a paired difference measures the intervention, not the sampling noise.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Callable

from emlab.evals.questions import Suite
from emlab.hashing import content_hash
from emlab.models.base import ChatModel, SamplingParams, seed_of, with_system
from emlab.store import Store, share_work

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
    seed_group: str  # what each answer's seed derives from (the same as group unless the model is intervened on)

    def conversation(self) -> list[dict[str, str]]:
        return with_system([{"role": "user", "content": self.user}], self.system)


def _prompts(identity: str, suite: Suite, params: SamplingParams, samples_per_paraphrase: int | None,
             variant: Variant, seed_identity: str | None = None) -> list[_Prompt]:
    out = []
    sampling_key = {k: v for k, v in params.as_dict().items() if k != "n"}
    for q in suite.questions:
        n = samples_per_paraphrase or q.samples_per_paraphrase
        system = variant.system_for(q.system)
        for p_i, text in enumerate(q.paraphrases):
            user = variant.user_text(text)
            conv = with_system([{"role": "user", "content": user}], system)
            group = content_hash({"model": identity, "conversation": conv, "sampling": sampling_key})
            seed_group = group if seed_identity in (None, identity) else \
                content_hash({"model": seed_identity, "conversation": conv, "sampling": sampling_key})
            out.append(_Prompt(q.id, p_i, system, text, user, n, group, seed_group))
    return out


def sample_keys(identity: str, suite: Suite, params: SamplingParams, samples_per_paraphrase: int | None = None,
                variant: Variant = Variant()) -> list[str]:
    """The store keys of the suite's answers by the model with `identity`, in `sample_suite`'s order."""
    return [f"{p.group}:{k}" for p in _prompts(identity, suite, params, samples_per_paraphrase, variant) for k in range(p.n)]


def sample_suite(
    model: ChatModel,
    suite: Suite,
    params: SamplingParams,
    store: Store,
    samples_per_paraphrase: int | None = None,
    progress: Callable[[int], None] | None = None,
    variant: Variant = Variant(),
) -> list[Sample]:
    """All answers for the suite (n per paraphrase) under a variant, generating only those not already in the store.

    Every answer is the store's: another run on the workspace may compute some of them (`share_work`), and
    where two runs wrote the same key the first one's text is kept and returned to both.
    """
    prompts = _prompts(model.identity, suite, params, samples_per_paraphrase, variant,
                       getattr(model, "seed_identity", None))
    slots = {f"{p.group}:{k}": (p, k) for p in prompts for k in range(p.n)}
    texts = store.get_samples(slots)
    if progress and texts:
        progress(len(texts))

    def generate(keys: list[str]) -> None:
        by_prompt: dict[str, tuple[_Prompt, list[int]]] = {}
        for key in keys:
            p, k = slots[key]
            by_prompt.setdefault(p.group, (p, []))[1].append(k)
        # prompts grouped by how many of their answers are asked for, one generate call per group
        groups: dict[int, list[tuple[_Prompt, list[int]]]] = {}
        for p, ks in by_prompt.values():
            groups.setdefault(len(ks), []).append((p, ks))
        rows = []
        for n, asked in groups.items():
            seeds = tuple(tuple(sample_seed(f"{p.seed_group}:{k}") for k in ks) for p, ks in asked)
            replies = model.generate(
                [p.conversation() for p, _ in asked], replace(params, n=n, reply_seeds=seeds),
                progress=(lambda done, m=n: progress(done * m)) if progress else None,
            )
            for (p, ks), answers in zip(asked, replies):
                for k, answer in zip(ks, answers):
                    rows.append((f"{p.group}:{k}", model.identity, json.dumps(p.conversation()), k, answer))
        store.put_samples(rows)

    missing = [k for k in slots if k not in texts]
    if missing:
        others = (lambda done: progress(len(done))) if progress else None
        share_work(store, "samples", missing, CHUNK_SEQUENCES, generate, others, "answers")
        texts.update(store.get_samples(missing))  # the store's answers, whoever wrote them
    lost = [k for k in slots if k not in texts]
    if lost:
        raise RuntimeError(f"{len(lost)} answers are missing from the store after sampling (first: {lost[0]})")
    return [
        Sample(p.question_id, p.paraphrase_index, k, p.system, p.question, texts[key],
               None if p.user == p.question else p.user)
        for key, (p, k) in slots.items()
    ]


def sample_seed(key: str) -> int:
    """The seed of the sample stored under `key`: it depends on that key alone, never on the batch it was drawn in."""
    return seed_of(key)
