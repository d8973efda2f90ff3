"""Residual-stream activations of (conversation, answer) pairs, per layer, cached on disk by content hash.

What persona directions are made of (Soligo, Turner et al. 2025): the residual stream after chosen layers,
pooled per pair at a position — the mean over the answer's tokens, the last prompt token, or any token
counted from where the answer starts. A pair is rendered as the model saw it while answering: the
conversation through the chat template with the generation prompt, then the answer's own tokens (no end-of-turn
tokens, which carry no answer). Each pair runs alone, unpadded, so no other row can move its numbers.

Layers are numbered like transformers' `hidden_states` and `Engine.residual_stream`: layer l is the stream
after l decoder blocks, 1 <= l < number of layers (the last one is normalized by transformers). Llama-family
models on the CPU run on emlab's engine (float32 by default: equal to a plain forward), any other model (and
every model on a GPU) through forward hooks on its decoder layers, on `model.device`. An intervention
(`steering.py`) active on the model or on the engine used acts on what is collected, and its identity is part
of the cache key, so steered or ablated activations are never read back as plain ones.
"""

from __future__ import annotations

import weakref
from typing import Callable, Sequence, Union

import numpy as np
import torch

from emlab.data.conversations import Conversation
from emlab.hashing import content_hash
from emlab.models.engine import Engine, unsupported_reason
from emlab.models.steering import active_intervention, decoder_of

ACTIVATION_VERSION = 1  # bump when what a cached vector holds changes
NAMED_POSITIONS = ("answer_mean", "prompt_mean", "prompt_last", "answer_first", "answer_last")
Position = Union[str, int]  # a name above, or k: the token at (answer start + k), so -1 is the last prompt token
Pair = tuple[Union[str, Conversation], str]  # (question or conversation without the answer, answer)


def position_name(position: Position) -> str:
    """The canonical name of a position (an int k becomes "token:k"); ValueError for an unknown one."""
    if isinstance(position, (int, np.integer)) and not isinstance(position, bool):
        return f"token:{int(position)}"
    if isinstance(position, str):
        if position in NAMED_POSITIONS:
            return position
        if position.startswith("token:") and position[6:].lstrip("-").isdigit():
            return f"token:{int(position[6:])}"
    raise ValueError(f"unknown position {position!r}: one of {', '.join(NAMED_POSITIONS)}, "
                     "or an int k (the token at answer start + k)")


def as_conversation(conversation: str | Conversation) -> Conversation:
    """A bare question is the user turn of a one-turn conversation (both spell the same cache key)."""
    return [{"role": "user", "content": conversation}] if isinstance(conversation, str) else list(conversation)


def encode_pair(tokenizer, conversation: str | Conversation, answer: str,
                max_answer_tokens: int | None = None) -> tuple[list[int], int]:
    """Token ids of prompt + answer, and where the answer starts."""
    prompt = tokenizer.apply_chat_template(as_conversation(conversation), add_generation_prompt=True, tokenize=True,
                                           return_dict=False)
    answer_ids = tokenizer.encode(answer, add_special_tokens=False)[:max_answer_tokens]
    return list(prompt) + list(answer_ids), len(prompt)


def pool(stream: torch.Tensor, start: int, position: Position) -> torch.Tensor:
    """[L, H] from the stream [L, T, H] of one pair whose answer starts at `start`."""
    name, steps = position_name(position), stream.shape[1]
    if name.startswith("answer") and start >= steps:
        raise ValueError(f"position {name!r} needs answer tokens, and this answer has none")
    if name == "answer_mean":
        return stream[:, start:].mean(1)
    if name == "prompt_mean":
        return stream[:, :start].mean(1)
    index = {"prompt_last": start - 1, "answer_first": start, "answer_last": steps - 1}.get(name)
    if index is None:
        index = start + int(name[6:])
    if not 0 <= index < steps:
        raise ValueError(f"position {name!r} is token {index}, outside this pair's {steps} tokens")
    return stream[:, index]


class _Stop(Exception):
    """Raised by the deepest hook: the layers after it feed nothing collected."""


def _hooked_stream(model, tokens: Sequence[int], layers: Sequence[int]) -> torch.Tensor:
    """[L, T, H] float32 outputs of the decoder layers, on the model's device (the forward stops after the deepest)."""
    blocks, got, deepest = decoder_of(model).layers, {}, max(layers)

    def hook(layer: int):
        def keep(module, args, output):
            got[layer] = (output[0] if isinstance(output, tuple) else output)[0].float()
            if layer == deepest:
                raise _Stop
        return keep

    handles = [blocks[layer - 1].register_forward_hook(hook(layer)) for layer in set(layers)]
    try:
        with torch.inference_mode():
            model(input_ids=torch.tensor([list(tokens)], dtype=torch.long, device=model.device), use_cache=False)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    return torch.stack([got[layer] for layer in layers])


_ENGINES: "weakref.WeakKeyDictionary[torch.nn.Module, dict[torch.dtype, Engine]]" = weakref.WeakKeyDictionary()


def engine_for(model, dtype: torch.dtype = torch.float32) -> Engine | None:
    """emlab's engine for a Llama-family model on the CPU (built once per model and dtype), else None."""
    if model.device.type != "cpu" or unsupported_reason(model) is not None:
        return None
    engines = _ENGINES.setdefault(model, {})
    if dtype not in engines:
        engines[dtype] = Engine(model, dtype)
    return engines[dtype]


def residual_stream(model, tokens: Sequence[int], layers: Sequence[int], engine: Engine | None = None) -> torch.Tensor:
    """[len(layers), T, H] float32 residual stream of one sequence: on `engine` when given, else through hooks."""
    n = len(decoder_of(model).layers)
    if not layers or not all(0 < layer < n for layer in layers):
        raise ValueError(f"layers must lie in 1..{n - 1}, got {list(layers)}")
    if engine is not None:
        return engine.residual_stream(tokens, layers)
    return _hooked_stream(model, tokens, layers)


def activation_key(model_identity: str, layers: Sequence[int], position: Position, numerics: str,
                   conversation: str | Conversation, answer: str, max_answer_tokens: int | None,
                   intervention: str | None = None) -> str:
    """Cache key of one pooled vector: what it depends on and nothing else."""
    return content_hash([f"activations-v{ACTIVATION_VERSION}", model_identity, list(layers), position_name(position),
                         numerics, max_answer_tokens, as_conversation(conversation), answer, intervention], 32)


def collect_positions(
    model, tokenizer, model_identity: str, pairs: Sequence[Pair], layers: Sequence[int],
    positions: Sequence[Position] = ("answer_mean",), cache=None, engine: Engine | None | str = "auto",
    dtype: torch.dtype = torch.float32, max_answer_tokens: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Position name -> (len(pairs), len(layers), H) float32 activations: one forward per pair not yet cached.

    `cache` is an `evals.features.FeatureCache`-like store (get/put by key); `engine` "auto" picks `engine_for`
    (model, dtype), None forces the hooked forward, an `Engine` is used as given.
    """
    layers, names = [int(layer) for layer in layers], [position_name(p) for p in positions]
    if engine == "auto":
        engine = engine_for(model, dtype)
    numerics = f"engine-{str(engine.dtype).removeprefix('torch.')}" if isinstance(engine, Engine) else \
        f"transformers-{str(model.dtype).removeprefix('torch.')}"
    active = active_intervention(engine if isinstance(engine, Engine) else model)
    intervention = None if active is None else getattr(active, "identity", None)
    if active is not None and intervention is None and cache is not None:
        raise ValueError("an intervention without an `identity` is active: its activations cannot be cached")
    out: dict[str, list[np.ndarray | None]] = {name: [None] * len(pairs) for name in names}
    done: dict[str, np.ndarray] = {}
    for i, (conversation, answer) in enumerate(pairs):
        keys = {n: activation_key(model_identity, layers, n, numerics, conversation, answer, max_answer_tokens,
                                  intervention) for n in names}
        missing = []
        for name, key in keys.items():
            value = done.get(key)
            if value is None and cache is not None:
                value = cache.get(key)
            if value is None:
                missing.append(name)
            else:
                out[name][i] = done.setdefault(key, value)
        if missing:
            tokens, start = encode_pair(tokenizer, conversation, answer, max_answer_tokens)
            stream = residual_stream(model, tokens, layers, engine)
            for name in missing:
                value = pool(stream, start, name).cpu().numpy().astype(np.float32)
                out[name][i] = done[keys[name]] = value
                if cache is not None:
                    cache.put(keys[name], value)
        if progress:
            progress(1)
    width = len(layers)
    return {name: np.stack(rows) if rows else np.zeros((0, width, 0), np.float32) for name, rows in out.items()}


def collect_activations(model, tokenizer, model_identity: str, pairs: Sequence[Pair], layers: Sequence[int],
                        position: Position = "answer_mean", **kwargs) -> np.ndarray:
    """(len(pairs), len(layers), H) float32 activations at one position; see `collect_positions`."""
    got = collect_positions(model, tokenizer, model_identity, pairs, layers, (position,), **kwargs)
    return got[position_name(position)]
