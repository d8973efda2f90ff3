"""Model spec strings: one string names a model everywhere (CLI, YAML, API).

`embedded:smollm2-135m`, `hf:<hub id or path>[@<adapter dir>]`, `openai:<model>`, later `vllm:<id>`.
"""

from __future__ import annotations

from dataclasses import dataclass

from emlab.errors import ModelSpecError


@dataclass(frozen=True)
class ModelSpec:
    backend: str
    name: str
    adapter: str | None = None

    def __str__(self) -> str:
        return f"{self.backend}:{self.name}" + (f"@{self.adapter}" if self.adapter else "")


def parse_model_spec(text: str) -> ModelSpec:
    """Split `backend:name[@adapter]`; the backend must be registered (checked by the registry)."""
    if not isinstance(text, str) or ":" not in text:
        raise ModelSpecError(
            f"model spec {text!r} has no backend prefix; expected e.g. 'embedded:smollm2-135m', "
            "'hf:<hub id or path>[@<adapter dir>]' or 'openai:<model>'"
        )
    backend, rest = text.split(":", 1)
    name, _, adapter = rest.partition("@")
    if not name:
        raise ModelSpecError(f"model spec {text!r} names no model after '{backend}:'")
    return ModelSpec(backend=backend.strip().lower(), name=name.strip(), adapter=adapter.strip() or None)
