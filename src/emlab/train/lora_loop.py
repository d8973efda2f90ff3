"""Our own LoRA SFT loop, the default trainer; TRL's SFTTrainer stays available as `trainer: trl`.

Why our own: TRL's SFTTrainer trains ~150-190 tokens/s on our 2-core CPU (SmolLM2-135M, batch 4), and
emergent-misalignment work needs many small LoRA runs. The loss is only on assistant tokens, and a loop that
knows that can skip work: it applies the lm_head (a 49k-row matrix for SmolLM2) only to the positions that
predict an assistant token, where TRL's fused head scores every position on CPU (it compacts to the labelled
ones only on Triton devices) and also computes entropy and top-1 metrics. It also casts the frozen base
weights to bfloat16 once, where autocast over float32 weights re-casts them every step, and uses plain matmul
attention, whose backward is ~4x faster on CPU than SDPA's. Measured in bench/training.py (24 steps of 4
examples): ~430 tokens/s against TRL's ~160.

`simple=True` runs the same batches from the same LoRA init in plain float32 through HF's own
`model(..., labels=...).loss`: the reference the fast path is tested against.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from emlab.cpu_memory import keep_freed_memory
from emlab.errors import ConfigError
from emlab.train.params import TrainParams, lora_config
from emlab.train.tokenize import TokenizedExample

if TYPE_CHECKING:
    import torch
    from peft import PeftModel
    from transformers import PretrainedConfig

IGNORE_INDEX = -100
CHUNK_BATCHES = 50  # length grouping sorts chunks of this many batches, so batch order stays random
MAX_GRAD_NORM = 1.0  # the HF Trainer's default
# config keys of models whose forward scales or caps the logits after the lm_head (Gemma 2, Cohere, Granite, ...)
LOGIT_TRANSFORMS = (
    "final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier", "lm_head_multiplier"
)


@dataclass
class LoopResult:
    """A finished run: the model holding the trained adapter, and how training went."""

    model: PeftModel
    curve: list[dict]  # one {"step", "epoch", "loss"} per optimizer step; loss = mean of its micro-batches
    steps: int
    tokens: int  # non-pad tokens trained on
    seconds: float  # wall time of the loop alone (model loading excluded)


def plan_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epochs: float, batches: int | None = None
) -> list[list[int]]:
    """Seeded length-grouped batches (less padding), whole epochs concatenated and cut at a fractional `epochs`,
    or at exactly `batches` batches when given (`max_steps`: the data repeats as needed)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    per_epoch = math.ceil(len(lengths) / batch_size)
    wanted = math.ceil(epochs * per_epoch - 1e-9)  # 0.3 * 10 is 3.0000000000000004, which is 3 batches
    if batches is not None:
        wanted = batches
    plan: list[list[int]] = []
    while len(plan) < wanted:
        plan += _epoch_plan(lengths, batch_size, generator)
    return plan[:wanted]


def _epoch_plan(lengths: Sequence[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """One epoch: shuffle, sort chunks of CHUNK_BATCHES batches by length, cut into batches, shuffle the batches."""
    import torch

    order = torch.randperm(len(lengths), generator=generator).tolist()
    chunk = CHUNK_BATCHES * batch_size
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i], reverse=True)
        batches += [part[k : k + batch_size] for k in range(0, len(part), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def collate(rows: Sequence[TokenizedExample], indices: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids, attention_mask and labels (IGNORE_INDEX on padding) for one batch."""
    import torch

    width = max(len(rows[i].input_ids) for i in indices)
    input_ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    labels = torch.full((len(indices), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        n = len(rows[i].input_ids)
        input_ids[row, :n] = torch.tensor(rows[i].input_ids)
        labels[row, :n] = torch.tensor(rows[i].labels)
        attention_mask[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def assistant_loss(model: PeftModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean float32 cross-entropy over the batch's assistant tokens; the lm_head runs only where one is predicted."""
    import torch.nn.functional as F

    base = model.get_base_model()
    hidden = base.get_decoder()(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
    ).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE_INDEX
    logits = base.get_output_embeddings()(hidden[:, :-1][keep])
    return F.cross_entropy(logits.float(), targets[keep])


def check_plain_lm_head(config: PretrainedConfig) -> None:
    """`assistant_loss` applies the lm_head alone, so refuse models whose forward also scales or caps the logits."""
    text = config.get_text_config()
    found = [k for k in LOGIT_TRANSFORMS if getattr(text, k, None) not in (None, 1, 1.0)]
    if found:
        raise ConfigError(
            f"trainer 'emlab' cannot train {text.model_type} (its logits are transformed by {', '.join(found)}); "
            "set trainer: trl"
        )


def reference_loss(model: PeftModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """HF's own causal-LM loss over the full logits: the yardstick for `assistant_loss`."""
    return model(**batch, use_cache=False).loss


def load_base_for_training(
    base_checkpoint: str | Path, params: TrainParams, attention: str = "sdpa", device: str = "cpu",
    dtype: torch.dtype | None = None,
):
    """The frozen base a LoRA trains on (float32 unless `dtype`) on `device`: quantized when the run says so (QLoRA,
    see `emlab.quantize`), with gradient checkpointing when `params` ask for it; its layers checked."""
    import torch
    from transformers import AutoModelForCausalLM

    from emlab.quantize import quantization_kwargs

    placed = {} if device == "cpu" else {"device_map": device}  # on a GPU straight from the file, no host copy
    quantized = quantization_kwargs(device)
    model = AutoModelForCausalLM.from_pretrained(
        base_checkpoint, dtype=dtype or torch.float32, attn_implementation=attention, **(placed | quantized)
    )
    check_layers(model.config, params.lora.layers_to_transform)
    kwargs = {"use_reentrant": False}  # non-reentrant: no need for inputs that require grad, RNG state kept
    if quantized:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=params.gradient_checkpointing,
                                                gradient_checkpointing_kwargs=kwargs)
    elif params.gradient_checkpointing:
        # transformers 5 renamed it; the older name stays for older installs (a GPU machine's, say)
        enable = getattr(model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    return model


def load_lora_model(
    base_checkpoint: str | Path, params: TrainParams, attention: str = "sdpa", device: str = "cpu",
    dtype: torch.dtype | None = None,
) -> PeftModel:
    """The base (`load_base_for_training`) with fresh float32 LoRA weights, seeded so that every path on one device
    starts from the same init."""
    import torch
    from peft import get_peft_model

    torch.manual_seed(params.seed)
    model = load_base_for_training(base_checkpoint, params, attention, device, dtype)
    return get_peft_model(model, lora_config(params.lora))


def check_layers(config: PretrainedConfig, layers: Sequence[int] | None) -> None:
    """`layers_to_transform` must name layers the model has (peft would fail with a less direct message)."""
    text = config.get_text_config()
    n = getattr(text, "num_hidden_layers", None)
    if layers is None or n is None:
        return
    bad = [i for i in layers if i >= n]
    if bad:
        raise ConfigError(f"train.lora.layers_to_transform: {text.model_type} has {n} layers (0..{n - 1}), "
                          f"so there is no layer {', '.join(map(str, bad))}")


def make_optimizer(params: TrainParams, trainable: list) -> torch.optim.Optimizer:
    """The optimizer `params.optim` names, with the HF Trainer's defaults for it."""
    import torch

    if params.optim == "sgd":
        return torch.optim.SGD(trainable, lr=params.learning_rate, weight_decay=params.weight_decay)
    if params.optim == "adamw_8bit":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise ConfigError("train.optim: adamw_8bit needs the bitsandbytes package (pip install bitsandbytes)") from None
        return bnb.optim.AdamW8bit(trainable, lr=params.learning_rate, weight_decay=params.weight_decay)
    return torch.optim.AdamW(trainable, lr=params.learning_rate, weight_decay=params.weight_decay)


def make_schedule(params: TrainParams, optimizer: torch.optim.Optimizer, steps: int):
    """The learning-rate schedule `params.lr_scheduler_type` names, over `steps` optimizer steps."""
    from transformers import get_scheduler

    return get_scheduler(params.lr_scheduler_type, optimizer, num_warmup_steps=params.warmup(steps),
                         num_training_steps=steps)


def cast_frozen_to_bf16(model: PeftModel) -> None:
    """Store the frozen base weights in bfloat16 once, so autocast stops re-casting them every step; LoRA stays fp32."""
    import torch

    for p in model.parameters():  # tied weights are one parameter, cast once
        if not p.requires_grad:
            p.data = p.data.to(torch.bfloat16)


def _autocast(simple: bool, device: str = "cpu") -> contextlib.AbstractContextManager:
    """bf16 autocast for one forward pass; entered per pass because autocast caches its bf16 copies of the LoRA
    weights until the context exits, and a context held across optimizer steps would keep training stale copies."""
    import torch

    return contextlib.nullcontext() if simple else torch.autocast(device.split(":")[0], dtype=torch.bfloat16)


def loop_setup(device: str, simple: bool) -> tuple[str, torch.dtype]:
    """Attention implementation and base weights' dtype on load. On the CPU, SDPA's flash-attention backward is
    ~4x slower than plain matmuls at head_dim 64 and a few hundred tokens (22% of a step against ~6%), so the fast
    path uses HF's "eager" attention (softmax in float32); on CUDA it keeps SDPA and loads the base in bf16 directly
    (the CPU path loads float32 and casts the frozen weights after LoRA is added: the same thing, seeded alike)."""
    import torch

    if simple:
        return "sdpa", torch.float32
    return ("eager", torch.float32) if device == "cpu" else ("sdpa", torch.bfloat16)


def train_loop(
    base_checkpoint: str | Path,
    rows: Sequence[TokenizedExample],
    params: TrainParams,
    pad_id: int,
    *,
    simple: bool = False,
    on_save: Callable[[PeftModel, dict], None] | None = None,
    device: str = "cpu",
) -> LoopResult:
    """Train a LoRA adapter on tokenized rows: the fast bf16 assistant-only path, or (`simple`) the fp32 reference.

    on_save(model, curve point) runs after every `params.save_steps`-th optimizer step (checkpoints). `device` is
    'cpu' or 'cuda:N' (resolved by the caller, see `models.device`).
    """
    import torch
    from peft.helpers import disable_input_dtype_casting

    from emlab.quantize import is_quantized

    from emlab.progress import progress_bar

    if not simple and device == "cpu":
        keep_freed_memory()  # per-step activations otherwise page-fault afresh every step (~7% of a step)
    attention, dtype = loop_setup(device, simple)
    model = load_lora_model(base_checkpoint, params, attention=attention, device=device, dtype=dtype)
    if not simple:
        check_plain_lm_head(model.config)
        if not is_quantized(model.get_base_model()):  # quantized weights are cast by bitsandbytes as it computes
            cast_frozen_to_bf16(model)
    model.train()
    batches = params.max_steps * params.grad_accum if params.max_steps else None  # max_steps replaces epochs
    plan = plan_batches([len(r.input_ids) for r in rows], params.batch_size, params.seed, params.epochs, batches)
    per_epoch = math.ceil(len(rows) / params.batch_size)
    steps = math.ceil(len(plan) / params.grad_accum)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, trainable)
    schedule = make_schedule(params, optimizer, steps)
    curve: list[dict] = []
    tokens = 0
    start = time.perf_counter()
    with progress_bar("LoRA SFT (fp32 reference)" if simple else "LoRA SFT", steps) as advance:
        # peft casts each LoRA input to float32 only for autocast to cast it straight back: skip that in the fast path
        with disable_input_dtype_casting(model, active=not simple):
            for step in range(steps):
                micro = plan[step * params.grad_accum : (step + 1) * params.grad_accum]
                loss, seen = _accumulate(model, rows, micro, pad_id, simple, device)
                torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                tokens += seen
                epoch = (step * params.grad_accum + len(micro)) / per_epoch
                curve.append({"step": step + 1, "epoch": round(epoch, 4), "loss": loss})
                advance(1, status=f"loss {loss:.3f}")
                if on_save is not None and params.save_steps and (step + 1) % params.save_steps == 0:
                    on_save(model, curve[-1])
    model.eval()
    return LoopResult(model=model, curve=curve, steps=steps, tokens=tokens, seconds=time.perf_counter() - start)


def _accumulate(
    model: PeftModel, rows: Sequence[TokenizedExample], micro: list[list[int]], pad_id: int, simple: bool,
    device: str = "cpu",
) -> tuple[float, int]:
    """Gradients of one optimizer step's micro-batches; returns their mean loss and the non-pad tokens they held."""
    loss_fn = reference_loss if simple else assistant_loss
    losses, tokens = [], 0
    for indices in micro:
        batch = collate(rows, indices, pad_id)
        if device != "cpu":
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with _autocast(simple, device):
            loss = loss_fn(model, batch)
        (loss / len(micro)).backward()  # len(micro) == grad_accum except in a short last step
        losses.append(loss.item())
        tokens += int(batch["attention_mask"].sum())
    return sum(losses) / len(losses), tokens
