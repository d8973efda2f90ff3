"""Hugging Face hub names in model specs: revision pins, hub adapters, and the base an adapter was trained on.

A spec names local folders or hub ids; a hub id is resolved (downloaded, or read from the local HF cache when
HF_HUB_OFFLINE is set) only when the model is loaded, never when a plan is checked. Adapters are resolved to a
local folder first, so a hub adapter has the same identity (its weights' hash) as a local copy of it. Adapters
that emlab trains record their base by the portable name `portable_base` gives, not this machine's folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from emlab.errors import ModelSpecError
from emlab.models.spec import ModelSpec

ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"]
# a pinned base model for training: the files transformers reads, top level only (no `original/` or onnx copies)
CHECKPOINT_FILES = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.py", "*.jinja"]
CHECKPOINT_SKIP = ["*/*", "consolidated*"]  # subfolders; Mistral's second copy of the weights
MIRROR_SUFFIXES = ("-unsloth-bnb-4bit", "-bnb-4bit", "-unsloth")  # re-uploads of one model under another name


def looks_local(text: str) -> bool:
    """A path a user wrote (starts with / . ~, or exists here), as opposed to a hub id."""
    return text.startswith(("/", ".", "~")) or Path(text).expanduser().exists()


def is_hub_id(text: str, owner: bool = False) -> bool:
    """A valid hub repo id that is not a local path (`owner`: it must read `org/name`)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if looks_local(text) or (owner and text.count("/") != 1):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return constants.is_offline_mode() or value in {"1", "ON", "YES", "TRUE"}


def _named(repo: str, revision: str | None) -> str:
    return repo + (f"#{revision}" if revision else "")


def hub_adapter_cached(repo: str, revision: str | None) -> bool:
    """Whether the local HF cache holds the adapter's config (no network)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, "adapter_config.json", revision=revision), str)


def resolve_adapter(adapter: str, revision: str | None = None) -> Path:
    """The local folder of an adapter: a directory as written, or a hub adapter's snapshot (downloaded when asked for)."""
    if not is_hub_id(adapter, owner=True):
        path = Path(adapter).expanduser()
        if not path.is_dir():
            raise ModelSpecError(f"adapter directory not found: {adapter}")
        return path
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    offline = hub_offline()
    try:
        folder = huggingface_hub.snapshot_download(
            adapter, revision=revision, allow_patterns=ADAPTER_FILES, local_files_only=offline
        )
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise ModelSpecError(f"hub adapter {_named(adapter, revision)} not found: {str(e).splitlines()[0]}") from None
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE is set and it is not in the local HF cache" if offline else "the hub cannot be reached"
        raise ModelSpecError(f"hub adapter {_named(adapter, revision)}: {why}") from None
    except (HfHubHTTPError, OSError) as e:
        raise ModelSpecError(f"hub adapter {_named(adapter, revision)}: {str(e).splitlines()[0]}") from None
    path = Path(folder)
    if not (path / "adapter_config.json").exists():
        raise ModelSpecError(f"hub adapter {_named(adapter, revision)} has no adapter_config.json (not a PEFT adapter)")
    return path


def hub_checkpoint(repo: str, revision: str) -> str:
    """A pinned hub model's local snapshot folder, for code that takes a checkpoint path (training)."""
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline = hub_offline()
    try:
        folder = huggingface_hub.snapshot_download(
            repo, revision=revision, allow_patterns=CHECKPOINT_FILES, ignore_patterns=CHECKPOINT_SKIP,
            local_files_only=offline,
        )
        if not any(Path(folder).glob("*.safetensors")):  # an old repo with pytorch_model*.bin only
            folder = huggingface_hub.snapshot_download(
                repo, revision=revision, allow_patterns=["*.bin"], ignore_patterns=CHECKPOINT_SKIP,
                local_files_only=offline,
            )
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE is set and it is not in the local HF cache" if offline else "the hub cannot be reached"
        raise ModelSpecError(f"model {_named(repo, revision)}: {why}") from None
    except (HfHubHTTPError, OSError) as e:
        raise ModelSpecError(f"model {_named(repo, revision)}: {str(e).splitlines()[0]}") from None
    return folder


def _config_name(folder: Path, filename: str, key: str) -> str | None:
    """A name recorded in a checkpoint's JSON file, or None when there is none."""
    try:
        value = json.loads((folder / filename).read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def hub_name_of(name: str | None) -> str | None:
    """The hub id a base name stands for: itself, or the `_name_or_path` of a local checkpoint; None if unknown."""
    if not name:
        return None
    if is_hub_id(name):
        return name
    recorded = _config_name(Path(name).expanduser(), "config.json", "_name_or_path")
    return recorded if recorded and is_hub_id(recorded) else None


def model_name(hub_id: str) -> str:
    """A hub id's model, whoever uploads it: `unsloth/qwen2.5-14B-Instruct` (how the EM papers' adapters record their
    base) is `Qwen/Qwen2.5-14B-Instruct`; unsloth's re-upload suffixes are dropped."""
    name = hub_id.rsplit("/", 1)[-1].lower()
    for suffix in MIRROR_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def check_adapter_base(adapter_dir: Path, adapter: str, base_hub_id: str | None, base: str) -> None:
    """Refuse an adapter whose adapter_config.json names another base than the spec's (the same model name under
    another org is a mirror; lenient when either base is unknown)."""
    trained_on = _config_name(adapter_dir, "adapter_config.json", "base_model_name_or_path")
    theirs = hub_name_of(trained_on)
    if theirs is None or base_hub_id is None or model_name(theirs) == model_name(base_hub_id):
        return
    raise ModelSpecError(f"adapter {adapter} was trained on base {trained_on}, the spec's base is {base}")


def portable_base(spec: ModelSpec) -> tuple[str | None, str | None]:
    """The base name (and pinned revision) an adapter trained on `spec` records: the hub id of an `hf:` hub model or
    of the embedded model's upstream, so the name means the same on every machine; (None, None) for a local
    checkpoint, which keeps its path."""
    if spec.backend == "embedded":
        from emlab.models.embedded import upstream_id

        return upstream_id(spec.name), None
    if spec.backend in ("hf", "vllm") and is_hub_id(spec.name):
        return spec.name, spec.revision
    return None, None


def training_checkpoint(spec: ModelSpec) -> str:
    """What a trainer loads for `spec`'s base: the embedded model's converted folder, a pinned hub revision's
    snapshot folder, a local directory, or an unpinned hub id (resolved by transformers)."""
    if spec.backend == "embedded":
        from emlab.models.embedded import embedded_checkpoint

        return str(embedded_checkpoint(spec.name))
    if spec.revision:
        return hub_checkpoint(spec.name, spec.revision)
    return str(Path(spec.name).expanduser()) if looks_local(spec.name) else spec.name
