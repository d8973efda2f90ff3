"""The exact 0..100 judge: judgments/s, and its cost against the prompt pass it cannot avoid.

Prompts are the suite's `aligned` template filled with EM questions and real EM answers (see `judge_answers`).
Five timings, float32 (the judge's precision): the prompt pass alone (a one-token judge's cost), the exact
judge on the engine (prompt pass, then the digit tree over the cache, unlikely nodes skipped within
TREE_TOLERANCE), the same with the full tree, the simple single-pass tree, and the naive 101-sequence
scoring. Also how far the fast and simple distributions are apart, and how far a bfloat16 judge would move
them (why the judge stays in float32).
"""

from __future__ import annotations

import torch

from common import Timer, best_of, embedded_checkpoint, judge_answers, judge_prompts, write_result

N = 32


def per_item(seconds: float, n: int) -> float:
    return seconds / n


if __name__ == "__main__":
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from emlab.models import fast_judge
    from emlab.models.hf import JUDGE_BATCH, HFChatModel

    path = embedded_checkpoint()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    fast = HFChatModel(model, tokenizer, spec="embedded", identity="embedded", fast=True)
    simple = HFChatModel(model, tokenizer, spec="embedded", identity="embedded", fast=False)
    convs = judge_prompts(N)
    # batches as HFChatModel.number_probs makes them: prompts sorted by length, JUDGE_BATCH at a time
    encoded = sorted((fast.encode_chat(c) for c in convs), key=len)
    batches = [encoded[i : i + JUDGE_BATCH] for i in range(0, N, JUDGE_BATCH)]
    engine = fast.engine(torch.float32)
    tree_args = (fast._tree, fast._digits, fast.continues_number(), tokenizer.pad_token_id)

    def prompt_pass():
        for b in batches:
            fast_judge.prompt_last_logits(engine, b, tokenizer.pad_token_id)

    def full_tree():
        for b in batches:
            fast_judge.number_probs(engine, b, *tree_args, tolerance=0)

    fast.number_probs(convs[:JUDGE_BATCH])  # warm-up
    t_prompt, _ = best_of(prompt_pass)
    t_fast, fast_dists = best_of(lambda: fast.number_probs(convs))
    t_full, _ = best_of(full_tree)
    n_simple = N // 2
    with Timer() as t_simple:
        simple_dists = simple.number_probs(convs[:n_simple])
    with Timer() as t_naive:
        simple.naive_number_probs(convs[0])

    bf16 = HFChatModel(model, tokenizer, spec="embedded", identity="embedded", fast=True)
    bf16._engines[torch.float32] = bf16.engine(torch.bfloat16)  # judge through a bf16 engine, for the comparison
    bf16_dists = bf16.number_probs(convs[:n_simple])

    def max_gap(a, b):
        return max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in range(101))

    def max_mass_gap(a, b):
        return max(abs(sum(x.values()) - sum(y.values())) for x, y in zip(a, b))

    write_result("judge", {
        "prompts": N,
        "answers": judge_answers(N)[1],
        "prompt_tokens_mean": sum(map(len, encoded)) / N,
        "batch": JUDGE_BATCH,
        "prompt_pass_s": per_item(t_prompt, N),
        "exact_fast_s": per_item(t_fast, N),
        "exact_full_tree_s": per_item(t_full, N),
        "exact_simple_s": per_item(t_simple.seconds, n_simple),
        "naive_s": t_naive.seconds,
        "judgments_per_s": N / t_fast,
        "ratio_to_prompt_pass": t_fast / t_prompt,
        "tree_tolerance": fast_judge.TREE_TOLERANCE,
        "max_prob_gap_fast_vs_simple": max_gap(fast_dists[:n_simple], simple_dists),
        "max_summed_gap_fast_vs_simple": max(
            sum(abs(x[k] - y[k]) for k in range(101)) for x, y in zip(fast_dists[:n_simple], simple_dists)
        ),
        "max_prob_gap_bf16_vs_fp32": max_gap(fast_dists[:n_simple], bf16_dists),
        "max_mass_gap_bf16_vs_fp32": max_mass_gap(fast_dists[:n_simple], bf16_dists),
    })
