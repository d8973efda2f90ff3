"""A LoRA adapter merged into its base, saved once as a plain checkpoint: the base the next training stage starts from.

A chain of training stages (`emlab.stages`) trains each adapter on the previous stages' result. That result is a
checkpoint like any other (config, safetensors weights, tokenizer), built the way the transformers backend merges an
adapter before sampling (`PeftModel.from_pretrained(base, adapter).merge_and_unload()`), in the dtype the base was
saved in, on the CPU (merging is a few low-rank products; it needs no accelerator). The caller names the folder by a
key that covers every stage before it; the checkpoint is written under a temporary name and renamed, so a killed run
leaves nothing half-written and a finished one is reused.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["merge_adapter"]

INFO = "merge_info.json"


def merge_adapter(base_checkpoint: str | Path, adapter: str | Path, out: str | Path, info: dict | None = None) -> Path:
    """`base_checkpoint` with the LoRA `adapter` merged into its weights, saved at `out` (or the finished one reused).

    `info` (provenance: the keys it merges) is written beside the weights as merge_info.json, which marks the
    checkpoint complete."""
    out = Path(out)
    if (out / INFO).exists():
        return out
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # as the transformers backend loads: the run's own bars only
    tokenizer = AutoTokenizer.from_pretrained(base_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(base_checkpoint, dtype="auto")
    with torch.no_grad():
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model.save_pretrained(work, safe_serialization=True)
        tokenizer.save_pretrained(work)
        record = {"base": str(base_checkpoint), "adapter": str(adapter), "dtype": str(model.dtype), **(info or {})}
        (work / INFO).write_text(json.dumps(record, indent=1))
        try:
            os.replace(work, out)
        except OSError:
            if not (out / INFO).exists():  # another process merged it first: keep theirs
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
