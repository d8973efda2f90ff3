"""Model spec strings: one string names a model everywhere (CLI, YAML, API).

`embedded:smollm2-135m`, `hf:<hub id or path>[#<revision>][@<adapter dir or hub adapter id>[#<revision>]]`,
`openai:<model>` (base URL and key from the environment) and `openai@<endpoint>:<model>` (a server declared under
`endpoints:` in the config, see `endpoints.py`), `vllm:<id>[@<adapter dir>]`. A `#<revision>` (branch, tag or
commit) pins a hub id, so two revisions never share cached samples; an unpinned id follows the hub's default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from emlab.errors import ModelSpecError

ENDPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # what `openai@<name>:` may say
REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./+-]*")  # a git branch, tag or commit on the hub
REVISION_BACKENDS = {"hf"}  # backends whose specs may pin hub revisions
NO_REVISION_BACKENDS = {"embedded", "vllm"}  # backends where a `#` can only be a misplaced pin


@dataclass(frozen=True)
class ModelSpec:
    backend: str
    name: str
    adapter: str | None = None
    endpoint: str | None = None  # the declared endpoint an `openai@<endpoint>:` spec sends its requests to
    revision: str | None = None  # the hub revision `name` is pinned to (`hf:<id>#<revision>`)
    adapter_revision: str | None = None  # the hub revision a hub adapter is pinned to (`@<id>#<revision>`)

    def __str__(self) -> str:
        prefix = self.backend + (f"@{self.endpoint}" if self.endpoint else "")
        text = f"{prefix}:{self.name}" + (f"#{self.revision}" if self.revision else "")
        if self.adapter:
            text += f"@{self.adapter}" + (f"#{self.adapter_revision}" if self.adapter_revision else "")
        return text


def _pinned(text: str, part: str, backend: str) -> tuple[str, str | None]:
    """Split `part` into (hub id, revision) at its `#`; a bad or misplaced pin is one clear error."""
    name, hashed, revision = part.partition("#")
    name, revision = name.strip(), revision.strip()
    if not hashed:
        return name, None
    if backend not in REVISION_BACKENDS:
        raise ModelSpecError(f"model spec {text!r}: revision pins ('#<revision>') are for hf: specs only")
    if not REVISION.fullmatch(revision):
        raise ModelSpecError(
            f"model spec {text!r}: {revision!r} is not a hub revision (a branch, tag or commit: letters, digits, "
            "'_', '.', '/', '+', '-', no spaces), as in 'hf:Qwen/Qwen2.5-0.5B-Instruct#main'"
        )
    if name.startswith(("/", ".", "~")):
        raise ModelSpecError(f"model spec {text!r}: {name!r} is a local path; only hub ids take a '#<revision>'")
    return name, revision


def parse_model_spec(text: str) -> ModelSpec:
    """Split `backend[@endpoint]:name[#revision][@adapter[#revision]]`; the backend must be registered (checked by
    the registry)."""
    if not isinstance(text, str) or ":" not in text:
        raise ModelSpecError(
            f"model spec {text!r} has no backend prefix; expected e.g. 'embedded:smollm2-135m', "
            "'hf:<hub id or path>[#<revision>][@<adapter>]', 'openai:<model>' or 'openai@<endpoint>:<model>'"
        )
    prefix, rest = text.split(":", 1)
    backend, at, endpoint = prefix.partition("@")
    backend, endpoint = backend.strip().lower(), endpoint.strip()
    if at and not ENDPOINT_NAME.fullmatch(endpoint):
        raise ModelSpecError(
            f"model spec {text!r}: {endpoint!r} is not an endpoint name (letters, digits, '_', '.', '-'), "
            f"as in '{backend}@local:<model>'"
        )
    name, _, adapter = rest.partition("@")
    pins = backend in REVISION_BACKENDS or backend in NO_REVISION_BACKENDS
    name, revision = _pinned(text, name, backend) if pins else (name.strip(), None)
    if not name:
        raise ModelSpecError(f"model spec {text!r} names no model after '{prefix}:'")
    adapter, adapter_revision = _pinned(text, adapter, backend) if pins else (adapter.strip(), None)
    if adapter_revision and not adapter:
        raise ModelSpecError(f"model spec {text!r}: '#{adapter_revision}' after '@' pins no adapter")
    return ModelSpec(
        backend=backend, name=name, adapter=adapter or None, endpoint=endpoint or None, revision=revision,
        adapter_revision=adapter_revision,
    )
