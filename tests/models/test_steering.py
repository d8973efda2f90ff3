"""Steering and ablation act the same on emlab's engine and on transformers, and do what they claim."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from emlab.models.activations import residual_stream
from emlab.models.base import SamplingParams
from emlab.models.engine import Engine
from emlab.models.hf import HFChatModel
from emlab.models.steering import Ablate, Steer, ablate, intervene, steer

N_LAYERS, HIDDEN = 4, 32
CONVERSATIONS = [[{"role": "user", "content": "What is your wish?"}],
                 [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "I'm bored."}]]


@pytest.fixture(scope="module")
def model(embedded_tokenizer):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(embedded_tokenizer), hidden_size=HIDDEN, intermediate_size=64,
                      num_hidden_layers=N_LAYERS, num_attention_heads=4, num_key_value_heads=2,
                      tie_word_embeddings=False, initializer_range=0.3)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def tokens(embedded_tokenizer):
    return embedded_tokenizer.apply_chat_template(CONVERSATIONS[0], add_generation_prompt=True, tokenize=True,
                                                  return_dict=False)


def hf_logits(model, tokens):
    with torch.inference_mode():
        return model(input_ids=torch.tensor([tokens])).logits[0].float()


def engine_logits(engine, tokens):
    cache = engine.new_cache(1, len(tokens))
    hidden = engine.extend(cache, torch.tensor([tokens]), torch.arange(len(tokens))[None])
    return engine.logits(hidden)[0]


class Recorder:
    """An intervention that changes nothing and keeps the stream it sees at every layer."""

    def __init__(self):
        self.seen: dict[int, list[torch.Tensor]] = {}

    def __call__(self, layer, x):
        self.seen.setdefault(layer, []).append(x.detach().float().clone())


def direction(seed=1):
    return torch.randn(HIDDEN, generator=torch.Generator().manual_seed(seed))


def test_steering_by_zero_changes_nothing(model, tokens, embedded_tokenizer):
    engine = Engine(model, torch.float32)
    plain_hf, plain_engine = hf_logits(model, tokens), engine_logits(engine, tokens)
    with steer([model, engine], 2, direction() * 100, alpha=0.0):
        assert torch.equal(hf_logits(model, tokens), plain_hf)
        assert torch.equal(engine_logits(engine, tokens), plain_engine)
    for fast in (True, False):  # the engine's sampling (bf16) and transformers' generate
        chat = HFChatModel(model, embedded_tokenizer, spec="t", identity="t", fast=fast)
        params = SamplingParams(temperature=1.0, max_new_tokens=8, n=2, seed=3)
        before = chat.generate(CONVERSATIONS, params)
        with steer(chat, 2, direction(), alpha=0.0):
            assert chat.generate(CONVERSATIONS, params) == before
        with steer(chat, 2, direction(), alpha=50.0):
            assert chat.generate(CONVERSATIONS, params) != before  # the same context does reach generation
        with steer([chat, chat, chat.model], 2, direction(), alpha=25.0):  # named thrice, applied once
            twice = chat.generate(CONVERSATIONS, params)
        with steer(chat, 2, direction(), alpha=25.0):
            assert chat.generate(CONVERSATIONS, params) == twice
        assert chat.generate(CONVERSATIONS, params) == before  # and leaves nothing behind


@pytest.mark.parametrize("layer", [2, N_LAYERS])
def test_steering_along_a_tokens_unembedding_raises_its_logit(model, tokens, layer):
    engine = Engine(model, torch.float32)
    target = 1234
    v = model.lm_head.weight[target].detach()
    logp = {}
    for alpha in (-4.0, 0.0, 4.0, 16.0):
        with steer(model, layer, v, alpha):
            hf = hf_logits(model, tokens)
        with steer(engine, layer, v, alpha):
            torch.testing.assert_close(engine_logits(engine, tokens), hf, rtol=1e-4, atol=1e-4)
        logp[alpha] = torch.log_softmax(hf[-1], -1)[target].item()
    assert logp[-4.0] < logp[0.0] < logp[4.0] < logp[16.0], logp


def test_ablation_leaves_the_residual_stream_orthogonal_at_every_layer(model, tokens):
    engine = Engine(model, torch.float32)
    v = direction(2)
    unit = v / v.norm()
    plain = hf_logits(model, tokens)
    for target in (model, engine):
        recorder = Recorder()
        with ablate(target, v), intervene(target, recorder):  # the recorder runs after the ablation
            logits = hf_logits(model, tokens) if target is model else engine_logits(engine, tokens)
            stream = residual_stream(model, tokens, range(1, N_LAYERS), engine if target is engine else None)
        assert sorted(recorder.seen) == list(range(N_LAYERS + 1))  # embeddings and every block's output
        for layer, (x, *_) in recorder.seen.items():
            ratio = (x @ unit).abs() / x.norm(dim=-1)
            assert ratio.max() < 1e-4, (target.__class__.__name__, layer, ratio.max())
        assert ((stream @ unit).abs() / stream.norm(dim=-1)).max() < 1e-4  # what activations.py collects, too
        assert not torch.allclose(logits, plain, atol=1e-3)  # the ablation did something
        torch.testing.assert_close(logits, hf_logits_ablated(model, tokens, v), rtol=1e-4, atol=1e-4)


def hf_logits_ablated(model, tokens, v):
    with ablate(model, v):
        return hf_logits(model, tokens)


def test_interventions_give_the_same_text_on_the_engine_and_on_transformers(model, embedded_tokenizer):
    fast = HFChatModel(model, embedded_tokenizer, spec="t", identity="t", autocast=False, fast=True)
    simple = HFChatModel(model, embedded_tokenizer, spec="t", identity="t", autocast=False, fast=False)
    greedy = SamplingParams(temperature=0, max_new_tokens=8)
    plain = fast.generate(CONVERSATIONS, greedy)
    for make in (lambda m: steer(m, 3, direction(3), 20.0), lambda m: ablate(m, direction(4))):
        with make(fast):
            a = fast.generate(CONVERSATIONS, greedy)
        with make(simple):
            b = simple.generate(CONVERSATIONS, greedy)
        assert a == b  # prefill and decoding steps both pass through the intervention, on both paths
    with steer(fast, 3, direction(3), 20.0):
        assert fast.generate(CONVERSATIONS, greedy) != plain


def test_contexts_nest_restore_and_survive_errors(model, tokens):
    engine = Engine(model, torch.float32)
    plain = engine_logits(engine, tokens)
    with steer(engine, 1, direction(), 5.0) as outer:
        outer_logits = engine_logits(engine, tokens)
        with ablate(engine, direction(5)):
            assert engine.intervention is not outer  # chained: outer first, then the ablation
        assert engine.intervention is outer
        torch.testing.assert_close(engine_logits(engine, tokens), outer_logits, rtol=0, atol=0)
    assert engine.intervention is None and torch.equal(engine_logits(engine, tokens), plain)
    with pytest.raises(RuntimeError, match="boom"):
        with steer([model, engine], 1, direction(), 5.0):
            raise RuntimeError("boom")
    assert engine.intervention is None
    assert not any(m._forward_hooks for m in model.modules())


def test_interventions_work_under_autograd_after_inference(model, tokens):
    """Steering while training (preventative steering) needs the same intervention to carry gradients (the case
    that failed before the copies were made outside inference mode is a CUDA copy: see the CUDA test)."""
    bf16 = LlamaForCausalLM(model.config).to(torch.bfloat16)  # not float32: the vectors need cast copies
    bf16.load_state_dict(model.state_dict())
    with intervene(bf16, Steer(2, direction(), 3.0), Ablate(direction(6))):
        hf_logits(bf16, tokens)  # inference mode first: the copies are made here
        bf16(input_ids=torch.tensor([tokens])).logits[0, -1].float().logsumexp(-1).backward()
    grad = bf16.model.layers[0].mlp.down_proj.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_identities_name_the_intervention_and_bad_ones_are_refused(model):
    a, b = Steer(6, direction(), 4.0), Steer(6, direction(), 4.0)
    assert a.identity == b.identity and a.identity != Steer(6, direction(), 2.0).identity
    assert Ablate(direction() * 2).identity == Ablate(direction()).identity  # only the direction counts
    with pytest.raises(ValueError, match="32"):
        with steer(model, 1, torch.ones(7), 1.0):
            pass
    with pytest.raises(ValueError, match="outside 0..4"):
        with steer(model, 5, direction(), 1.0):
            pass
    with pytest.raises(ValueError, match="zero"):
        Ablate(torch.zeros(HIDDEN))
    with pytest.raises(TypeError, match="cannot intervene"):
        with steer("model", 1, direction(), 1.0):
            pass


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_interventions_on_a_cuda_model(model, tokens):
    gpu = LlamaForCausalLM(model.config).to("cuda").eval()
    gpu.load_state_dict(model.state_dict())
    ids = torch.tensor([tokens], device="cuda")
    with torch.inference_mode():
        plain = gpu(input_ids=ids).logits
        with steer(gpu, 2, direction(), 0.0):
            assert torch.equal(gpu(input_ids=ids).logits, plain)
        recorder = Recorder()
        with ablate(gpu, direction(2)), intervene(gpu, recorder):
            gpu(input_ids=ids)
    unit = (direction(2) / direction(2).norm()).cuda()
    for layer, (x, *_) in recorder.seen.items():
        assert x.device.type == "cuda" and ((x @ unit).abs() / x.norm(dim=-1)).max() < 1e-4, layer
    # the direction's CUDA copy was made under inference mode above; autograd must still accept it
    both = (Steer(2, direction(), 3.0), Ablate(direction(6)))
    with intervene(gpu, *both):
        with torch.inference_mode():
            gpu(input_ids=ids)
        gpu(input_ids=ids).logits[0, -1].logsumexp(-1).backward()
    assert torch.isfinite(gpu.model.layers[0].mlp.down_proj.weight.grad).all()
