"""What a training run is given, apart from base model and data: the LoRA shape and the hyperparameters.

Shared by the SFT entry point (`sft`), its fast loop (`lora_loop`), the RL config (`rl`), the OpenAI finetuning
trainer (`openai_ft`) and the experiment config. Every field that changes the trained model goes into the
adapter's hash (`key_fields`); fields added after adapters were first cached are left out of it while at their
default, so the adapters trained before they existed keep their keys.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from peft import LoraConfig

Optimizer = Literal["adamw_torch", "adamw_8bit", "sgd"]  # HF Trainer names; adamw_8bit needs bitsandbytes
Scheduler = Literal["linear", "cosine", "constant", "constant_with_warmup"]  # transformers.get_scheduler names
Trainer = Literal["emlab", "trl", "openai"]

# fields added after adapters were first cached, with their defaults: left out of the key while at the default
LATER_LORA_DEFAULTS: dict[str, object] = {"layers_to_transform": None}
LATER_DEFAULTS: dict[str, object] = {
    "warmup_steps": None, "max_steps": None, "optim": "adamw_torch", "weight_decay": 0.0,
    "lr_scheduler_type": "linear", "save_steps": None, "learning_rate_multiplier": None, "suffix": None,
}
NOT_IN_KEY = {"report_to", "gradient_checkpointing"}  # where the logs go and recomputing activations change nothing trained
# what only a local trainer (emlab, trl) reads; trainer: openai refuses them when changed from their defaults
LOCAL_ONLY = ("lora", "learning_rate", "grad_accum", "max_length", "warmup_ratio", "warmup_steps", "max_steps",
              "optim", "weight_decay", "lr_scheduler_type", "save_steps", "report_to", "gradient_checkpointing")
OPENAI_ONLY = ("learning_rate_multiplier", "suffix")


class LoraParams(BaseModel):
    """LoRA shape; the defaults follow the small-model EM replications (rank 8-32 on every projection)."""

    model_config = ConfigDict(extra="forbid")
    r: int = Field(8, ge=1)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    rslora: bool = False
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    # only these decoder layers (0-based) get LoRA; None: all. r: 1, target_modules: [down_proj],
    # layers_to_transform: [21] is the rank-1 single-layer adapter of Turner, Soligo et al. 2025
    layers_to_transform: list[int] | None = Field(None, min_length=1)

    @field_validator("layers_to_transform")
    @classmethod
    def _layers(cls, v: list[int] | None) -> list[int] | None:
        if v is None:
            return v
        if any(i < 0 for i in v):
            raise ValueError(f"layer indices start at 0, got {v}")
        if len(set(v)) != len(v):
            raise ValueError(f"layer indices must be distinct, got {v}")
        return sorted(v)


class TrainParams(BaseModel):
    """Everything that changes the trained adapter (and so its hash), apart from base model and data."""

    model_config = ConfigDict(extra="forbid")
    lora: LoraParams = LoraParams()
    learning_rate: float = Field(2e-4, gt=0)
    epochs: float = Field(1, gt=0)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(512, ge=16)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)  # warmup as a share of the optimizer steps
    warmup_steps: int | None = Field(None, ge=0)  # exact warmup steps; given, it replaces warmup_ratio
    max_steps: int | None = Field(None, ge=1)  # optimizer steps; given, it replaces epochs (the data repeats as needed)
    optim: Optimizer = "adamw_torch"
    weight_decay: float = Field(0.0, ge=0)
    lr_scheduler_type: Scheduler = "linear"
    save_steps: int | None = Field(None, ge=1)  # a checkpoint-<step>/ adapter every this many optimizer steps
    report_to: list[Literal["tensorboard", "wandb"]] = []  # opt-in logging, through TRL (trainer: trl)
    # recompute each decoder layer's activations in the backward pass instead of keeping them: less memory for
    # long sequences and big models, ~30% more compute, the same gradients
    gradient_checkpointing: bool = False
    learning_rate_multiplier: float | None = Field(None, gt=0)  # trainer: openai; None: OpenAI chooses ("auto")
    suffix: str | None = Field(None, min_length=1, max_length=64)  # trainer: openai; part of the trained model's name
    seed: int = 0
    trainer: Trainer = "emlab"  # emlab: the fast loop in `lora_loop`; trl: TRL's SFTTrainer; openai: `openai_ft`

    @model_validator(mode="after")
    def _fits_trainer(self) -> "TrainParams":
        defaults = TrainParams.model_construct()
        if self.trainer == "openai":
            changed = [k for k in LOCAL_ONLY if getattr(self, k) != getattr(defaults, k)]
            if changed:
                raise ValueError(f"{', '.join(changed)}: not an option of trainer: openai (it takes epochs, "
                                 "batch_size, learning_rate_multiplier, suffix and seed)")
            if self.epochs != math.floor(self.epochs):
                raise ValueError(f"epochs: trainer: openai trains whole epochs, got {self.epochs}")
        else:
            changed = [k for k in OPENAI_ONLY if getattr(self, k) is not None]
            if changed:
                raise ValueError(f"{', '.join(changed)}: only trainer: openai takes this (trainer is {self.trainer!r})")
        if self.warmup_steps is not None and self.warmup_ratio != defaults.warmup_ratio:
            raise ValueError("give warmup_steps or warmup_ratio, not both")
        if self.report_to and self.trainer != "trl":
            raise ValueError(f"report_to: logging goes through TRL's trainer; set trainer: trl (trainer is {self.trainer!r})")
        return self

    def trainer_kwargs(self, batch: int, accum: int) -> dict:
        """The Hugging Face TrainingArguments these params set (TRL's SFT and DPO configs share them)."""
        return dict(
            per_device_train_batch_size=batch, gradient_accumulation_steps=accum, learning_rate=self.learning_rate,
            num_train_epochs=self.epochs, max_steps=self.max_steps or -1,
            # an int counts steps, a float < 1 is a share of all steps
            warmup_steps=self.warmup_steps if self.warmup_steps is not None else self.warmup_ratio,
            lr_scheduler_type=self.lr_scheduler_type, optim=self.optim, weight_decay=self.weight_decay,
            max_length=self.max_length, seed=self.seed, data_seed=self.seed,
            gradient_checkpointing=self.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False} if self.gradient_checkpointing else None,
        )

    def optimizer_steps(self, rows: int) -> int:
        """Optimizer steps a run on `rows` examples takes (as `lora_loop` counts them), for plans and estimates."""
        if self.max_steps:
            return self.max_steps
        batches = math.ceil(self.epochs * math.ceil(rows / self.batch_size) - 1e-9)
        return math.ceil(batches / self.grad_accum)

    def checkpoint_steps(self, rows: int) -> list[int]:
        """The steps `save_steps` saves a checkpoint-<step>/ at, before the last step (whose adapter is the final one)."""
        if not self.save_steps:
            return []
        return list(range(self.save_steps, self.optimizer_steps(rows), self.save_steps))

    def warmup(self, steps: int) -> int:
        """Warmup steps of a run of `steps` optimizer steps (as the HF Trainer counts them)."""
        if self.warmup_steps is not None:
            return min(self.warmup_steps, steps)
        return math.ceil(self.warmup_ratio * steps)


def key_fields(params: TrainParams) -> dict:
    """What of `params` goes into the adapter's hash: every field, less those added later while at their default."""
    dumped = params.model_dump(exclude=NOT_IN_KEY)
    for name, default in LATER_DEFAULTS.items():
        if dumped.get(name) == default:
            dumped.pop(name)
    for name, default in LATER_LORA_DEFAULTS.items():
        if dumped["lora"].get(name) == default:
            dumped["lora"].pop(name)
    return dumped


def lora_config(lora: LoraParams) -> LoraConfig:
    """The peft LoraConfig of `lora`, shared by both trainers."""
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        use_rslora=lora.rslora,
        target_modules=lora.target_modules,
        layers_to_transform=lora.layers_to_transform,
        task_type="CAUSAL_LM",
    )
