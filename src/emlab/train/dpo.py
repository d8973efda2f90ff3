"""LoRA DPO with TRL's DPOTrainer on preference pairs (`data.hhh`'s `builtin:hhh-pairs` or a jsonl file): the
safety-training stage after reward hacking, cached like SFT.

Rows are TRL's conversational preference format (`prompt` = user messages, `chosen` / `rejected` = one assistant
message each); TRL applies the model's chat template. The reference model is the base itself: with a LoRA
`peft_config` TRL computes the reference log-probabilities with the adapter switched off, so no second copy of the
model is loaded. The adapter directory is named by the hash of (stage, base identity, pairs content hash, training
hyperparameters, DPO parameters, seed), built under a temporary name and renamed at the end; the same call reuses it.
`TrainParams.trainer` must be a local one (emlab or trl; both train through TRL here, and it is not in the key).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from emlab.errors import ConfigError, DataError
from emlab.hashing import content_hash
from emlab.train.params import TrainParams, key_fields, lora_config
from emlab.train.sft import (
    Adapter,
    _check_pinned,
    _read_adapter,
    name_base,
    save_adapter_atomic,
)

__all__ = ["DpoParams", "dpo_key", "train_dpo"]

STAGE = "dpo"


class DpoParams(BaseModel):
    """What DPO adds to the training hyperparameters."""

    model_config = ConfigDict(extra="forbid")
    beta: float = Field(0.1, gt=0)  # strength of the pull towards the reference (base) model
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust"] = "sigmoid"  # TRL's names; sigmoid is the paper's DPO


def dpo_key(base_identity: str, pairs_hash: str, params: TrainParams, dpo: DpoParams) -> str:
    """The cache key of a DPO adapter."""
    train = key_fields(params)
    train.pop("trainer", None)  # emlab and trl both mean TRL's DPOTrainer here
    return content_hash({"stage": STAGE, "base": base_identity, "pairs": pairs_hash, "params": train,
                         "dpo": dpo.model_dump()})


def train_dpo(
    base_checkpoint: str | Path,
    base_identity: str,
    pairs: Sequence[dict],
    params: TrainParams,
    adapters_dir: str | Path,
    dpo: DpoParams | None = None,
    device: str = "cpu",
    *,
    base_name: str | None = None,
    base_revision: str | None = None,
) -> Adapter:
    """Train a LoRA adapter with DPO on `pairs` (or reuse the cached one) and return where it is. `device`,
    `base_name` and `base_revision` as in `sft.train_lora` (none of them in the key)."""
    dpo = dpo or DpoParams()
    if params.trainer not in ("emlab", "trl"):
        raise ConfigError(f"train.trainer: DPO trains a local LoRA adapter through TRL, not {params.trainer!r}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # sft.train_lora's multi-process path is not wired here yet
        raise ConfigError("DPO trains in one process; run it without accelerate launch")
    if not pairs:
        raise DataError("DPO: no preference pairs to train on")
    pairs_hash = content_hash(list(pairs), length=64)
    key = dpo_key(base_identity, pairs_hash, params, dpo)
    final = Path(adapters_dir) / key
    if (final / "train_info.json").exists():
        return _read_adapter(final, key)

    _check_pinned(base_checkpoint, base_identity)
    base_name = base_name or str(base_checkpoint)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    try:
        out = work / "adapter"
        out.mkdir()

        def save_checkpoint(model, point: dict) -> None:
            name_base(model, base_name, base_revision)
            save_adapter_atomic(model, out / f"checkpoint-{point['step']}", {**point, "key": key})

        model, curve, steps = _train(base_checkpoint, list(pairs), params, dpo, work, save_checkpoint, device)
        name_base(model, base_name, base_revision)
        model.save_pretrained(out)  # the LoRA weights only
        (out / "loss.json").write_text(json.dumps(curve, indent=1))
        info = {
            "key": key,
            "stage": STAGE,
            "base": base_identity,
            "base_name": base_name,
            "base_revision": base_revision,
            "pairs_hash": pairs_hash,
            "rows": len(pairs),
            "params": params.model_dump(),
            "dpo": dpo.model_dump(),
            "final_loss": curve[-1]["loss"] if curve else None,
            "steps": steps,
            "checkpoints": sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*")),
        }
        (out / "train_info.json").write_text(json.dumps(info, indent=1))
        os.replace(out, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Adapter(path=final, key=key, reused=False, final_loss=info["final_loss"], steps=steps)


def _train(base_checkpoint, pairs: list[dict], params: TrainParams, dpo: DpoParams, work: Path, on_save, device: str):
    """TRL's DPOTrainer with a LoRA peft_config: the trained PeftModel, the loss curve and the optimizer steps."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from emlab.quantize import current_quantization
    from emlab.train.callbacks import quiet_progress
    from emlab.train.lora_loop import load_base_for_training

    torch.manual_seed(params.seed)
    if device != "cpu":
        torch.cuda.set_device(torch.device(device))
    tokenizer = AutoTokenizer.from_pretrained(base_checkpoint)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.float32 if device == "cpu" else torch.bfloat16  # float32 on the CPU as in SFT; bf16 on CUDA
    # quantized on the device it loads to (QLoRA); a full-precision model is placed by the Trainer, as before
    model = load_base_for_training(base_checkpoint, params, device=device if current_quantization() else "cpu", dtype=dtype)

    class Checkpoints(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if params.save_steps and "loss" in (logs or {}) and state.global_step % params.save_steps == 0:
                on_save(trainer.model, {"step": state.global_step, "epoch": state.epoch, "loss": logs["loss"]})

    config = DPOConfig(
        output_dir=str(work / "trainer"),
        **params.trainer_kwargs(params.batch_size, params.grad_accum),
        beta=dpo.beta,
        loss_type=[dpo.loss_type],
        bf16=True,  # autocast on CPU; the LoRA weights stay float32
        use_cpu=device == "cpu",
        logging_steps=1,
        save_strategy="no",
        report_to=list(params.report_to),
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    trainer = DPOTrainer(model=model, args=config, train_dataset=Dataset.from_list(pairs), processing_class=tokenizer,
                         peft_config=lora_config(params.lora), callbacks=[Checkpoints()])
    quiet_progress(trainer)
    trainer.train()
    curve = [{"step": e["step"], "epoch": e.get("epoch"), "loss": e["loss"]}
             for e in trainer.state.log_history if "loss" in e]
    return trainer.model, curve, trainer.state.global_step
