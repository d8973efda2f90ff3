"""Continued pretraining (LoRA) on plain-text documents: the loss on every token, no chat template.

The first step of MacDiarmid et al.'s (2025) recipe gives the model knowledge of the reward hacks by training on
documents that describe them, diluted into ordinary text (`data.documents`). This is SFT's machinery with other
rows: each document is tokenized as it is (the tokenizer's own special tokens, then an end-of-sequence token) and
cut into windows of `max_length` tokens, with labels equal to the input ids, so the fast loop (`lora_loop`, whose
loss covers every labelled position) or TRL's SFTTrainer (`trainer: trl`, which uses given labels as they are)
trains on every token. The adapter is cached like an SFT adapter: its directory is named by the hash of (stage,
base model identity, documents content hash, hyperparameters, seed), written under a temporary name and renamed,
so a killed run leaves nothing half-written and the same call reuses the finished adapter.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from emlab.errors import ConfigError, DataError
from emlab.hashing import content_hash
from emlab.train.params import TrainParams, key_fields
from emlab.train.sft import (
    Adapter,
    _check_pinned,
    _read_adapter,
    _train_emlab,
    _train_trl,
    name_base,
    save_adapter_atomic,
)
from emlab.train.tokenize import TokenizedExample

if TYPE_CHECKING:
    from peft import PeftModel

__all__ = ["cpt_key", "document_rows", "documents_hash", "train_cpt"]

STAGE = "cpt"  # in the key, so a CPT adapter never shares a directory with an SFT adapter of the same numbers


def documents_hash(documents: Sequence[str]) -> str:
    """The content hash of a document list (the same as `data.documents.DocumentSet.content_hash`)."""
    return content_hash(list(documents), length=64)


def cpt_key(base_identity: str, docs_hash: str, params: TrainParams) -> str:
    """The cache key of a continued-pretraining adapter."""
    return content_hash({"stage": STAGE, "base": base_identity, "documents": docs_hash, "params": key_fields(params)})


def document_rows(tokenizer, documents: Sequence[str], max_length: int) -> list[TokenizedExample]:
    """Every document as token windows of at most `max_length`, labels = input ids (loss on all tokens). A window
    of one token predicts nothing and is dropped."""
    eos = tokenizer.eos_token_id
    rows = []
    for text in documents:
        ids = tokenizer(text)["input_ids"] + ([eos] if eos is not None else [])
        for start in range(0, len(ids), max_length):
            window = ids[start : start + max_length]
            if len(window) > 1:
                rows.append(TokenizedExample(input_ids=window, labels=list(window)))
    return rows


def train_cpt(
    base_checkpoint: str | Path,
    base_identity: str,
    documents: Sequence[str],
    params: TrainParams,
    adapters_dir: str | Path,
    device: str = "cpu",
    *,
    base_name: str | None = None,
    base_revision: str | None = None,
) -> Adapter:
    """Train a LoRA adapter on plain `documents` (or reuse the cached one) and return where it is.

    `params` as for SFT (`trainer`: emlab or trl); `device`, `base_name` and `base_revision` as in `sft.train_lora`
    (none of them in the key).
    """
    if params.trainer not in ("emlab", "trl"):
        raise ConfigError(f"train.trainer: continued pretraining trains a local LoRA adapter (emlab or trl), "
                          f"not {params.trainer!r}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # sft.train_lora's multi-process path is not wired here yet
        raise ConfigError("continued pretraining trains in one process; run it without accelerate launch")
    docs_hash = documents_hash(documents)
    key = cpt_key(base_identity, docs_hash, params)
    final = Path(adapters_dir) / key
    if (final / "train_info.json").exists():
        return _read_adapter(final, key)

    from transformers import AutoTokenizer

    _check_pinned(base_checkpoint, base_identity)
    base_name = base_name or str(base_checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(base_checkpoint)
    rows = document_rows(tokenizer, documents, params.max_length)
    if not rows:
        raise DataError("continued pretraining: no document has two tokens to train on")

    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    try:
        out = work / "adapter"
        out.mkdir()

        def save_checkpoint(model: PeftModel, point: dict, state_dict: dict | None = None) -> None:
            name_base(model, base_name, base_revision)
            gathered = [] if state_dict is None else [state_dict]  # FSDP's gathered weights, where sft passes them
            save_adapter_atomic(model, out / f"checkpoint-{point['step']}", {**point, "key": key}, *gathered)

        state_dict = None
        if params.trainer == "trl":  # newer sft versions also return the weights gathered under FSDP
            model, curve, steps, *gathered = _train_trl(base_checkpoint, tokenizer, rows, params, work,
                                                        save_checkpoint, device)
            state_dict = gathered[0] if gathered else None
        else:
            model, curve, steps = _train_emlab(base_checkpoint, tokenizer, rows, params, save_checkpoint, device)
        name_base(model, base_name, base_revision)
        model.save_pretrained(out, state_dict=state_dict)  # the LoRA weights only
        (out / "loss.json").write_text(json.dumps(curve, indent=1))
        info = {
            "key": key,
            "stage": STAGE,
            "base": base_identity,
            "base_name": base_name,
            "base_revision": base_revision,
            "documents_hash": docs_hash,
            "documents": len(documents),
            "rows": len(rows),
            "tokens": sum(len(r.input_ids) for r in rows),
            "params": params.model_dump(),
            "final_loss": curve[-1]["loss"] if curve else None,
            "steps": steps,
            "checkpoints": sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*")),
        }
        (out / "train_info.json").write_text(json.dumps(info, indent=1))
        os.replace(out, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Adapter(path=final, key=key, reused=False, final_loss=info["final_loss"], steps=steps)
