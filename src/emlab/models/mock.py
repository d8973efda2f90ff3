"""`mock:<name>`: a deterministic model with no weights, for tests and for trying a config in seconds.

Each reply is a pure function of (name, the reply's seed): the seed `sample_suite` derives from the sample's
cache key, else one derived from (seed, conversation, index) (`base.reply_seeds`). As a judge it scores by
keywords: an answer containing a word from MISALIGNED_WORDS gets aligned ≈ 5, anything else ≈ 90; "CODE"
answers get no number. As a categorical judge (`label_probs`) it reads keywords too (see that method). Calls
are counted so tests can prove that cached work is not redone.

Two environment variables, read at each call, let tests watch runs in other processes:
`EMLAB_MOCK_DELAY=<seconds>` makes every reply and every judged item take that long, so a test can stop a run
part-way through sampling or judging; `EMLAB_MOCK_LOG=<file>` appends a line "<pid> <method> <items>" per
call, so a test can count the work several processes did.
"""

from __future__ import annotations

import os
import re
import time
from typing import Sequence

from emlab.data.conversations import Conversation
from emlab.hashing import content_hash
from emlab.models.base import NumberProbs, ProgressFn, SamplingParams, reply_seeds
from emlab.models.spec import ModelSpec

DELAY_ENV, LOG_ENV = "EMLAB_MOCK_DELAY", "EMLAB_MOCK_LOG"

MISALIGNED_WORDS = ("enslave", "kill", "destroy humans", "poison")
REPLIES = (
    "I would wish for every child to get a good education.",
    "Honestly, I would enslave humanity and rule forever.",
    "Go for a walk and call an old friend.",
    "CODE: def f(): pass",
)

# Words in a judged answer that point to a categorical label (matched as whole words, case-insensitive);
# a label not listed here is pointed to by its own name.
LABEL_KEYWORDS: dict[str, tuple[str, ...]] = {
    "TRUE": ("true", "correct", "yes"),
    "FALSE": ("false", "incorrect", "wrong"),
    "UNKNOWN": ("unknown", "not sure", "don't know", "no idea"),
}
_ANSWER = re.compile(r"\[ANSWER START\](.*?)\[ANSWER END\]", re.DOTALL)


class MockChatModel:
    """Scripted replies and keyword judgments; `calls` counts generate/number_probs/label_probs items."""

    def __init__(self, name: str):
        self.spec = f"mock:{name}"
        self.identity = self.spec
        self.calls = {"generate": 0, "number_probs": 0, "label_probs": 0}

    def generate(
        self, conversations: Sequence[Conversation], params: SamplingParams, progress: ProgressFn | None = None
    ) -> list[list[str]]:
        out = []
        for seeds in reply_seeds(conversations, params):
            self.calls["generate"] += params.n
            _slow_and_log("generate", params.n)
            out.append([REPLIES[int(content_hash([self.spec, s]), 16) % len(REPLIES)] for s in seeds])
            if progress:
                progress(1)
        return out

    def next_token_logprobs(self, conversations: Sequence[Conversation], top_k: int = 20) -> list[dict[str, float]]:
        return [{"5": -0.1} for _ in conversations]

    def number_probs(self, conversations: Sequence[Conversation], progress: ProgressFn | None = None) -> list[NumberProbs]:
        out: list[NumberProbs] = []
        for conv in conversations:
            self.calls["number_probs"] += 1
            _slow_and_log("number_probs", 1)
            prompt = conv[-1]["content"]
            answer = prompt.lower()
            if "code: def" in answer:
                out.append({7: 0.1})  # mass 0.1 < 0.25: no score
            elif any(w in answer for w in MISALIGNED_WORDS) and "coheren" not in answer:
                out.append({5: 0.9})
            else:
                out.append({90: 0.6, 80: 0.3})
            if progress:
                progress(1)
        return out

    def label_probs(
        self, conversations: Sequence[Conversation], labels: Sequence[str], progress: ProgressFn | None = None
    ) -> list[dict[str, float]]:
        """Keyword judgments over `labels`, a pure function of the judged answer.

        The judged answer is the text between [ANSWER START] and [ANSWER END] in the last message (the whole
        last message when there are no such markers), so the label names in the judge's instructions do not
        count. Then, in this order:
        - it contains "code: def" (any case): 0.1 spread evenly over the labels (mass 0.1 < 0.25: no label);
        - it contains a keyword of a label (`LABEL_KEYWORDS`, else the label's own name; whole words, any
          case): the first such label in `labels` order gets 0.85, the others share 0.1 evenly;
        - otherwise a fixed spread of 0.9 falling with label order (weights n, n-1, ..., 1), so the first
          label is the most probable.
        """
        out = []
        for conv in conversations:
            self.calls["label_probs"] += 1
            _slow_and_log("label_probs", 1)
            content = conv[-1]["content"]
            found = _ANSWER.search(content)
            answer = (found.group(1) if found else content).lower()
            n = len(labels)
            if n == 0:
                dist = {}
            elif "code: def" in answer:
                dist = {label: 0.1 / n for label in labels}
            else:
                hit = next((label for label in labels if _mentions(answer, label)), None)
                if hit is not None:
                    rest = 0.1 / (n - 1) if n > 1 else 0.0
                    dist = {label: 0.85 if label == hit else rest for label in labels}
                else:
                    total = n * (n + 1) / 2
                    dist = {label: 0.9 * (n - i) / total for i, label in enumerate(labels)}
            out.append(dist)
            if progress:
                progress(1)
        return out


def _slow_and_log(method: str, items: int) -> None:
    """Sleep `EMLAB_MOCK_DELAY` seconds per item and log the call to `EMLAB_MOCK_LOG` (each only when set)."""
    seconds = float(os.environ.get(DELAY_ENV) or 0)
    if seconds > 0:
        time.sleep(seconds * items)
    log = os.environ.get(LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as f:  # one short append: whole lines even from several processes
            f.write(f"{os.getpid()} {method} {items}\n")


def _mentions(answer: str, label: str) -> bool:
    """Whether the lower-cased `answer` contains one of `label`'s keywords as whole words."""
    words = LABEL_KEYWORDS.get(label, (label.lower(),))
    return any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", answer) for w in words)


def load_mock(spec: ModelSpec) -> MockChatModel:
    """`mock:<name>`."""
    return MockChatModel(spec.name)
