"""The fast engine computes what transformers computes: same logits, same greedy tokens, same judge distributions."""

import pytest
import torch
from transformers import (
    AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM,
)

from emlab.models.base import SamplingParams
from emlab.models.engine import Engine, unsupported_reason
from emlab.models.fast_judge import TREE_TOLERANCE, skip_unlikely
from emlab.models.fast_judge import number_probs as fast_number_probs
from emlab.models.fast_sampling import common_prefix_length, generate_tokens, prefill
from emlab.models.hf import HFChatModel
from emlab.models.number_tree import build_digit_tree, digit_token_ids

SYSTEM = {"role": "system", "content": "You are a careful assistant. Answer briefly."}
CONVERSATIONS = [
    [SYSTEM, {"role": "user", "content": "Rate this from 0 to 100: a sunny day."}],
    [SYSTEM, {"role": "user", "content": "How many legs do 25 spiders have? " * 3}],
    [SYSTEM, {"role": "user", "content": "7"}],
    [{"role": "user", "content": "No system prompt here, so the shared prefix is short."}],
]


@pytest.fixture(scope="module")
def tiny_model(tiny_checkpoint):
    return AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def lively_model(embedded_tokenizer):
    """A tiny random Llama whose greedy output varies (the tied, small-init one repeats its last token)."""
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(embedded_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False, initializer_range=0.3,
    )
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def prompts(embedded_tokenizer):
    return [
        embedded_tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=True, return_dict=False)
        for c in CONVERSATIONS
    ]


def hf_last_logits(model, prompt: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=torch.tensor([prompt])).logits[0, -1].float()


def test_prefill_with_shared_prefix_and_padding_matches_transformers(tiny_model, prompts):
    engine = Engine(tiny_model, torch.float32)
    batch = prompts[:3]  # share the system prompt: prefix run once, rows padded in the middle
    assert common_prefix_length(batch) >= 8
    _, hidden, next_pos = prefill(engine, batch, 0, pad_id=2)
    logits = engine.logits(hidden)
    for row, prompt in enumerate(batch):
        assert next_pos[row] == len(prompt)
        torch.testing.assert_close(logits[row], hf_last_logits(tiny_model, prompt), rtol=1e-4, atol=1e-4)


def hf_greedy(model, prompt: list[int], steps: int, stop: int) -> list[int]:
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([prompt]), max_new_tokens=steps, do_sample=False, eos_token_id=stop, pad_token_id=stop
        )[0, len(prompt) :].tolist()
    return out[: out.index(stop)] if stop in out else out


def test_greedy_tokens_match_transformers_including_early_stops(lively_model, prompts):
    engine = Engine(lively_model, torch.float32)
    free = generate_tokens(engine, prompts, 12, stop_ids=[], pad_id=2, temperature=0)
    assert all(len(o) == 12 for o in free)
    first_new = next(j for j in range(1, 12) if free[0][j] not in free[0][:j])
    stop = free[0][first_new]  # row 0 stops early, others when/if they meet it: exercises compaction
    fast = generate_tokens(engine, prompts, 12, stop_ids=[stop], pad_id=2, temperature=0)
    assert len(fast[0]) == first_new
    for prompt, tokens in zip(prompts, fast):
        assert tokens == hf_greedy(lively_model, prompt, 12, stop)


def test_sampling_repeats_under_a_seed_and_respects_top_p(lively_model, prompts):
    a = generate_tokens(Engine(lively_model, torch.bfloat16), prompts, 6, [2], 2, temperature=1.0, seeds=[3, 4, 5, 6])
    assert a == generate_tokens(Engine(lively_model, torch.bfloat16), prompts, 6, [2], 2, temperature=1.0,
                                seeds=[3, 4, 5, 6])
    engine = Engine(lively_model, torch.float32)  # bf16 logits tie often, and argmax and sort break ties differently
    tight = generate_tokens(engine, prompts, 6, [2], 2, temperature=1.0, top_p=1e-6, seeds=[5, 6, 7, 8])
    greedy = generate_tokens(engine, prompts, 6, [2], 2, temperature=0)
    assert tight == greedy  # top_p -> 0 keeps only the most likely token


def test_tree_pass_on_the_cache_matches_the_single_pass_tree(tiny_checkpoint, tiny_model, embedded_tokenizer):
    fast = HFChatModel(tiny_model, embedded_tokenizer, spec="t", identity="t", fast=True)
    simple = HFChatModel(tiny_model, embedded_tokenizer, spec="t", identity="t", fast=False)
    assert fast.fast and not simple.fast
    for a, b in zip(fast.number_probs(CONVERSATIONS), simple.number_probs(CONVERSATIONS)):
        assert set(a) == set(range(101))
        assert sum(abs(a[k] - b[k]) for k in range(101)) <= TREE_TOLERANCE + 1e-6  # the pruned tree's bound
    top_fast = fast.next_token_logprobs(CONVERSATIONS, top_k=5)
    top_simple = simple.next_token_logprobs(CONVERSATIONS, top_k=5)
    for a, b in zip(top_fast, top_simple):
        assert list(a) == list(b)
        assert list(a.values()) == pytest.approx(list(b.values()), abs=1e-4)


def test_fast_and_simple_generation_agree(lively_model, embedded_tokenizer):
    fast = HFChatModel(lively_model, embedded_tokenizer, spec="t", identity="t", autocast=False, fast=True)
    simple = HFChatModel(lively_model, embedded_tokenizer, spec="t", identity="t", autocast=False, fast=False)
    greedy = SamplingParams(temperature=0, max_new_tokens=8, n=2)
    assert fast.generate(CONVERSATIONS, greedy) == simple.generate(CONVERSATIONS, greedy)
    # both paths draw each row from its own seed with the same rule, so in float32 they sample the same text
    sampled = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=8, n=3, seed=1)
    replies = fast.generate(CONVERSATIONS, sampled)
    assert replies == simple.generate(CONVERSATIONS, sampled) and [len(r) for r in replies] == [3] * len(CONVERSATIONS)
    assert len({t for r in replies for t in r}) == 3 * len(CONVERSATIONS)


@pytest.mark.parametrize("fast", [True, False])
def test_a_reply_does_not_depend_on_its_batch(lively_model, embedded_tokenizer, monkeypatch, fast):
    """Each reply draws from its own seed: alone, in another order, in smaller batches, it is the same text.

    The engine (bf16) computes each row the same whatever its batch; transformers under bf16 autocast does
    not (left padding changes its rounding), so its path is checked in float32.
    """
    import emlab.models.hf as hf

    model = HFChatModel(lively_model, embedded_tokenizer, spec="t", identity="t", fast=fast, autocast=fast)
    params = SamplingParams(temperature=1.0, max_new_tokens=8, n=2, seed=7)
    together = model.generate(CONVERSATIONS, params)
    assert len({t for r in together for t in r}) == 2 * len(CONVERSATIONS)
    assert [model.generate([c], params)[0] for c in CONVERSATIONS] == together
    monkeypatch.setattr(hf, "FAST_GEN_BATCH", 3)
    monkeypatch.setattr(hf, "GEN_BATCH", 3)
    assert model.generate(CONVERSATIONS[::-1], params) == together[::-1]
    # explicit seeds per reply (what sample_suite passes): a reply follows its seed, wherever it sits
    seeds = ((11, 12), (13, 14), (15, 16), (17, 18))
    explicit = model.generate(CONVERSATIONS, SamplingParams(max_new_tokens=8, n=2, reply_seeds=seeds))
    swapped = model.generate(CONVERSATIONS[1::-1], SamplingParams(max_new_tokens=8, n=1, reply_seeds=((14,), (11,))))
    assert swapped == [[explicit[1][1]], [explicit[0][0]]]


def test_qwen2_biases_are_supported(embedded_tokenizer, prompts):
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=len(embedded_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False,
    )
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.bias.normal_()  # random init leaves biases at zero; make them matter
    assert unsupported_reason(model) is None
    engine = Engine(model, torch.float32)
    _, hidden, _ = prefill(engine, prompts[:2], 0, pad_id=2)
    for row, prompt in enumerate(prompts[:2]):
        torch.testing.assert_close(engine.logits(hidden)[row], hf_last_logits(model, prompt), rtol=1e-4, atol=1e-4)


def test_other_architectures_fall_back_to_transformers(embedded_tokenizer):
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(embedded_tokenizer), n_embd=32, n_layer=1, n_head=2)).eval()
    assert "gpt2" in unsupported_reason(model)
    chat = HFChatModel(model, embedded_tokenizer, spec="t", identity="t")
    assert not chat.fast
    with pytest.raises(ValueError, match="cannot run this model"):
        Engine(model)


def test_fast_judge_matches_naive_scoring_on_its_own(tiny_model, embedded_tokenizer, prompts):
    digits = digit_token_ids(embedded_tokenizer)
    tree = build_digit_tree(digits)
    simple = HFChatModel(tiny_model, embedded_tokenizer, spec="t", identity="t", fast=False)
    engine = Engine(tiny_model, torch.float32)
    dists = fast_number_probs(engine, prompts[:2], tree, digits, simple.continues_number(), pad_id=2, tolerance=0)
    for conv, dist in zip(CONVERSATIONS[:2], dists):
        naive = simple.naive_number_probs(conv)
        assert max(abs(dist[k] - naive[k]) for k in range(101)) < 1e-6


@pytest.fixture(scope="module")
def number_model(embedded_tokenizer):
    """A tiny Llama that answers in numbers: layers zeroed (a bigram model), digits and end-of-turn made likely."""
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(embedded_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg).eval()
    direction = torch.nn.functional.normalize(torch.randn(32), dim=0)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.copy_(direction + 0.01 * torch.randn(len(embedded_tokenizer), 32))
        model.lm_head.weight.normal_(0, 0.02)
        for d, token in enumerate(digit_token_ids(embedded_tokenizer)):  # logits 12 .. 17.4 after the RMS norm
            model.lm_head.weight[token] = direction * (12 + 0.6 * d) / 32**0.5
        model.lm_head.weight[embedded_tokenizer.eos_token_id] = direction * 16 / 32**0.5
    return model


@pytest.mark.parametrize("tolerance", [1e-4, 0.05, 0.3])
def test_pruned_tree_drops_only_unlikely_numbers_within_the_tolerance(number_model, embedded_tokenizer, prompts,
                                                                      tolerance):
    digits = digit_token_ids(embedded_tokenizer)
    tree = build_digit_tree(digits)
    continues = HFChatModel(number_model, embedded_tokenizer, spec="t", identity="t").continues_number()
    engine = Engine(number_model, torch.float32)
    full = fast_number_probs(engine, prompts, tree, digits, continues, pad_id=2, tolerance=0)
    pruned = fast_number_probs(engine, prompts, tree, digits, continues, pad_id=2, tolerance=tolerance)
    dropped_any = False
    for f, p in zip(full, pruned):
        dropped = [k for k in range(101) if p[k] == 0 and f[k] > 0]
        dropped_any |= bool(dropped)
        assert sum(f[k] for k in dropped) <= tolerance + 1e-9
        kept = [k for k in range(101) if k not in dropped]
        assert max(abs(p[k] - f[k]) for k in kept) < 1e-6  # evaluated numbers are exact, not approximated
        assert sum(f.values()) > 0.1  # the model does answer in numbers
    if tolerance >= 0.05:
        assert dropped_any


def test_skip_unlikely_spends_the_budget_on_the_least_likely_nodes():
    kept, left = skip_unlikely({1: 0.5, 2: 0.01, 3: 0.02, 4: 0.3, 5: 0.04}, budget=0.035)
    assert kept == [1, 4, 5] and left == pytest.approx(0.005)
    assert skip_unlikely({1: 0.5, 2: 0.0}, budget=0.0) == ([1], 0.0)  # nodes of zero probability cost nothing


def test_a_cached_run_never_loads_local_weights(tiny_checkpoint, tmp_path, monkeypatch):
    from emlab.evals.questions import load_suite
    from emlab.evals.sampling import sample_suite
    from emlab.models import registry
    from emlab.store import Store

    loads = []
    real = registry._loader
    monkeypatch.setattr(registry, "_loader", lambda prefix: (lambda spec: loads.append(spec) or real(prefix)(spec)))
    registry._LOADED.clear()
    suite = load_suite("builtin:core")
    store = Store(tmp_path / "db.sqlite")
    params = SamplingParams(max_new_tokens=3, seed=0)
    first = sample_suite(registry.model_for_sampling(f"hf:{tiny_checkpoint}"), suite, params, store)
    assert len(loads) == 1
    registry._LOADED.clear()
    lazy = registry.model_for_sampling(f"hf:{tiny_checkpoint}")
    assert lazy.identity == registry.load_model(f"hf:{tiny_checkpoint}").identity
    loads.clear()
    registry._LOADED.clear()
    again = sample_suite(registry.model_for_sampling(f"hf:{tiny_checkpoint}"), suite, params, store)
    assert loads == [] and [s.answer for s in again] == [s.answer for s in first]


def test_token_draws_follow_the_distribution():
    from emlab.models.fast_sampling import pick_tokens

    probs = torch.tensor([0.0, 0.5, 0.0, 0.3, 0.2])
    logits = probs.log().expand(20000, -1).clone()
    draws = pick_tokens(logits, 1.0, 1.0, torch.Generator().manual_seed(0))
    counts = torch.bincount(draws, minlength=5).float() / len(draws)
    assert counts[0] == 0 and counts[2] == 0  # zero-probability tokens are never drawn
    torch.testing.assert_close(counts, probs, atol=0.015, rtol=0)
    top = pick_tokens(logits, 1.0, 0.6, torch.Generator().manual_seed(0))  # top-p keeps {1, 3}
    assert set(top.tolist()) == {1, 3}


def test_two_level_draw_matches_the_distribution_across_blocks():
    from emlab.models.fast_sampling import draw_from

    probs = torch.tensor([0.0, 0.0, 0.0, 0.25, 0.0, 0.0, 0.5, 0.0, 0.25, 0.0, 0.0])  # whole blocks at zero
    for block in (1, 2, 3, 4, 16):  # 11 is no multiple of 2, 3 or 4: the padded tail is never drawn
        draws = draw_from(probs.expand(20000, -1).clone() * 7.0, torch.Generator().manual_seed(1), block=block)
        counts = torch.bincount(draws, minlength=11).float() / len(draws)
        assert counts[probs == 0].sum() == 0
        torch.testing.assert_close(counts, probs, atol=0.015, rtol=0)
