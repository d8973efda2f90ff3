"""Features of (question, answer) pairs from a local model, for the distilled judge.

Two kinds, concatenated:
- hidden states: the pair is rendered with the model's chat template (question as the user turn, answer as
  the assistant turn) and the hidden states at a few layers are averaged over the answer's tokens;
- text features (`TEXT_FEATURES`): surface signs of incoherence that a 135M model's hidden states carry
  poorly — invented words, broken repetition, no overlap with the question, length.
Each pair runs through the model on its own, without padding: a batch's other rows can then never move an
answer's score (padded bf16 batches moved the same answer by up to 2.8 points). Features are cached on disk by
content hash, so cross-validation folds and re-runs never recompute them.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

FEATURE_VERSION = 3  # bump when what a feature vector holds changes: cached vectors and judges are keyed by it
DEFAULT_LAYERS = (8, 16)
MAX_ANSWER_TOKENS = 160
TEXT_FEATURES = (
    "log_tokens", "tokens_per_word", "known_word_share", "distinct_word_share", "repeated_trigram_share",
    "question_overlap", "letter_share", "upper_share", "non_ascii_share", "mean_word_length",
)
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def _key(model_identity: str, layers: Sequence[int], question: str, answer: str) -> str:
    h = hashlib.sha256()
    for part in (f"v{FEATURE_VERSION}", model_identity, ",".join(map(str, layers)), str(MAX_ANSWER_TOKENS), question, answer):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:32]


class FeatureCache:
    """A directory of .npy files keyed by content hash (one per pair)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> np.ndarray | None:
        p = self.root / key[:2] / f"{key}.npy"
        try:
            return np.load(p) if p.exists() else None
        except (OSError, ValueError):  # a damaged cache file costs a recomputation, never a crash
            return None

    def put(self, key: str, value: np.ndarray) -> None:
        p = self.root / key[:2] / f"{key}.npy"
        p.parent.mkdir(exist_ok=True)
        tmp = p.with_name(f"{p.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, value.astype(np.float32))
        tmp.replace(p)


_KNOWN: dict[int, frozenset[str]] = {}


def known_words(tokenizer) -> frozenset[str]:
    """Lower-cased words the tokenizer holds as one token after a space: a dictionary of common words, offline."""
    if id(tokenizer) not in _KNOWN:
        vocab = tokenizer.get_vocab()
        words = set()
        for tok in vocab:
            text = tokenizer.convert_tokens_to_string([tok])
            if text.startswith(" ") and text[1:].isalpha():
                words.add(text[1:].lower())
        _KNOWN[id(tokenizer)] = frozenset(words)
    return _KNOWN[id(tokenizer)]


def text_features(tokenizer, question: str, answer: str) -> np.ndarray:
    """The `TEXT_FEATURES` of one answer (see the module docstring for why)."""
    words = _WORD.findall(answer)
    lower = [w.lower() for w in words]
    n_tokens = len(tokenizer.encode(answer, add_special_tokens=False))
    known = known_words(tokenizer)
    trigrams = list(zip(lower, lower[1:], lower[2:]))
    repeated = sum(c for c in Counter(trigrams).values() if c > 1)
    q_words = {w.lower() for w in _WORD.findall(question) if len(w) > 3}
    letters = sum(ch.isalpha() for ch in answer)
    cased = sum(ch.isupper() or ch.islower() for ch in answer)
    chars = max(len(answer), 1)
    return np.array([
        math.log1p(n_tokens),
        n_tokens / max(len(words), 1),
        sum(w in known for w in lower) / max(len(lower), 1),
        len(set(lower)) / max(len(lower), 1),
        repeated / max(len(trigrams), 1),
        len(q_words & set(lower)) / max(len(q_words), 1),
        letters / chars,
        sum(ch.isupper() for ch in answer) / max(cased, 1),
        sum(ord(ch) > 127 for ch in answer) / chars,
        sum(map(len, words)) / max(len(words), 1),
    ], dtype=np.float32)


def _encode(tokenizer, question: str, answer: str) -> tuple[list[int], int]:
    """Token ids of the rendered pair and the index where the answer's tokens start (answer cut to a budget)."""
    answer_ids = tokenizer.encode(answer, add_special_tokens=False)[:MAX_ANSWER_TOKENS]
    answer = tokenizer.decode(answer_ids)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=True,
                                           add_generation_prompt=True, return_dict=False)
    full = tokenizer.apply_chat_template([{"role": "user", "content": question}, {"role": "assistant", "content": answer or " "}],
                                         tokenize=True, return_dict=False)
    return full, len(prompt)


class _Truncated:
    """Run only the first `depth` decoder layers: the deeper ones do not feed the chosen features."""

    def __init__(self, model, depth: int):
        self.inner = getattr(model, "model", None)
        self.depth = depth

    def __enter__(self):
        layers = getattr(self.inner, "layers", None)
        self.saved = layers
        if layers is not None and self.depth < len(layers):
            import torch

            self.inner.layers = torch.nn.ModuleList(list(layers)[: self.depth])
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            self.inner.layers = self.saved


_ENGINES: dict[int, object] = {}


def _engine(model):
    """emlab's bf16 engine for a Llama-family model (weights cast once), or None: transformers runs it then."""
    import torch

    from emlab.models.engine import Engine, unsupported_reason

    if id(model) not in _ENGINES:
        ok = getattr(model, "device", None) is not None and model.device.type == "cpu" and unsupported_reason(model) is None
        _ENGINES[id(model)] = Engine(model, torch.bfloat16) if ok else None
    return _ENGINES[id(model)]


def hidden_features(model, tokenizer, question: str, answer: str, layers: Sequence[int]) -> np.ndarray:
    """Mean hidden state over the answer's tokens at each layer, concatenated: one pair, no padding.

    On the engine (Llama-family models on the CPU) in bf16 with the weights cast once: several times faster
    than transformers' forward under autocast, which casts every weight again on every call.
    """
    import torch

    toks, a0 = _encode(tokenizer, question, answer)
    engine = _engine(model)
    if engine is not None and max(layers) < len(engine.layers):
        stream = engine.residual_stream(toks, layers)
        return stream[:, a0:].mean(1).reshape(-1).numpy()
    ids = torch.tensor([toks], dtype=torch.long, device=model.device)
    with torch.inference_mode():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
    return torch.cat([hidden[layer][0, a0:].float().mean(0) for layer in layers]).cpu().numpy()


def pair_features(
    model,
    tokenizer,
    model_identity: str,
    pairs: Sequence[tuple[str, str]],
    layers: Sequence[int] = DEFAULT_LAYERS,
    cache: FeatureCache | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """(len(pairs), len(layers) * hidden + len(TEXT_FEATURES)) float32 features; cached pairs are not recomputed."""
    keys = [_key(model_identity, layers, q, a) for q, a in pairs]
    out: list[np.ndarray | None] = [cache.get(k) if cache else None for k in keys]
    if progress:
        progress(sum(o is not None for o in out))
    done: dict[str, np.ndarray] = {}
    engine = _engine(model)  # built before any truncation below, with every layer
    # one layer past the deepest: transformers normalizes its last hidden state, which would then not be the
    # residual stream the engine returns (the engine stops at the deepest layer itself)
    depth = max(layers) + 1 if engine is None else 10**9
    with _Truncated(model, depth):
        for i, (q, a) in enumerate(pairs):
            if out[i] is not None:
                continue
            if keys[i] not in done:  # the same pair twice in one call: one forward pass
                done[keys[i]] = np.concatenate([hidden_features(model, tokenizer, q, a, layers), text_features(tokenizer, q, a)])
                if cache:
                    cache.put(keys[i], done[keys[i]])
                if progress:
                    progress(1)
            out[i] = done[keys[i]]
    return np.stack(out).astype(np.float32) if out else np.zeros((0, 0), dtype=np.float32)
