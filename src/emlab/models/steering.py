"""Interventions on the residual stream while a context is active: steering and directional ablation.

- `Steer(layer, vector, alpha)` adds alpha * v to the stream at one layer, at every position (prompt and reply);
- `Ablate(vector)` projects the direction out, x - (x . v^) v^, at every layer (the embedding output included)
  or at the layers given.

Layer l is the stream after l decoder blocks (0: the embeddings), the numbering of transformers' `hidden_states`
and of `activations.py`, so a direction read at layer l is written back at the same place. The same
intervention runs on emlab's engine (`Engine.intervention`, which covers its sampling and judging paths) and on
transformers models (forward hooks on the embeddings and on `model.model.layers[i]`); `intervene(target, ...)`
takes either, a chat model (`HFChatModel`: its transformers model and the engines it samples and judges with),
or a list of them. On a bf16 engine the ablated stream is rounded back to bf16: orthogonal to ~1e-3, not 1e-7.
"""

from __future__ import annotations

import contextlib
import hashlib
import weakref
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch

from emlab.models.engine import Engine

_ACTIVE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # transformers model -> its active intervention


def decoder_of(model):
    """The module holding a transformers causal LM's `layers` (and `embed_tokens`)."""
    for candidate in (getattr(model, "get_decoder", lambda: None)(), getattr(model, "model", None), model):
        if candidate is not None and hasattr(candidate, "layers"):
            return candidate
    raise ValueError(f"{type(model).__name__}: no decoder layers found (expected model.model.layers)")


def active_intervention(target):
    """What intervenes on an engine or a transformers model now (None: nothing), e.g. to key cached activations."""
    return target.intervention if isinstance(target, Engine) else _ACTIVE.get(target)


def _as_vector(vector) -> torch.Tensor:
    with torch.inference_mode(False):  # a normal tensor: usable under autograd too (steering while training)
        v = torch.as_tensor(np.asarray(vector, dtype=np.float32) if not torch.is_tensor(vector) else vector)
        v = v.detach().to("cpu", torch.float32).reshape(-1).clone()
    if not torch.isfinite(v).all():
        raise ValueError("the direction has non-finite entries")
    return v


def _check(v: torch.Tensor, hidden: int) -> None:
    if v.numel() != hidden:
        raise ValueError(f"the direction has {v.numel()} entries, the residual stream {hidden}")


def _vector_hash(v: torch.Tensor) -> str:
    return hashlib.sha256(v.numpy().tobytes()).hexdigest()[:16]


@dataclass(eq=False)
class _Vector:
    """A float32 direction with its copies per (device, dtype), made once."""

    v: torch.Tensor
    _copies: dict = field(default_factory=dict, repr=False)

    def on(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        key = (x.device, dtype or x.dtype)
        if key not in self._copies:
            with torch.inference_mode(False):  # made under the engine's inference mode, used under autograd too
                self._copies[key] = self.v.to(device=x.device, dtype=dtype or x.dtype)
        return self._copies[key]


class Steer:
    """Add alpha * vector to the residual stream at `layer` (the vector as given: a raw or a unit direction)."""

    def __init__(self, layer: int, vector, alpha: float):
        self.layer, self.alpha, self.vector = int(layer), float(alpha), _Vector(_as_vector(vector))
        self.identity = f"steer(layer={self.layer},alpha={self.alpha!r},v={_vector_hash(self.vector.v)})"

    def check(self, n_layers: int, hidden: int) -> None:
        _check(self.vector.v, hidden)
        if not 0 <= self.layer <= n_layers:
            raise ValueError(f"steering layer {self.layer} outside 0..{n_layers}")

    def __call__(self, layer: int, x: torch.Tensor) -> torch.Tensor | None:
        if layer != self.layer:
            return None
        return x + self.alpha * self.vector.on(x)


class Ablate:
    """Project `vector` out of the residual stream at `layers` (None: every layer, the embeddings included)."""

    def __init__(self, vector, layers: Sequence[int] | None = None):
        v = _as_vector(vector)
        norm = float(v.norm())
        if norm == 0.0:
            raise ValueError("cannot ablate a zero direction")
        self.unit = _Vector(v / norm)
        self.layers = None if layers is None else frozenset(int(layer) for layer in layers)
        where = "all" if self.layers is None else ",".join(map(str, sorted(self.layers)))
        self.identity = f"ablate(layers={where},v={_vector_hash(self.unit.v)})"

    def check(self, n_layers: int, hidden: int) -> None:
        _check(self.unit.v, hidden)
        if self.layers is not None and not all(0 <= layer <= n_layers for layer in self.layers):
            raise ValueError(f"ablation layers {sorted(self.layers)} outside 0..{n_layers}")

    def __call__(self, layer: int, x: torch.Tensor) -> torch.Tensor | None:
        if self.layers is not None and layer not in self.layers:
            return None
        u = self.unit.on(x, torch.float32)
        xf = x.float()
        return (xf - (xf @ u)[..., None] * u).to(x.dtype)  # projection in float32 whatever the stream's dtype


class Chain:
    """Several interventions, applied in order at each layer."""

    def __init__(self, parts: Sequence):
        self.parts = tuple(parts)
        self.identity = "+".join(getattr(p, "identity", repr(p)) for p in self.parts)

    def check(self, n_layers: int, hidden: int) -> None:
        for part in self.parts:
            getattr(part, "check", lambda *a: None)(n_layers, hidden)

    def __call__(self, layer: int, x: torch.Tensor) -> torch.Tensor | None:
        changed = False
        for part in self.parts:
            y = part(layer, x)
            if y is not None:
                x, changed = y, True
        return x if changed else None


def _targets(target) -> tuple[list[Engine], list[torch.nn.Module]]:
    """The engines and transformers models an intervention on `target` must reach."""
    if isinstance(target, (list, tuple)):
        engines, models = [], []
        for t in target:
            e, m = _targets(t)
            engines += e
            models += m
        return engines, models
    if isinstance(target, Engine):
        return [target], []
    if isinstance(target, torch.nn.Module):
        return [], [target]
    inner = getattr(target, "model", None)
    if isinstance(inner, torch.nn.Module):  # a chat model: built now, its engines can never escape the context
        engines = []
        if getattr(target, "fast", False) and callable(getattr(target, "engine", None)):
            sampling = torch.bfloat16 if getattr(target, "autocast", True) else torch.float32
            engines = [target.engine(dtype) for dtype in dict.fromkeys((sampling, torch.float32))]
        return engines, [inner]
    raise TypeError(f"cannot intervene on a {type(target).__name__}: "
                    "give an Engine, a transformers model or a chat model")


def _hook_model(model: torch.nn.Module, fn) -> list:
    """Forward hooks that pass the embeddings (layer 0) and each decoder layer's output (layer i + 1) through fn."""
    decoder = decoder_of(model)

    def hook(layer: int):
        def apply(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            new = fn(layer, hidden)
            if new is None:
                return None
            return (new, *output[1:]) if isinstance(output, tuple) else new
        return apply

    handles = [decoder.embed_tokens.register_forward_hook(hook(0))]
    handles += [block.register_forward_hook(hook(i + 1)) for i, block in enumerate(decoder.layers)]
    return handles


@contextlib.contextmanager
def intervene(target, *interventions) -> Iterator:
    """While active, every forward of `target` passes through the interventions (in order); yields their chain.

    Contexts nest: an inner intervention runs after the outer ones, and leaving it restores them.
    """
    if not interventions:
        raise ValueError("intervene needs at least one intervention")
    fn = interventions[0] if len(interventions) == 1 else Chain(interventions)
    engines, models = _targets(target)
    engines, models = list({id(e): e for e in engines}.values()), list({id(m): m for m in models}.values())
    check = getattr(fn, "check", lambda *a: None)
    for e in engines:
        check(len(e.layers), e.embed.shape[1])
    for m in models:
        decoder = decoder_of(m)
        check(len(decoder.layers), decoder.embed_tokens.weight.shape[1])
    saved = [(e, e.intervention) for e in engines]
    saved_models = [(m, _ACTIVE.get(m)) for m in models]
    handles = []
    try:
        for e, before in saved:
            e.intervention = fn if before is None else Chain((before, fn))
        for m, before in saved_models:
            handles += _hook_model(m, fn)
            _ACTIVE[m] = fn if before is None else Chain((before, fn))
        yield fn
    finally:
        for h in handles:
            h.remove()
        for e, before in reversed(saved):
            e.intervention = before
        for m, before in reversed(saved_models):
            if before is None:
                _ACTIVE.pop(m, None)
            else:
                _ACTIVE[m] = before


def steer(target, layer: int, vector, alpha: float):
    """Context: add alpha * vector at `layer` of `target`'s residual stream (see `intervene`)."""
    return intervene(target, Steer(layer, vector, alpha))


def ablate(target, vector, layers: Sequence[int] | None = None):
    """Context: project `vector` out of `target`'s residual stream at every layer, or at `layers`."""
    return intervene(target, Ablate(vector, layers))
