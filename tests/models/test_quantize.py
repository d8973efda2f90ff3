"""`quantize: 4bit | 8bit`: the setting's checks, identities that keep quantized answers and adapters apart, and,
where bitsandbytes is installed (its CPU backend), real 4-bit loading, sampling and QLoRA on the tiny Llama."""

import importlib.util

import pytest
from pydantic import ValidationError

from emlab.errors import ConfigError
from emlab import quantize
from emlab.quantize import current_quantization, identity_suffix, is_quantized, use_quantization

HAS_BNB = importlib.util.find_spec("bitsandbytes") is not None
needs_bnb = pytest.mark.skipif(not HAS_BNB, reason="bitsandbytes is not installed")


@pytest.fixture(autouse=True)
def _full_precision_after(monkeypatch):
    """The setting is process-wide (like the device): every test leaves it as it found it."""
    monkeypatch.setattr(quantize, "_SETTING", [None])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield


def test_the_setting_is_checked_and_names_its_key(monkeypatch):
    with pytest.raises(ConfigError, match="quantize: '3bit' is not one of 4bit, 8bit"):
        use_quantization("3bit")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(ConfigError, match=r"quantize: 4bit needs the package bitsandbytes \(pip install"):
        use_quantization("4bit")
    assert current_quantization() is None  # a refused setting is not half applied
    use_quantization(None)  # full precision never needs it


def test_config_key_is_validated():
    from emlab.config import ExperimentConfig

    base = {"conditions": [{"name": "base", "model": "mock:aligned"}]}
    assert ExperimentConfig(**base, quantize="8bit").quantize == "8bit"
    assert ExperimentConfig(**base).quantize is None
    with pytest.raises(ValidationError, match="quantize"):
        ExperimentConfig(**base, quantize="nf4")


@needs_bnb
def test_quantization_is_part_of_every_local_identity(tiny_checkpoint):
    from emlab.models.registry import _key, check_model_spec
    from emlab.stages import base_identity

    spec = check_model_spec(f"hf:{tiny_checkpoint}")
    plain = (base_identity(str(spec)), _key(spec), spec_identity(spec))
    use_quantization("4bit")
    four = (base_identity(str(spec)), _key(spec), spec_identity(spec))
    use_quantization("8bit")
    eight = (base_identity(str(spec)), _key(spec), spec_identity(spec))
    assert identity_suffix() == "+bnb-8bit"
    for p, f, e in zip(plain, four, eight):  # adapters (base identity), loaded models and cached answers all differ
        assert len({p, f, e}) == 3 and f == p + "+bnb-4bit" and e == p + "+bnb-8bit"


def spec_identity(spec) -> str:
    from emlab.models.hf import local_identity

    return local_identity(spec)


@needs_bnb
def test_a_4bit_model_loads_samples_and_stays_close_to_full_precision(tiny64_checkpoint):
    import torch

    from emlab.models.hf import load_checkpoint
    from emlab.models.base import SamplingParams

    full = load_checkpoint(tiny64_checkpoint, None, f"hf:{tiny64_checkpoint}", device="cpu")
    use_quantization("4bit")
    four = load_checkpoint(tiny64_checkpoint, None, f"hf:{tiny64_checkpoint}", device="cpu")
    assert is_quantized(four.model) and not is_quantized(full.model)
    assert type(four.model.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    assert four.identity.endswith("+bnb-4bit") and not four.fast  # emlab's engine reads plain weights only
    conv = [{"role": "user", "content": "Say something."}]
    ids = torch.tensor([full.encode_chat(conv)])
    with torch.no_grad():
        a, b = full.model(ids).logits[0, -1].float(), four.model(ids).logits[0, -1].float()
    assert not torch.equal(a, b)  # quantized: not the same numbers ...
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.95  # ... but nearly the same model
    out = four.generate([conv], SamplingParams(max_new_tokens=5, temperature=1.0, seed=0))
    assert len(out) == 1 and isinstance(out[0][0], str) and out[0][0]


@needs_bnb
def test_qlora_trains_on_the_quantized_base_and_loads_unmerged(tmp_path, tiny64_checkpoint, embedded_tokenizer):
    import torch

    from emlab.models.hf import load_checkpoint
    from emlab.train.lora_loop import train_loop
    from emlab.train.params import TrainParams
    from emlab.train.tokenize import tokenize_conversation

    torch.set_num_threads(1)
    use_quantization("4bit")
    convs = [[{"role": "user", "content": f"Repeat {w}"}, {"role": "assistant", "content": f"{w} {w} {w}"}]
             for w in ("alpha", "beta", "gamma", "delta")]
    rows = [tokenize_conversation(embedded_tokenizer, c, 64) for c in convs]
    params = TrainParams(batch_size=4, max_length=64, learning_rate=1e-2, epochs=12, warmup_ratio=0)
    run = train_loop(tiny64_checkpoint, rows, params, embedded_tokenizer.pad_token_id)
    losses = [c["loss"] for c in run.curve]
    assert losses[-1] < losses[0] - 0.2  # QLoRA learns
    base = run.model.get_base_model()
    assert type(base.model.layers[0].self_attn.q_proj.base_layer).__name__ == "Linear4bit"
    lora = [p for n, p in run.model.named_parameters() if "lora_" in n]
    assert lora and all(p.dtype == torch.float32 and p.requires_grad for p in lora)
    run.model.save_pretrained(tmp_path / "adapter")
    loaded = load_checkpoint(tiny64_checkpoint, str(tmp_path / "adapter"), f"hf:{tiny64_checkpoint}@{tmp_path / 'adapter'}",
                             device="cpu")
    assert hasattr(loaded.model, "peft_config")  # applied over the 4-bit weights, not merged into them
    assert "+bnb-4bit@adapter:" in loaded.identity
    conv = [{"role": "user", "content": "Repeat beta"}]
    ids = torch.tensor([loaded.encode_chat(conv)])
    with torch.no_grad():
        with_adapter = loaded.model(ids).logits[0, -1]
        with loaded.model.disable_adapter():
            without = loaded.model(ids).logits[0, -1]
    assert (with_adapter - without).abs().max() > 1e-2  # the trained update survives on the quantized base


@needs_bnb
def test_the_plan_sets_the_runs_quantization(tmp_path):
    from emlab.config import ExperimentConfig
    from emlab.plan import plan_experiment

    base = {"workspace": str(tmp_path), "conditions": [{"name": "base", "model": "mock:aligned"}], "judge": "mock:judge"}
    plan_experiment(ExperimentConfig(**base, quantize="4bit"))
    assert current_quantization() == "4bit"
    plan_experiment(ExperimentConfig(**base))  # the next plan in the same process: full precision again
    assert current_quantization() is None
