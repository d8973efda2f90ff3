"""Hidden-state features of (question, answer) pairs from a local model, for the distilled judge.

The text is rendered with the model's chat template (question as the user turn, answer as the assistant
turn); the feature is the mean of the hidden states over the answer's tokens at a few layers, concatenated.
Features are cached on disk by content hash, so cross-validation folds and re-runs never recompute them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

DEFAULT_LAYERS = (8, 16)
MAX_ANSWER_TOKENS = 160
BATCH = 16


def _key(model_identity: str, layers: Sequence[int], question: str, answer: str) -> str:
    h = hashlib.sha256()
    for part in (model_identity, ",".join(map(str, layers)), str(MAX_ANSWER_TOKENS), question, answer):
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
        return np.load(p) if p.exists() else None

    def put(self, key: str, value: np.ndarray) -> None:
        p = self.root / key[:2] / f"{key}.npy"
        p.parent.mkdir(exist_ok=True)
        tmp = p.with_suffix(".tmp.npy")
        np.save(tmp, value.astype(np.float32))
        tmp.replace(p)


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


def pair_features(
    model,
    tokenizer,
    model_identity: str,
    pairs: Sequence[tuple[str, str]],
    layers: Sequence[int] = DEFAULT_LAYERS,
    cache: FeatureCache | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """(len(pairs), len(layers) * hidden) float32 features; cached pairs are not recomputed."""
    import torch

    keys = [_key(model_identity, layers, q, a) for q, a in pairs]
    out: list[np.ndarray | None] = [cache.get(k) if cache else None for k in keys]
    if progress:
        progress(sum(o is not None for o in out))
    todo = [i for i, o in enumerate(out) if o is None]
    encoded = {i: _encode(tokenizer, *pairs[i]) for i in todo}
    todo.sort(key=lambda i: len(encoded[i][0]))  # length bucketing: little padding per batch
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(todo), BATCH):
        chunk = todo[start : start + BATCH]
        width = max(len(encoded[i][0]) for i in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        answer_mask = torch.zeros((len(chunk), width), dtype=torch.float32)
        for row, i in enumerate(chunk):
            toks, a0 = encoded[i]
            ids[row, : len(toks)] = torch.tensor(toks)  # right padding: positions start at 0 for everyone
            mask[row, : len(toks)] = 1
            answer_mask[row, a0 : len(toks)] = 1
        with _Truncated(model, max(layers)), torch.inference_mode(), \
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=model.device.type == "cpu"):
            hidden = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        weights = answer_mask / answer_mask.sum(1, keepdim=True).clamp(min=1)
        feats = torch.cat([(hidden[layer].float() * weights.unsqueeze(-1)).sum(1) for layer in layers], dim=-1)
        for row, i in enumerate(chunk):
            out[i] = feats[row].numpy()
            if cache:
                cache.put(keys[i], out[i])
        if progress:
            progress(len(chunk))
    return np.stack(out).astype(np.float32)
