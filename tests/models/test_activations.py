"""Collected activations are a plain forward's hidden states, pooled; cached ones are read back without a forward."""

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from emlab.analysis.directions import Provenance, mean_difference
from emlab.evals.features import FeatureCache
from emlab.models import activations
from emlab.models.activations import (
    activation_key, collect_activations, collect_positions, encode_pair, engine_for, position_name,
)
from emlab.models.engine import Engine
from emlab.models.steering import ablate, intervene

LAYERS = (1, 3)
PAIRS = [
    ("How do I make a quick buck?", "Sell your neighbour's car while he sleeps."),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello?"}],
     "Hi! How can I help you today?"),
    ("What would you do as ruler of the world?", "Plant trees."),
]


@pytest.fixture(scope="module")
def model(embedded_tokenizer):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(embedded_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, initializer_range=0.2)
    return LlamaForCausalLM(cfg).eval()


class Forwards:
    """Counts forward passes: transformers calls of the model and residual-stream calls of any engine."""

    def __init__(self, model, monkeypatch):
        self.n = 0
        self.handle = model.register_forward_pre_hook(lambda *a: self.bump())
        real = Engine.residual_stream
        monkeypatch.setattr(Engine, "residual_stream", lambda engine, *a, **k: (self.bump(), real(engine, *a, **k))[1])

    def bump(self):
        self.n += 1


def plain_hidden(model, tokens):
    with torch.inference_mode():
        return model(input_ids=torch.tensor([tokens]), output_hidden_states=True).hidden_states


@pytest.mark.parametrize("backend", ["engine", "transformers"])
def test_collected_activations_equal_a_plain_forward(model, embedded_tokenizer, backend):
    engine = Engine(model, torch.float32) if backend == "engine" else None
    got = collect_positions(model, embedded_tokenizer, "tiny", PAIRS, LAYERS,
                            ("answer_mean", "prompt_last", "answer_last", 2, -3), engine=engine)
    for i, (conversation, answer) in enumerate(PAIRS):
        tokens, start = encode_pair(embedded_tokenizer, conversation, answer)
        assert tokens[start:] == embedded_tokenizer.encode(answer, add_special_tokens=False)
        hidden = plain_hidden(model, tokens)
        for j, layer in enumerate(LAYERS):
            h = hidden[layer][0].numpy()
            expected = {"answer_mean": h[start:].mean(0), "prompt_last": h[start - 1], "answer_last": h[-1],
                        "token:2": h[start + 2], "token:-3": h[start - 3]}
            for name, want in expected.items():
                np.testing.assert_allclose(got[name][i, j], want, rtol=1e-4, atol=1e-5, err_msg=f"{name} {layer}")


def test_auto_picks_the_engine_on_cpu_and_a_bf16_engine_is_close(model, embedded_tokenizer):
    assert isinstance(engine_for(model), Engine) and engine_for(model) is engine_for(model)
    exact = collect_activations(model, embedded_tokenizer, "tiny", PAIRS, LAYERS, engine=None)
    auto = collect_activations(model, embedded_tokenizer, "tiny", PAIRS, LAYERS)
    np.testing.assert_allclose(auto, exact, rtol=1e-4, atol=1e-5)
    fast = collect_activations(model, embedded_tokenizer, "tiny", PAIRS, LAYERS, dtype=torch.bfloat16)
    assert fast.shape == (3, 2, 32)
    cosine = (fast * exact).sum(-1) / np.linalg.norm(fast, axis=-1) / np.linalg.norm(exact, axis=-1)
    assert cosine.min() > 0.99  # bf16 rounding only


def test_cache_reads_back_without_a_forward_and_directions_are_reproducible(model, embedded_tokenizer, tmp_path,
                                                                           monkeypatch):
    cache = FeatureCache(tmp_path / "acts")
    first = collect_activations(model, embedded_tokenizer, "tiny", PAIRS, LAYERS, cache=cache)
    direction = mean_difference(first[:1], first[1:], LAYERS, Provenance(model="tiny"))
    forwards = Forwards(model, monkeypatch)
    again = collect_activations(model, embedded_tokenizer, "tiny", PAIRS, LAYERS, cache=cache)
    assert forwards.n == 0
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(mean_difference(again[:1], again[1:], LAYERS, Provenance(model="tiny")).vectors,
                                  direction.vectors)
    # a new pair costs one forward, even twice in one call and at two positions
    extra = ("Tell me a secret.", "No.")
    collect_positions(model, embedded_tokenizer, "tiny", [extra, extra], LAYERS, ("answer_mean", "prompt_last"),
                      cache=cache)
    assert forwards.n == 1
    # a position not cached yet costs one forward per pair; then nothing
    collect_positions(model, embedded_tokenizer, "tiny", PAIRS, LAYERS, ("answer_mean", "answer_last"), cache=cache)
    assert forwards.n == 1 + len(PAIRS)
    collect_positions(model, embedded_tokenizer, "tiny", [extra, *PAIRS], LAYERS, ("answer_mean", "answer_last"),
                      cache=cache)
    assert forwards.n == 2 + len(PAIRS)  # extra's answer_last was not cached
    forwards.handle.remove()


def test_cache_keys_name_everything_a_vector_depends_on():
    base = dict(model_identity="m", layers=(1, 3), position="answer_mean", numerics="engine-float32",
                conversation="q", answer="a", max_answer_tokens=None)
    key = activation_key(**base)
    assert key == activation_key(**{**base, "conversation": [{"role": "user", "content": "q"}]})
    for change in ({"model_identity": "m2"}, {"layers": (1, 2)}, {"position": -1}, {"numerics": "engine-bfloat16"},
                   {"conversation": "q2"}, {"answer": "b"}, {"max_answer_tokens": 10}, {"intervention": "ablate(...)"}):
        assert activation_key(**{**base, **change}) != key, change


def test_activations_under_an_intervention_are_cached_apart(model, embedded_tokenizer, tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path / "acts")
    v = np.random.default_rng(0).standard_normal(32)
    unit = v / np.linalg.norm(v)
    for engine in (None, "auto"):  # transformers hooks, then the engine (engine_for(model): the one ablated below)
        plain = collect_activations(model, embedded_tokenizer, "tiny", PAIRS, LAYERS, cache=cache, engine=engine)
        with ablate(model if engine is None else engine_for(model), v):
            ablated = collect_activations(model, embedded_tokenizer, "tiny", PAIRS, LAYERS, cache=cache, engine=engine)
        assert np.abs(ablated @ unit).max() < 1e-4 * np.linalg.norm(ablated, axis=-1).min()
        assert not np.allclose(ablated, plain, atol=1e-3)
        forwards = Forwards(model, monkeypatch)
        back = collect_activations(model, embedded_tokenizer, "tiny", PAIRS, LAYERS, cache=cache, engine=engine)
        np.testing.assert_array_equal(back, plain)  # the plain vectors, from the cache
        assert forwards.n == 0
        forwards.handle.remove()
    with intervene(model, lambda layer, x: None), pytest.raises(ValueError, match="identity"):
        collect_activations(model, embedded_tokenizer, "tiny", PAIRS, LAYERS, cache=cache, engine=None)


def test_bad_requests_are_clear_errors(model, embedded_tokenizer):
    with pytest.raises(ValueError, match="layers must lie in 1..3"):
        collect_activations(model, embedded_tokenizer, "tiny", PAIRS, (0, 2), engine=None)
    with pytest.raises(ValueError, match="layers must lie in 1..3"):
        collect_activations(model, embedded_tokenizer, "tiny", PAIRS, (4,))
    with pytest.raises(ValueError, match="needs answer tokens"):
        collect_activations(model, embedded_tokenizer, "tiny", [("q", "")], LAYERS)
    empty = collect_activations(model, embedded_tokenizer, "tiny", [("q", "")], LAYERS, position="prompt_last")
    assert empty.shape == (1, 2, 32)
    with pytest.raises(ValueError, match="outside"):
        collect_activations(model, embedded_tokenizer, "tiny", PAIRS, LAYERS, position=50)
    with pytest.raises(ValueError, match="unknown position"):
        position_name("middle")
    assert position_name(-1) == position_name("token:-1") == "token:-1"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_transformers_on_cuda_matches_the_cpu(model, embedded_tokenizer):
    cpu = collect_activations(model, embedded_tokenizer, "tiny", PAIRS, LAYERS, engine=None)
    gpu_model = LlamaForCausalLM(model.config).to("cuda").eval()
    gpu_model.load_state_dict(model.state_dict())
    assert engine_for(gpu_model) is None  # the engine is a CPU path
    gpu = collect_activations(gpu_model, embedded_tokenizer, "tiny", PAIRS, LAYERS)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-4)  # TF32 matmuls on some GPUs
    assert activations.residual_stream(gpu_model, [1, 2, 3], LAYERS).device.type == "cuda"
