"""A chat model sampled under a steering or ablation intervention, with the intervention in its identity.

An eval-time variant of a condition (`interventions:` in a config) samples the same local model with a
direction added or projected out (`steering.py`). Its answers must never be read back as the plain model's, so
the identity every sample key is built from is the model's identity plus the intervention's (direction hash,
layer, alpha); its seeds stay the plain model's (`seed_identity`, see `evals/sampling.py`). The weights load
only when a sample is missing, like any `LazyModel`.
"""

from __future__ import annotations

import contextlib
from typing import Callable

from emlab.errors import ModelSpecError
from emlab.models.registry import LazyModel
from emlab.models.steering import intervene

LOCAL_BACKENDS = ("embedded", "hf")  # the backends whose forward passes emlab can hook


class IntervenedModel:
    """`inner` (a ChatModel) whose every generate call runs inside `intervene(loaded model, intervention)`."""

    def __init__(self, inner, intervention, load: Callable[[], object] | None = None):
        self.inner, self.intervention = inner, intervention
        self._load = load or (lambda: inner._model() if isinstance(inner, LazyModel) else inner)
        self.spec = getattr(inner, "spec", None)
        self.identity = f"{inner.identity}|{intervention.identity}"
        self.seed_identity = inner.identity  # the plain model's seeds: steering by zero gives its very answers

    def generate(self, conversations, params, progress=None):
        model = self._load()
        with contextlib.ExitStack() as stack:
            try:  # the direction's size and layer are checked against the model here
                stack.enter_context(intervene(model, self.intervention))
            except ValueError as e:
                raise ModelSpecError(f"{self.spec}: cannot apply {self.intervention.identity}: {e}") from None
            return model.generate(conversations, params, progress)
