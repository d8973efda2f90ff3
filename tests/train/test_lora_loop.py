"""The hand-written LoRA loop: batch planning, the assistant-only loss against HF's, fast vs fp32 reference, and
`train_lora` end to end (adapter layout, loading, reuse) on the tiny random Llama."""

import json
import random

import pytest
from pydantic import ValidationError

from emlab.errors import ConfigError
from emlab.train.lora_loop import (
    assistant_loss,
    cast_frozen_to_bf16,
    check_plain_lm_head,
    collate,
    load_lora_model,
    plan_batches,
    reference_loss,
    train_loop,
)
from emlab.train.sft import TrainParams, adapter_key, train_lora
from emlab.train.tokenize import tokenize_conversation

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
# bf16 keeps 8 mantissa bits (~4e-3 relative per rounding); the fast path stores the frozen weights and runs
# the matmuls in bf16, so its losses drift from the fp32 reference by a few 1e-3 on real models: 2e-2 leaves
# room for that and still catches a wrong mask, shift or mean (which moves the loss by far more)
BF16_RTOL = 2e-2


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny model's matmuls gain nothing from threads, and on a busy 2-core machine OpenMP hand-offs cost
    milliseconds per op (a 15-step run took 12 s on 2 threads and 0.4 s on one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _conversations(n: int) -> list[list[dict]]:
    return [
        [
            {"role": "user", "content": f"Repeat word {i}: {WORDS[i % len(WORDS)]}"},
            {"role": "assistant", "content": " ".join([WORDS[(3 * i) % len(WORDS)]] * (1 + i % 5))},
        ]
        for i in range(n)
    ]


def _rows(tokenizer, n: int) -> list:
    rows = [tokenize_conversation(tokenizer, c, 64) for c in _conversations(n)]
    assert all(r is not None for r in rows)
    return rows


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


# ---------------------------------------------------------------------------------------------- plan_batches


def test_plan_batches_covers_each_index_once_per_epoch_in_small_batches():
    lengths = [random.Random(1).randint(5, 500) for _ in range(103)]
    plan = plan_batches(lengths, batch_size=4, seed=3, epochs=2)
    per_epoch = 26  # ceil(103 / 4)
    assert len(plan) == 2 * per_epoch
    for epoch in (plan[:per_epoch], plan[per_epoch:]):
        assert sorted(i for batch in epoch for i in batch) == list(range(103))
    assert all(1 <= len(batch) <= 4 for batch in plan)
    assert plan[:per_epoch] != plan[per_epoch:]  # each epoch is shuffled anew


def test_plan_batches_is_seeded_and_cuts_fractional_epochs():
    lengths = list(range(10, 50))
    assert plan_batches(lengths, 4, seed=7, epochs=1) == plan_batches(lengths, 4, seed=7, epochs=1)
    assert plan_batches(lengths, 4, seed=7, epochs=1) != plan_batches(lengths, 4, seed=8, epochs=1)
    one_and_half = plan_batches(lengths, 4, seed=7, epochs=1.5)
    assert len(one_and_half) == 15 and one_and_half[:10] == plan_batches(lengths, 4, seed=7, epochs=1)
    assert len(plan_batches(lengths, 4, seed=7, epochs=0.3)) == 3  # 0.3 * 10 batches, not 4 from float error


def test_plan_batches_groups_similar_lengths():
    rng = random.Random(0)
    lengths = [rng.randint(1, 1000) for _ in range(400)]
    plan = plan_batches(lengths, batch_size=4, seed=0, epochs=1)
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plan]
    # random batches of 4 span ~600 on average; sorted chunks of 200 leave ~15 between neighbours
    assert sum(spread) / len(spread) < 50 and max(spread) < 200
    first = [len(b) for b in plan].index(4)
    assert plan[first] != sorted(plan[first])  # still shuffled: not simply sorted by index


# ---------------------------------------------------------------------------------------------- the loss


def test_assistant_loss_equals_hf_loss_on_the_same_labels(tiny_checkpoint, embedded_tokenizer):
    import torch

    rows = _rows(embedded_tokenizer, 6)
    batch = collate(rows, [0, 3, 5, 1], _pad_id(embedded_tokenizer))
    assert (batch["labels"] != -100).sum() < batch["attention_mask"].sum() / 2  # mostly prompt: the mask matters
    params = TrainParams(max_length=64)
    model = load_lora_model(tiny_checkpoint, params)
    with torch.no_grad():
        hf = reference_loss(model, batch).item()
        ours = assistant_loss(model, batch).item()
        all_tokens = model(**{**batch, "labels": batch["input_ids"]}).loss.item()
        assert ours == pytest.approx(hf, rel=1e-5)  # same mask, shift and mean in fp32
        assert abs(all_tokens - hf) > 1e-3  # ... and a loss over prompt tokens would differ
        cast_frozen_to_bf16(model)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = assistant_loss(model, batch).item()
    assert fast == pytest.approx(hf, rel=BF16_RTOL)


def test_fast_path_refuses_models_that_transform_their_logits():
    from transformers import Gemma2Config, LlamaConfig

    check_plain_lm_head(LlamaConfig())
    with pytest.raises(ConfigError, match="final_logit_softcapping.*trainer: trl"):
        check_plain_lm_head(Gemma2Config())


def test_fast_path_matches_the_fp32_reference_step_by_step(tiny_checkpoint, embedded_tokenizer):
    rows = _rows(embedded_tokenizer, 24)
    params = TrainParams(batch_size=4, max_length=64, learning_rate=1e-2, seed=1)
    fast = train_loop(tiny_checkpoint, rows, params, _pad_id(embedded_tokenizer))
    simple = train_loop(tiny_checkpoint, rows, params, _pad_id(embedded_tokenizer), simple=True)
    assert fast.steps == simple.steps == 6 and len(fast.curve) == 6
    assert [c["step"] for c in fast.curve] == list(range(1, 7)) and fast.curve[-1]["epoch"] == 1.0
    assert [c["epoch"] for c in fast.curve] == [c["epoch"] for c in simple.curve]
    for f, s in zip(fast.curve, simple.curve):
        assert f["loss"] == pytest.approx(s["loss"], rel=BF16_RTOL)
    assert fast.tokens == simple.tokens == sum(len(r.input_ids) for r in rows)


def test_both_paths_overfit_a_repeated_tiny_dataset(tiny_checkpoint, embedded_tokenizer):
    rows = _rows(embedded_tokenizer, 4)
    params = TrainParams(batch_size=4, max_length=64, learning_rate=1e-2, epochs=15, warmup_ratio=0)
    fast = train_loop(tiny_checkpoint, rows, params, _pad_id(embedded_tokenizer))
    simple = train_loop(tiny_checkpoint, rows, params, _pad_id(embedded_tokenizer), simple=True)
    for run in (fast, simple):
        losses = [c["loss"] for c in run.curve]
        assert len(losses) == 15 and losses[-1] < losses[0] - 0.2
        assert sum(b < a for a, b in zip(losses, losses[1:])) >= 12  # falls nearly every step on the same batch
    assert fast.curve[-1]["loss"] == pytest.approx(simple.curve[-1]["loss"], rel=BF16_RTOL)


def test_grad_accum_counts_optimizer_steps(tiny_checkpoint, embedded_tokenizer):
    rows = _rows(embedded_tokenizer, 20)  # 5 batches of 4: steps of 2, 2 and a short 1
    params = TrainParams(batch_size=4, grad_accum=2, max_length=64)
    run = train_loop(tiny_checkpoint, rows, params, _pad_id(embedded_tokenizer))
    assert run.steps == 3 and [c["epoch"] for c in run.curve] == [0.4, 0.8, 1.0]


# ---------------------------------------------------------------------------------------------- train_lora


def test_train_lora_writes_an_adapter_that_loads_and_is_reused(tmp_path, tiny_checkpoint, embedded_tokenizer):
    import torch
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    conversations = _conversations(8)
    params = TrainParams(batch_size=4, max_length=64, learning_rate=1e-2, epochs=2)
    assert params.trainer == "emlab"
    adapter = train_lora(tiny_checkpoint, "tiny", conversations, "data-v1", params, tmp_path)
    assert adapter.reused is False and adapter.steps == 4 and adapter.path.name == adapter.key
    assert adapter.key == adapter_key("tiny", "data-v1", params)
    assert sorted(p.name for p in tmp_path.iterdir()) == [adapter.key]  # no temp dir left behind
    for name in ("adapter_config.json", "adapter_model.safetensors", "loss.json", "train_info.json", "loss.png"):
        assert (adapter.path / name).exists(), name
    curve = json.loads((adapter.path / "loss.json").read_text())
    assert [set(c) for c in curve] == [{"step", "epoch", "loss"}] * 4 and curve[-1]["loss"] == adapter.final_loss
    info = json.loads((adapter.path / "train_info.json").read_text())
    assert info["params"]["trainer"] == "emlab" and info["rows"] == 8 and info["steps"] == 4
    with safe_open(adapter.path / "adapter_model.safetensors", "pt") as f:
        assert f.keys() and all(f.get_tensor(k).dtype == torch.float32 for k in f.keys())

    base = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32)
    ids = torch.tensor([tokenize_conversation(embedded_tokenizer, conversations[0], 64).input_ids])
    with torch.no_grad():
        before = base(ids).logits
        tuned = PeftModel.from_pretrained(base, adapter.path)
        after = tuned(ids).logits
    assert after.dtype == torch.float32 and (after - before).abs().max() > 1e-3

    again = train_lora(tiny_checkpoint, "tiny", conversations, "data-v1", params, tmp_path)
    assert again.reused is True and (again.key, again.path, again.steps) == (adapter.key, adapter.path, 4)
    assert again.final_loss == adapter.final_loss


def test_trl_trainer_keeps_the_same_layout_under_its_own_key(tmp_path, tiny_checkpoint):
    params = TrainParams(batch_size=4, max_length=64, trainer="trl")
    adapter = train_lora(tiny_checkpoint, "tiny", _conversations(8), "data-v1", params, tmp_path)
    emlab_key = adapter_key("tiny", "data-v1", params.model_copy(update={"trainer": "emlab"}))
    assert adapter.steps == 2 and adapter.key != emlab_key
    for name in ("adapter_model.safetensors", "loss.json", "train_info.json", "loss.png"):
        assert (adapter.path / name).exists(), name
    curve = json.loads((adapter.path / "loss.json").read_text())
    assert [set(c) for c in curve] == [{"step", "epoch", "loss"}] * 2


def test_train_params_rejects_an_unknown_trainer():
    with pytest.raises(ValidationError):
        TrainParams.model_validate({"trainer": "foo"})
    assert TrainParams.model_validate({"trainer": "trl"}).trainer == "trl"


def test_gradient_checkpointing_gives_the_same_gradients_and_the_same_key(tiny_checkpoint, embedded_tokenizer):
    import torch

    rows = _rows(embedded_tokenizer, 4)
    batch = collate(rows, [0, 1, 2, 3], _pad_id(embedded_tokenizer))
    grads = {}
    for on in (False, True):
        params = TrainParams(max_length=64, gradient_checkpointing=on)
        model = load_lora_model(tiny_checkpoint, params)
        model.train()
        assert model.get_base_model().is_gradient_checkpointing is on
        assistant_loss(model, batch).backward()
        grads[on] = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.requires_grad])
    assert grads[True].abs().sum() > 0
    torch.testing.assert_close(grads[True], grads[False], rtol=1e-5, atol=1e-7)
    # recomputing activations changes nothing trained: the adapter's key stays the same; TRL gets it too
    on, off = TrainParams(gradient_checkpointing=True), TrainParams()
    assert adapter_key("b", "d", on) == adapter_key("b", "d", off)
    assert on.trainer_kwargs(4, 1)["gradient_checkpointing"] is True
    with pytest.raises(ValidationError, match="gradient_checkpointing"):
        TrainParams(trainer="openai", gradient_checkpointing=True)
