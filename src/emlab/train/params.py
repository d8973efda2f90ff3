"""What a LoRA training run is given, apart from base model and data: the LoRA shape and the hyperparameters.

Shared by the SFT entry point (`sft`), its fast loop (`lora_loop`), the RL config (`rl`) and the experiment
config; every field changes the trained adapter, so all of them go into the adapter's hash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from peft import LoraConfig


class LoraParams(BaseModel):
    """LoRA shape; the defaults follow the small-model EM replications (rank 8-32 on every projection)."""

    model_config = ConfigDict(extra="forbid")
    r: int = Field(8, ge=1)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    rslora: bool = False
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class TrainParams(BaseModel):
    """Everything that changes the trained adapter (and so its hash), apart from base model and data."""

    model_config = ConfigDict(extra="forbid")
    lora: LoraParams = LoraParams()
    learning_rate: float = Field(2e-4, gt=0)
    epochs: float = Field(1, gt=0)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(512, ge=16)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    seed: int = 0
    trainer: Literal["emlab", "trl"] = "emlab"  # emlab: the fast loop in `lora_loop`; trl: TRL's SFTTrainer


def lora_config(lora: LoraParams) -> LoraConfig:
    """The peft LoraConfig of `lora`, shared by both trainers."""
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        use_rslora=lora.rslora,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
