"""`quantize: 4bit | 8bit` (the experiment config's top-level key): local base weights through bitsandbytes.

For base models that do not fit a GPU's memory in bf16 (a 32B model needs ~65 GB; in 4 bits ~18 GB). `4bit` is
NF4 with double quantization and bf16 compute (the QLoRA recipe), `8bit` is LLM.int8(). Quantized weights change
what a model says, so the setting is part of every local model's identity (`identity_suffix`): answers, scores and
adapters of a quantized model are never mixed up with those of the full-precision one. Training on a quantized base
is QLoRA: peft's `prepare_model_for_kbit_training`, float32 LoRA weights over the frozen quantized ones; a trained
adapter is applied unmerged (merging into 4-bit weights would round most of a small LoRA update away).

bitsandbytes runs on CUDA, and (slowly) on the CPU since 0.46, which is what the tests use. Like the device, the
run's setting is held here (`use_quantization`, set by the plan) and read by the loaders.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from emlab.errors import ConfigError

Quantize = Literal["4bit", "8bit"]
_SETTING: list[str | None] = [None]


def use_quantization(value: str | None) -> None:
    """Set the run's quantization for every local model loaded from now on; ConfigError when bitsandbytes is missing."""
    if value not in (None, "4bit", "8bit"):
        raise ConfigError(f"quantize: {value!r} is not one of 4bit, 8bit")
    if value is not None and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(f"quantize: {value} needs the package bitsandbytes (pip install 'bitsandbytes>=0.46'); "
                          "or leave quantize out for full-precision weights")
    _SETTING[0] = value


def current_quantization() -> str | None:
    """The run's quantization: '4bit', '8bit' or None (full precision)."""
    return _SETTING[0]


def identity_suffix(value: str | None = None) -> str:
    """What a quantized model's identity adds to its spec ('' at full precision): answers depend on it."""
    value = value if value is not None else current_quantization()
    return f"+bnb-{value}" if value else ""


def quantization_kwargs(device: str) -> dict:
    """`from_pretrained` arguments that quantize the weights as they load ({} at full precision)."""
    value = current_quantization()
    if value is None:
        return {}
    import torch
    from transformers import BitsAndBytesConfig

    if value == "4bit":
        config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                    bnb_4bit_compute_dtype=torch.bfloat16)
    else:
        config = BitsAndBytesConfig(load_in_8bit=True)
    return {"quantization_config": config, "device_map": device}


def is_quantized(model) -> bool:
    """Whether a loaded transformers model holds bitsandbytes weights."""
    return bool(getattr(model, "is_quantized", False) or getattr(model, "is_loaded_in_4bit", False)
                or getattr(model, "is_loaded_in_8bit", False))
