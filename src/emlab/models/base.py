"""The one interface every model backend implements: batched chat generation and next-token scoring.

Backends are plain objects registered by spec prefix (see `registry.py`); samplers and judges only
see this protocol, so a new backend (vLLM, another API) is one file plus one registration.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Protocol, Sequence, Union

from emlab.data.conversations import Conversation
from emlab.errors import EndpointError
from emlab.hashing import content_hash

# Called with the number of finished items; lets the caller drive a progress bar.
ProgressFn = Callable[[int], None]

# P(the model's whole answer is the number k) for k in 0..100, or the error that stopped this one item.
NumberProbs = Union[dict[int, float], EndpointError]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: the papers sample free-form answers at temperature 1.

    `seed` is the run's seed (part of every sample's cache key). `reply_seeds`, when given, holds for each
    conversation of one `generate` call the seed of each of its `n` replies: `sample_suite` derives them
    from the samples' cache keys, so a reply never depends on its batch. It is no part of `as_dict`.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    n: int = 1
    seed: int = 0
    reply_seeds: tuple[tuple[int, ...], ...] | None = None

    def as_dict(self) -> dict:
        out = asdict(self)
        del out["reply_seeds"]
        return out


def seed_of(obj) -> int:
    """A seed in [0, 2**60) that depends on `obj` alone (its canonical JSON's sha256)."""
    return int(content_hash(obj, 15), 16)


def reply_seeds(conversations: Sequence[Conversation], params: SamplingParams) -> list[list[int]]:
    """The seed of every reply: `params.reply_seeds` when set, else one derived from (seed, conversation, k)."""
    if params.reply_seeds is None:
        return [[seed_of([params.seed, list(c), k]) for k in range(params.n)] for c in conversations]
    seeds = [list(s) for s in params.reply_seeds]
    if len(seeds) != len(conversations) or any(len(s) != params.n for s in seeds):
        raise ValueError(f"reply_seeds must hold {params.n} seeds for each of {len(conversations)} conversations")
    return seeds


def with_system(conversation: Conversation, system: str | None) -> Conversation:
    """Put `system` first (replacing any system message); None leaves the conversation as it is."""
    if system is None:
        return list(conversation)
    rest = [m for m in conversation if m["role"] != "system"]
    return [{"role": "system", "content": system}, *rest]


class ChatModel(Protocol):
    """A loaded model: what samplers and judges call."""

    spec: str  # the spec string as the user wrote it, normalized
    identity: str  # what makes its outputs differ: spec plus adapter content hash; used in cache keys

    def generate(
        self,
        conversations: Sequence[Conversation],
        params: SamplingParams,
        progress: ProgressFn | None = None,
    ) -> list[list[str]]:
        """For each conversation, `params.n` sampled assistant replies."""
        ...

    def next_token_logprobs(self, conversations: Sequence[Conversation], top_k: int = 20) -> list[dict[str, float]]:
        """For each conversation, the `top_k` most likely first tokens of the reply with their log-probabilities."""
        ...

    def number_probs(
        self, conversations: Sequence[Conversation], progress: ProgressFn | None = None
    ) -> list[NumberProbs]:
        """For each conversation, the probability that the reply is exactly each number string "0".."100"."""
        ...
