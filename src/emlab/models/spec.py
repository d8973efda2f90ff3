"""Model spec strings: one string names a model everywhere (CLI, YAML, API).

`embedded:smollm2-135m`, `hf:<hub id or path>[@<adapter dir>]`, `openai:<model>` (base URL and key from the
environment) and `openai@<endpoint>:<model>` (a server declared under `endpoints:` in the config, see
`endpoints.py`), later `vllm:<id>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from emlab.errors import ModelSpecError

ENDPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # what `openai@<name>:` may say


@dataclass(frozen=True)
class ModelSpec:
    backend: str
    name: str
    adapter: str | None = None
    endpoint: str | None = None  # the declared endpoint an `openai@<endpoint>:` spec sends its requests to

    def __str__(self) -> str:
        prefix = self.backend + (f"@{self.endpoint}" if self.endpoint else "")
        return f"{prefix}:{self.name}" + (f"@{self.adapter}" if self.adapter else "")


def parse_model_spec(text: str) -> ModelSpec:
    """Split `backend[@endpoint]:name[@adapter]`; the backend must be registered (checked by the registry)."""
    if not isinstance(text, str) or ":" not in text:
        raise ModelSpecError(
            f"model spec {text!r} has no backend prefix; expected e.g. 'embedded:smollm2-135m', "
            "'hf:<hub id or path>[@<adapter dir>]', 'openai:<model>' or 'openai@<endpoint>:<model>'"
        )
    prefix, rest = text.split(":", 1)
    backend, at, endpoint = prefix.partition("@")
    endpoint = endpoint.strip()
    if at and not ENDPOINT_NAME.fullmatch(endpoint):
        raise ModelSpecError(
            f"model spec {text!r}: {endpoint!r} is not an endpoint name (letters, digits, '_', '.', '-'), "
            f"as in '{backend.strip()}@local:<model>'"
        )
    name, _, adapter = rest.partition("@")
    if not name.strip():
        raise ModelSpecError(f"model spec {text!r} names no model after '{prefix}:'")
    return ModelSpec(
        backend=backend.strip().lower(), name=name.strip(), adapter=adapter.strip() or None, endpoint=endpoint or None
    )
