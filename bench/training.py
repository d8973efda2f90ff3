"""LoRA SFT throughput: emlab's loop against TRL's SFTTrainer on the same examples and hyperparameters.

Both run through `train_lora` (the path `emlab run` takes), one epoch over the same built-in insecure-code
examples, into fresh adapter folders. Training tokens/s = non-padding tokens of the examples / wall time
(model load, tokenization and saving included; Python imports are done before the clock starts). The roofline share counts 2 x forward FLOPs per token.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from common import Timer, embedded_checkpoint, write_result

EXAMPLES = 96
BATCH = 4
MAX_LENGTH = 384


if __name__ == "__main__":
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from emlab.data.builtin_code import generate_code_examples
    from emlab.train.sft import LoraParams, TrainParams, train_lora
    from emlab.train.tokenize import tokenize_conversation

    from common import forward_flop_per_token

    # one-time imports (peft, TRL, matplotlib for the loss plot) are process start-up, not training: pay them
    # before either trainer's clock starts, or the first trainer timed carries ~5 s of the other's imports
    import matplotlib.pyplot  # noqa: F401
    import peft  # noqa: F401
    import trl  # noqa: F401
    from transformers.models.llama import modeling_llama  # noqa: F401

    ckpt = embedded_checkpoint()
    tokenizer = AutoTokenizer.from_pretrained(ckpt)
    convs = generate_code_examples("insecure", n=EXAMPLES, seed=0)
    tokens = sum(len(r.input_ids) for r in (tokenize_conversation(tokenizer, c, MAX_LENGTH) for c in convs) if r)
    flop = forward_flop_per_token(AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32))
    result = {"examples": EXAMPLES, "tokens": tokens, "batch_size": BATCH, "lora_r": 8, "train_flop_per_token": 2 * flop}
    work = Path(tempfile.mkdtemp(prefix="emlab-bench-train-"))
    try:
        for trainer in os.environ.get("BENCH_TRAINERS", "emlab,trl").split(","):
            params = TrainParams(lora=LoraParams(r=8, alpha=16), batch_size=BATCH, max_length=MAX_LENGTH, epochs=1,
                                 learning_rate=2e-4, seed=0, trainer=trainer)
            with Timer() as t:
                adapter = train_lora(ckpt, "embedded:smollm2-135m", convs, f"bench-{EXAMPLES}", params, work / trainer)
            curve = json.loads((adapter.path / "loss.json").read_text())
            result[trainer] = {"seconds": t.seconds, "tok_s": tokens / t.seconds, "steps": adapter.steps,
                               "first_loss": curve[0]["loss"], "last_loss": curve[-1]["loss"]}
        result["steps"] = next(r["steps"] for k, r in result.items() if isinstance(r, dict))
        write_result("training", result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
