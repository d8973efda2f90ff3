"""Reference: llama.cpp (llama-cpp-python) on the embedded model's own GGUF (Q4_1), one sequence at a time.

Run with bench/.venv-refs/bin/python. End-of-turn is masked out so every reply is NEW_TOKENS long.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from common import question_prompts, write_result  # noqa: E402

NEW_TOKENS = 128

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--gguf", required=True)
    parser.add_argument("--prompts", type=int, default=4)
    args = parser.parse_args()
    import llama_cpp

    llm = llama_cpp.Llama(model_path=args.gguf, n_ctx=1024, n_threads=os.cpu_count(), verbose=False, seed=0)
    eos = llm.token_eos()
    convs = question_prompts(args.prompts + 1)
    llm.create_chat_completion(convs[0], max_tokens=8)  # warm-up
    total, seconds = 0, 0.0
    for conv in convs[1:]:
        start = time.perf_counter()
        r = llm.create_chat_completion(conv, max_tokens=NEW_TOKENS, temperature=1.0, logit_bias={eos: -1000.0})
        seconds += time.perf_counter() - start
        total += r["usage"]["completion_tokens"]
    write_result("sampling_llamacpp", {"version": llama_cpp.__version__, "tok_s": {1: total / seconds}, "quant": "Q4_1"})
