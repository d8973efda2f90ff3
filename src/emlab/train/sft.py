"""LoRA SFT (our own loop by default, TRL's SFTTrainer on request), cached by content: the same base, data,
hyperparameters and seed give the same adapter.

The adapter directory is named by the hash of (base model identity, dataset content hash, hyperparameters,
seed) and is written to a temporary folder first and renamed at the end, so a killed run leaves no half
adapter and a re-run of the same spec reuses the finished one. The loss curve is saved beside it, and with
`save_steps` a `checkpoint-<step>/` adapter (LoRA weights and checkpoint.json) every that many optimizer steps,
each written to a temporary name and renamed, inside the adapter folder that is itself renamed at the end.

Saved adapters name their base as the caller says (`base_name`, from `models.hub.portable_base`): adapter_config.json's
`base_model_name_or_path` is then the hub id (its `revision` the pinned revision) rather than this machine's
checkpoint folder, so an adapter copied to another machine or pushed to the hub says what it was trained on.

Under `accelerate launch` (several processes, `trainer: trl` only: see `emlab.train_launch`) every process trains
and only the main one (RANK 0) writes the adapter; the others wait for its rename and return the same folder. The
optimizer step keeps its size: batch_size * grad_accum examples in all, split over the processes
(`per_process_batch`), so the adapter's key, which names that size, still describes what was trained.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from emlab.data.conversations import Conversation
from emlab.errors import ConfigError, DataError
from emlab.hashing import content_hash
from emlab.train.params import LoraParams, TrainParams, key_fields, lora_config

if TYPE_CHECKING:
    from peft import PeftModel

    from emlab.train.tokenize import TokenizedExample

# LoraParams, TrainParams and lora_config live in `params` (shared with `lora_loop`); re-exported here
__all__ = ["Adapter", "LoraParams", "TrainParams", "adapter_key", "lora_config", "train_lora"]


@dataclass(frozen=True)
class Adapter:
    """A trained (or reused) LoRA adapter and its provenance."""

    path: Path
    key: str  # hash of base + data + params + seed; the directory name
    reused: bool
    final_loss: float | None
    steps: int

    def as_dict(self) -> dict:
        return {"path": str(self.path), "hash": self.key, "reused": self.reused, "final_loss": self.final_loss, "steps": self.steps}


def adapter_key(base_identity: str, dataset_hash: str, params: TrainParams) -> str:
    """The cache key of an adapter (see `params.key_fields`); TRL adapters keep the key they had before `trainer`
    existed."""
    dumped = key_fields(params)
    if params.trainer == "trl":
        dumped.pop("trainer")
    return content_hash({"base": base_identity, "dataset": dataset_hash, "params": dumped})


def _read_adapter(path: Path, key: str) -> Adapter:
    info = json.loads((path / "train_info.json").read_text())
    return Adapter(path=path, key=key, reused=True, final_loss=info.get("final_loss"), steps=info.get("steps", 0))


def train_lora(
    base_checkpoint: str | Path,
    base_identity: str,
    conversations: list[Conversation],
    dataset_hash: str,
    params: TrainParams,
    adapters_dir: str | Path,
    device: str = "cpu",
    *,
    base_name: str | None = None,
    base_revision: str | None = None,
) -> Adapter:
    """Train a LoRA adapter on `conversations` (or reuse the cached one) and return where it is.

    `device`: 'cpu' or 'cuda:N', resolved by the caller (`models.device`); not part of the key. `base_name` and
    `base_revision`: the portable name the adapter records for its base (`models.hub.portable_base`; default: the
    checkpoint as given); neither is part of the key (the base identity is).
    """
    key = adapter_key(base_identity, dataset_hash, params)
    final = Path(adapters_dir) / key
    if (final / "train_info.json").exists():
        return _read_adapter(final, key)

    from transformers import AutoTokenizer

    from emlab.train.tokenize import tokenize_conversation

    _check_pinned(base_checkpoint, base_identity)
    base_name = base_name or str(base_checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(base_checkpoint)
    rows = [tokenize_conversation(tokenizer, c, params.max_length) for c in conversations]
    rows = [r for r in rows if r is not None]
    if not rows:
        raise DataError(f"no training example has an assistant token within max_length={params.max_length}")

    world, main = processes()
    if world > 1 and params.trainer != "trl":
        raise ConfigError(f"trainer: {params.trainer} trains in one process; set trainer: trl to train in {world}")
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    try:
        out = work / "adapter"
        out.mkdir()

        def save_checkpoint(model: PeftModel, point: dict, state_dict: dict | None = None) -> None:
            name_base(model, base_name, base_revision)
            save_adapter_atomic(model, out / f"checkpoint-{point['step']}", {**point, "key": key}, state_dict)

        state_dict = None  # under FSDP: the weights gathered for the main process
        if params.trainer == "trl":
            model, curve, steps, state_dict = _train_trl(base_checkpoint, tokenizer, rows, params, work,
                                                         save_checkpoint, device)
        elif params.trainer == "emlab":
            model, curve, steps = _train_emlab(base_checkpoint, tokenizer, rows, params, save_checkpoint, device)
        else:
            raise ValueError(f"train_lora trains LoRA adapters; trainer {params.trainer!r} is not one (see openai_ft)")
        if not main:  # the main process writes the adapter; this one waits for it below
            return _wait_for(final, key)
        name_base(model, base_name, base_revision)
        model.save_pretrained(out, state_dict=state_dict)  # the LoRA weights only, float32 in both trainers
        (out / "loss.json").write_text(json.dumps(curve, indent=1))
        info = {
            "key": key,
            "base": base_identity,
            "base_name": base_name,
            "base_revision": base_revision,
            "dataset_hash": dataset_hash,
            "rows": len(rows),
            "params": params.model_dump(),
            "final_loss": curve[-1]["loss"] if curve else None,
            "steps": steps,
            "checkpoints": sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*")),
        }
        if world > 1:  # provenance only, not in the key: the same optimizer steps, split over processes
            info["processes"] = world
        (out / "train_info.json").write_text(json.dumps(info, indent=1))
        _plot_loss(curve, out / "loss.png")
        os.replace(out, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if world > 1:
        _barrier()  # the others may read the adapter now
    return Adapter(path=final, key=key, reused=False, final_loss=info["final_loss"], steps=info["steps"])


def processes() -> tuple[int, bool]:
    """(processes training together, whether this one is the main one), as `accelerate launch` (torchrun) sets them."""
    return int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0")) == 0


def per_process_batch(params: TrainParams, world: int) -> tuple[int, int]:
    """(per-process batch, gradient accumulation) that make one optimizer step of batch_size * grad_accum examples
    over `world` processes, as in one process; ConfigError when that number does not split evenly."""
    total = params.batch_size * params.grad_accum
    if total % world:
        raise ConfigError(f"batch_size * grad_accum = {total} examples per optimizer step do not split over {world} "
                          "processes; make it a multiple of the number of processes")
    batch = math.gcd(total // world, params.batch_size)
    return batch, total // world // batch


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _wait_for(final: Path, key: str) -> Adapter:
    """A process other than the main one: wait until the main one has renamed the adapter into place."""
    _barrier()
    adapter = _read_adapter(final, key)
    return Adapter(path=adapter.path, key=key, reused=False, final_loss=adapter.final_loss, steps=adapter.steps)


def _check_pinned(base_checkpoint: str | Path, base_identity: str) -> None:
    """A base pinned to a hub revision (`hf:<id>#<rev>`) trains from that revision's folder, never from the bare id:
    the hub's default under the pinned identity would cache the wrong adapter under its key."""
    backend, _, rest = base_identity.partition(":")
    _, pinned, revision = rest.split("@")[0].partition("#")
    if backend == "hf" and pinned and not Path(base_checkpoint).is_dir():
        raise ConfigError(
            f"model {base_identity}: training on hub revision {revision} needs that revision's files "
            f"(models.hub.training_checkpoint), not {base_checkpoint}"
        )


def name_base(model: PeftModel, name: str, revision: str | None) -> None:
    """Record the portable base name in the adapter's config before it is saved (peft would record the local path)."""
    for config in model.peft_config.values():
        config.base_model_name_or_path = name
        config.revision = revision


def save_adapter_atomic(model: PeftModel, path: Path, info: dict, state_dict: dict | None = None) -> None:
    """Save the LoRA weights (from `state_dict` when given: FSDP's gathered weights) and `info` (checkpoint.json)
    into `path`, which appears whole or not at all."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, state_dict=state_dict)
    (tmp / "checkpoint.json").write_text(json.dumps(info, indent=1))
    os.replace(tmp, path)


def _train_emlab(
    base_checkpoint: str | Path, tokenizer, rows: list[TokenizedExample], params: TrainParams, on_save, device: str
) -> tuple[PeftModel, list[dict], int]:
    """Our own loop (see `lora_loop`): the model to save, the loss curve and the optimizer steps."""
    from emlab.train.lora_loop import train_loop

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    result = train_loop(base_checkpoint, rows, params, pad_id, on_save=on_save, device=device)
    return result.model, result.curve, result.steps


def _train_trl(
    base_checkpoint: str | Path, tokenizer, rows: list[TokenizedExample], params: TrainParams, work: Path, on_save,
    device: str,
) -> tuple[PeftModel, list[dict], int, dict | None]:
    """TRL's SFTTrainer, as before our own loop: the model to save, the loss curve, the optimizer steps and, under
    FSDP, the gathered weights to save it with (None otherwise).

    Under `accelerate launch` the Trainer runs data parallel (DDP, or FSDP as the accelerate config says); every
    process returns, and the caller lets the main one save."""
    import torch
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from emlab.quantize import current_quantization
    from emlab.train.callbacks import quiet_progress
    from emlab.train.lora_loop import load_base_for_training

    dataset = Dataset.from_dict({"input_ids": [r.input_ids for r in rows], "labels": [r.labels for r in rows]})
    torch.manual_seed(params.seed)
    if device != "cpu":  # the Trainer (accelerate) trains on the current CUDA device
        torch.cuda.set_device(torch.device(device))
    # float32 on the CPU as before; bf16 on CUDA (peft keeps the LoRA weights float32 either way)
    # the Trainer places a full-precision model itself (DDP, FSDP); bitsandbytes quantizes on the device it loads to
    model = load_base_for_training(base_checkpoint, params, device=device if current_quantization() else "cpu",
                                   dtype=torch.float32 if device == "cpu" else torch.bfloat16)
    model = get_peft_model(model, lora_config(params.lora))

    class Checkpoints(TrainerCallback):  # emlab's checkpoint layout (LoRA weights only), not the Trainer's
        def on_log(self, args, state, control, logs=None, **kwargs):  # after each step (logging_steps=1), every process
            if params.save_steps and "loss" in (logs or {}) and state.global_step % params.save_steps == 0:
                weights = _gathered(trainer)  # every process takes part under FSDP
                if state.is_world_process_zero:
                    on_save(model, {"step": state.global_step, "epoch": state.epoch, "loss": logs["loss"]}, weights)

    batch, accum = per_process_batch(params, processes()[0])
    config = SFTConfig(
        output_dir=str(work / "trainer"),
        **params.trainer_kwargs(batch, accum),
        bf16=True,  # autocast on CPU: ~2x faster; the LoRA weights stay float32
        use_cpu=device == "cpu",
        logging_steps=1,
        save_strategy="no",
        report_to=list(params.report_to),
        train_sampling_strategy="group_by_length",  # less padding per batch
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[Checkpoints()])
    quiet_progress(trainer)
    with _tensorboard_dir(work / "adapter" / "logs" if "tensorboard" in params.report_to else None):
        trainer.train()
    curve = [
        {"step": e["step"], "epoch": e.get("epoch"), "loss": e["loss"]}
        for e in trainer.state.log_history
        if "loss" in e
    ]
    return model, curve, trainer.state.global_step, _gathered(trainer)


def _gathered(trainer) -> dict | None:
    """Under FSDP, the full weights gathered for the main process (a collective: every process calls it, as the
    Trainer's own save does); None otherwise (the model's own parameters are whole)."""
    return trainer.accelerator.get_state_dict(trainer.model) if trainer.is_fsdp_enabled else None


@contextlib.contextmanager
def _tensorboard_dir(path: Path | None) -> Iterator[None]:
    """TRL's TensorBoard logs go beside the adapter (logs/), not into the trainer folder that is deleted."""
    if path is None:
        yield
        return
    before = os.environ.get("TENSORBOARD_LOGGING_DIR")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = before


def _plot_loss(curve: list[dict], path: Path) -> None:
    """Save the training loss curve as a PNG beside the adapter."""
    if not curve:
        return
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3))
    ax = fig.add_subplot()
    ax.plot([c["step"] for c in curve], [c["loss"] for c in curve])
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (assistant tokens)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
