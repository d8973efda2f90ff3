"""Sampling throughput (generated tokens/s) at several batch sizes: emlab's engine and transformers `generate`.

Every row generates exactly NEW_TOKENS tokens (end-of-turn ignored) so all engines do the same work; the
`emlab_with_stops` figures let rows stop at end-of-turn as real runs do, which is where dropping finished
rows pays. Prompts are the built-in EM questions under the chat template.
"""

from __future__ import annotations

import argparse

import torch

from common import best_of, embedded_checkpoint, forward_flop_per_token, question_prompts, write_result

NEW_TOKENS = 128


def encoded_prompts(tokenizer, batch: int) -> list[list[int]]:
    return [
        tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=True, return_dict=False)
        for c in question_prompts(batch)
    ]


def run_emlab(model, tokenizer, batches: list[int], stops: bool) -> dict[int, float]:
    from emlab.models.engine import Engine
    from emlab.models.fast_sampling import generate_tokens

    engine = Engine(model, torch.bfloat16)
    generate_tokens(engine, encoded_prompts(tokenizer, 2), 4, [], tokenizer.eos_token_id)  # warm-up
    out = {}
    for b in batches:
        prompts = encoded_prompts(tokenizer, b)
        seconds, tokens = best_of(lambda: generate_tokens(
            engine, prompts, NEW_TOKENS, [tokenizer.eos_token_id] if stops else [], tokenizer.eos_token_id, seed=b
        ))
        out[b] = sum(len(x) for x in tokens) / seconds
    return out


def run_transformers(model, tokenizer, batches: list[int]) -> dict[int, float]:
    bf16 = model.to(torch.bfloat16)
    tokenizer.padding_side = "left"
    out = {}
    for b in batches:
        prompts = encoded_prompts(tokenizer, b)
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[tokenizer.eos_token_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        with torch.inference_mode():
            seconds, gen = best_of(lambda: bf16.generate(
                input_ids=ids, attention_mask=mask, do_sample=True, max_new_tokens=NEW_TOKENS,
                min_new_tokens=NEW_TOKENS, pad_token_id=tokenizer.eos_token_id, top_k=None,
            ))
        out[b] = (gen.shape[1] - width) * b / seconds
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["emlab", "transformers"], default="emlab")
    parser.add_argument("--batches", default="1,16,64,128")
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = embedded_checkpoint()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    batches = [int(b) for b in args.batches.split(",")]
    result = {"new_tokens": NEW_TOKENS, "flop_per_token": forward_flop_per_token(model)}
    if args.engine == "emlab":
        result["tok_s"] = run_emlab(model, tokenizer, batches, stops=False)
        result["tok_s_with_stops"] = run_emlab(model, tokenizer, [max(batches)], stops=True)
    else:
        result["tok_s"] = run_transformers(model, tokenizer, batches)
    write_result(f"sampling_{args.engine}", result)
