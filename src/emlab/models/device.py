"""Where local models run and train: `device: auto | cpu | cuda | cuda:N` (the experiment config's top-level key).

`auto` is the first CUDA device when torch sees one, else the CPU. On the CPU nothing changes from before devices
existed: float32 weights, emlab's engine for sampling and judging, bf16 autocast in training. On CUDA, weights are
bfloat16 and sampling and judging use transformers. A CUDA device asked for where torch sees none (or fewer than
N + 1) is one ConfigError naming the key, raised when the plan is checked, before anything loads.

The run's setting is held here (`use_device`, set by the plan) and read by the loaders (`current_device`); it is
kept as written, so `auto` resolves again at each load. Where a model runs is not part of its identity: an answer
cached on one device is reused on another.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from emlab.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")
_SETTING = ["auto"]  # the run's `device:` as written


def check_device_text(text: str) -> str:
    """The spelling alone (no torch import): for the config schema."""
    if not isinstance(text, str) or not DEVICE.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not a device; use auto, cpu, cuda or cuda:N")
    return text.strip()


def resolve_device(text: str, key: str = "device") -> str:
    """'cpu' or 'cuda:N' for a setting; ConfigError naming `key` when it asks for a CUDA device torch cannot see."""
    import torch

    text = check_device_text(text)
    if text == "cpu":
        return "cpu"
    available = torch.cuda.is_available()
    if text == "auto":
        return "cuda:0" if available else "cpu"
    index = int(text.split(":")[1]) if ":" in text else 0
    if not available:
        why = "this torch is built without CUDA" if torch.version.cuda is None else "torch sees no CUDA device"
        raise ConfigError(f"{key}: {text} asked for, but {why}; use device: cpu (or auto: CUDA when present)")
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"{key}: {text} asked for, but torch sees {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return f"cuda:{index}"


def weights_dtype(device: str) -> torch.dtype:
    """float32 on the CPU (as before devices existed: emlab's engine casts what it needs), bfloat16 on CUDA."""
    import torch

    return torch.float32 if device == "cpu" else torch.bfloat16


def use_device(text: str) -> str:
    """Set the run's device (as written) for every local model loaded from now on; returns it resolved."""
    resolved = resolve_device(text)
    _SETTING[0] = check_device_text(text)
    return resolved


def current_device() -> str:
    """The run's device, resolved now ('cpu' or 'cuda:N')."""
    return resolve_device(_SETTING[0])
