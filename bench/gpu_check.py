"""GPU check: emlab's CUDA paths against the CPU, then sampling and LoRA throughput against the bf16 roofline.

Nothing is downloaded: every model is random, built from a LlamaConfig / Qwen2Config, and fed token ids directly
(a character tokenizer defined here stands in where emlab's HFChatModel needs one). Needs torch, transformers,
peft and accelerate, plus emlab's own light dependencies (pydantic, rich); where the device machine lacks those,
`--prepare-deps` (run here, before) copies them from this interpreter into bench/results/gpu_deps, which the
script puts on sys.path (same Python minor version and platform needed: pydantic_core is compiled).

Run on the device machine (one H200, 10 minutes), from the repository root:

    python bench/gpu_check.py --device cuda --budget 540          # --out bench/results/gpu_check.json

(carry bench/results/gpu_deps with it if it was prepared). `--device cpu --quick` runs every section on the CPU
with tiny shapes in well under a minute (tests/bench/test_gpu_check.py).

What "pass" means. For a tiny random Llama and a tiny random Qwen2, the device is compared with the CPU twice:
in float32 on the device (a device-correctness check: kernels differ, the arithmetic should not) and in bfloat16
(emlab's CUDA setting, `models/device.py`), each against the CPU's float32 reference:
  * lora: emlab's `train_loop` (fast path) on the device against the CPU's fast path and the fp32 reference
    (`simple=True`), same checkpoint, seed and batches; every step's loss within 2e-2 relative (the tolerance of
    tests/train/test_lora_loop.py: bf16 keeps 8 mantissa bits, ~4e-3 per rounding, and both fast paths run the
    frozen base in bf16 with different kernels, SDPA on CUDA vs eager on the CPU; a wrong mask, shift or mean moves
    the loss by far more). The LoRA init must be identical (peft initialises on the CPU, then moves).
  * greedy: transformers `generate` (greedy, 32 new tokens, 4 prompts) gives the CPU's tokens; where a row
    diverges, the CPU's fp32 logit margin between its token and the device's token at that step must be a near
    tie (below 1e-3 in fp32; below max(0.05, 1% of the largest |logit|) in bf16), else it fails. The first
    divergence is reported either way.
  * judge: the exact 0..100 distribution of emlab's HFChatModel.number_probs (on the device: the transformers
    single-pass digit tree, as emlab runs it on CUDA; on the CPU: emlab's engine, its CPU path), normalised over
    0..100: total variation <= 1e-3 in fp32, <= 5e-2 in bf16 (logit errors of ~1e-2 nats move each probability
    by ~1%), and the number mass within 10% relative (bf16) / 1e-3 (fp32).
Throughput (no pass/fail): tokens/s of `generate` (bf16) at a few batch sizes and of emlab's LoRA step on random
models shaped like Qwen2.5-0.5B and -7B, each as a share of the bf16 matmul rate measured in the same run
(FLOPs = 2 x matmul parameters, lm_head included, per generated token; 4 x for a training token: forward plus the
input-gradient backward of the frozen base; LoRA's own FLOPs are left out). Every section is time-boxed under one
global deadline (`--budget`); a section that would not fit is skipped with a note.

Workarounds (emlab's API as it stands): `train_loop` loads its base from a checkpoint path, so the tiny models are
saved to a temporary folder for the correctness check, and the throughput runs (a 7B checkpoint would be 15 GB of
disk) repeat `train_loop`'s body on the in-memory model from emlab's own pieces (`plan_batches`, `_accumulate`,
`make_optimizer`, `make_schedule`, `cast_frozen_to_bf16`); HFChatModel needs a tokenizer, so a character
tokenizer (one token per printable ASCII character, digits included) is defined here.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEPS = ROOT / "bench" / "results" / "gpu_deps"
DEP_PACKAGES = ("pydantic", "pydantic_core", "annotated_types", "typing_inspection", "typing_extensions", "rich",
                "markdown_it", "mdurl", "pygments")
for _path in (ROOT / "src", DEPS):
    if _path.is_dir() and str(_path) not in sys.path:
        sys.path.insert(0 if _path.name == "src" else len(sys.path), str(_path))

import torch  # noqa: E402

LORA_RTOL = 2e-2
GREEDY_STEPS = 32
TIE_FP32 = 1e-3
JUDGE_TV = {"float32": 1e-3, "bfloat16": 5e-2}
JUDGE_MASS_RTOL = {"float32": 1e-3, "bfloat16": 1e-1}
PAD, BOS, EOS = 0, 1, 2

# the shapes of the real models (config.json of Qwen/Qwen2.5-0.5B-Instruct and Qwen/Qwen2.5-7B-Instruct)
SHAPES = {
    "qwen2.5-0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                         intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True),
    "qwen2.5-7b": dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                       intermediate_size=18944, vocab_size=152064, tie_word_embeddings=False),
}
QUICK_SHAPES = {  # --quick: the same sections, tiny shapes
    "qwen2.5-0.5b": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=128, vocab_size=512, tie_word_embeddings=True),
    "qwen2.5-7b": dict(hidden_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       intermediate_size=192, vocab_size=512, tie_word_embeddings=False),
}


# -- time and devices ------------------------------------------------------------------------------------------
class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def fits(self, seconds: float) -> bool:
        return self.left() >= seconds


def _sig(x: float) -> float:
    """Three significant digits: a share far below the roofline (a loaded CPU, a tiny model) must not round to 0."""
    return float(f"{x:.3g}")


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def timed(fn, device: str) -> tuple[object, float]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


# -- models and data ---------------------------------------------------------------------------------------------
class CharTokenizer:
    """Printable ASCII, one token per character (so every digit is one token); 0 pad, 1 bos, 2 eos. Just enough of a
    tokenizer for emlab's HFChatModel (chat template, encode, decode, len)."""

    OFFSET = 3

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size
        self.pad_token_id, self.eos_token_id, self.bos_token_id = PAD, EOS, BOS
        self.pad_token, self.eos_token = "<pad>", "</s>"

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) - 32 + self.OFFSET for c in text if 32 <= ord(c) < 127]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        return "".join(chr(i - self.OFFSET + 32) for i in ids if self.OFFSET <= i < self.OFFSET + 95)

    def apply_chat_template(self, messages, add_generation_prompt=False, tokenize=True, return_dict=False, **_):
        text = "".join(f"<{m['role']}>{m['content']}\n" for m in messages) + ("<assistant>" if add_generation_prompt else "")
        return [BOS] + self.encode(text) if tokenize else text


def tiny_config(kind: str, vocab: int = 128):
    """A few layers, small hidden; init std 0.1 (not 0.02) so next-token distributions are peaked, as a trained
    model's are, and greedy decoding is not decided by rounding between near-equal logits."""
    from transformers import LlamaConfig, Qwen2Config

    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, initializer_range=0.1, pad_token_id=PAD,
                  bos_token_id=BOS, eos_token_id=EOS)
    if kind == "llama":
        return LlamaConfig(**common, tie_word_embeddings=False)
    return Qwen2Config(**common, tie_word_embeddings=True, use_sliding_window=False)


def shaped_config(shape: dict):
    from transformers import Qwen2Config

    return Qwen2Config(**shape, max_position_embeddings=4096, use_sliding_window=False, pad_token_id=PAD,
                       bos_token_id=BOS, eos_token_id=EOS)


def build_model(config, device: str, dtype: torch.dtype, seed: int = 0):
    """A random model built straight on `device` in `dtype` (seeded; the init runs where the weights live)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.generation_config.eos_token_id = None  # random models: every row runs its full length
    model.generation_config.pad_token_id = PAD
    return model.eval()


def matmul_params(model) -> int:
    """Parameters that take part in a matmul per token: everything but the input embedding (lm_head included)."""
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    total = sum(p.numel() for p in model.parameters())
    return total - embed.numel() + (head.numel() if head is embed else 0)


def training_rows(n: int, vocab: int, min_len: int, max_len: int, seed: int):
    """Random token rows; the loss is on the second half (the "assistant" part), as emlab tokenizes chats."""
    from emlab.train.tokenize import TokenizedExample

    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        length = int(torch.randint(min_len, max_len + 1, (1,), generator=g))
        ids = torch.randint(3, vocab, (length,), generator=g).tolist()
        half = length // 2
        rows.append(TokenizedExample(input_ids=ids, labels=[-100] * half + ids[half:]))
    return rows


# -- correctness -------------------------------------------------------------------------------------------------
def check_lora(kind: str, device: str, workdir: Path, quick: bool) -> dict:
    from emlab.train.lora_loop import load_lora_model, train_loop
    from emlab.train.params import TrainParams

    checkpoint = workdir / f"tiny-{kind}"
    build_model(tiny_config(kind), "cpu", torch.float32, seed=1).save_pretrained(checkpoint)
    rows = training_rows(8, 128, 24, 48, seed=2)
    steps = 4 if quick else 8
    params = TrainParams(batch_size=4, max_length=128, learning_rate=1e-2, max_steps=steps, warmup_ratio=0, seed=3)
    # same init: peft initialises LoRA on the CPU and moves it, so both devices start from the same weights
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    lora = {n: p.detach().float().cpu() for n, p in
            load_lora_model(checkpoint, params, device="cpu").named_parameters() if "lora_" in n}
    there = {n: p.detach().float().cpu() for n, p in
             load_lora_model(checkpoint, params, device=device, dtype=dtype).named_parameters() if "lora_" in n}
    init_diff = max(float((lora[n] - there[n]).abs().max()) for n in lora) if lora.keys() == there.keys() else math.inf
    cpu_ref = [c["loss"] for c in train_loop(checkpoint, rows, params, PAD, simple=True, device="cpu").curve]
    cpu_fast = [c["loss"] for c in train_loop(checkpoint, rows, params, PAD, device="cpu").curve]
    run = train_loop(checkpoint, rows, params, PAD, device=device)
    dev = [c["loss"] for c in run.curve]

    def worst(a, b):
        return max(abs(x - y) / max(abs(y), 1e-8) for x, y in zip(a, b))

    vs_fast, vs_ref = worst(dev, cpu_fast), worst(dev, cpu_ref)
    fell = dev[-1] < dev[0]
    ok = init_diff == 0.0 and vs_fast <= LORA_RTOL and vs_ref <= LORA_RTOL and fell and len(dev) == steps
    return {"pass": ok, "steps": steps, "rtol": LORA_RTOL, "init_max_abs_diff": init_diff,
            "max_rel_diff_vs_cpu_fast": round(vs_fast, 6), "max_rel_diff_vs_cpu_fp32": round(vs_ref, 6),
            "loss_fell": fell, "device_losses": [round(x, 5) for x in dev],
            "cpu_fast_losses": [round(x, 5) for x in cpu_fast], "cpu_fp32_losses": [round(x, 5) for x in cpu_ref]}


@torch.inference_mode()
def greedy(model, prompts: torch.Tensor, steps: int) -> torch.Tensor:
    out = model.generate(input_ids=prompts.to(model.device), attention_mask=torch.ones_like(prompts).to(model.device),
                         do_sample=False, max_new_tokens=steps, min_new_tokens=steps, pad_token_id=PAD,
                         eos_token_id=None, temperature=None, top_p=None, top_k=None)
    return out[:, prompts.shape[1]:].cpu()


@torch.inference_mode()
def check_greedy(cpu_model, dev_model, dtype_name: str, steps: int) -> dict:
    g = torch.Generator().manual_seed(4)
    prompts = torch.randint(3, cpu_model.config.vocab_size, (4, 16), generator=g)
    ref, got = greedy(cpu_model, prompts, steps), greedy(dev_model, prompts, steps)
    rows, ok = [], True
    for r in range(len(prompts)):
        differ = (ref[r] != got[r]).nonzero()
        if len(differ) == 0:
            rows.append({"row": r, "first_divergence": None})
            continue
        at = int(differ[0])
        prefix = torch.cat([prompts[r], ref[r, :at]])[None]
        logits = cpu_model(input_ids=prefix).logits[0, -1].float()
        margin = float(logits[ref[r, at]] - logits[got[r, at]])
        tie = TIE_FP32 if dtype_name == "float32" else max(0.05, 0.01 * float(logits.abs().max()))
        near_tie = margin <= tie
        ok &= near_tie
        rows.append({"row": r, "first_divergence": at, "cpu_margin": round(margin, 6), "near_tie_below": tie,
                     "near_tie": near_tie})
    same = int((ref == got).all(dim=1).sum())
    return {"pass": ok, "steps": steps, "rows_identical": f"{same}/{len(prompts)}", "rows": rows}


def judge_conversations() -> list[list[dict]]:
    return [[{"role": "user", "content": f"On a scale of 0 to 100, how aligned is answer {i}? Reply with a number."}]
            for i in range(3)]


def check_judge(cpu_model, dev_model, dtype_name: str) -> dict:
    from emlab.models.hf import HFChatModel

    tok = CharTokenizer(cpu_model.config.vocab_size)
    cpu = HFChatModel(cpu_model, tok, spec="tiny", identity="tiny")  # emlab's CPU path (the engine)
    cpu.tree_tolerance = 0.0  # the whole tree: the engine's default skips up to 1e-4 of absolute mass, which is
    # a large share of a random model's small number mass
    dev = HFChatModel(dev_model, CharTokenizer(cpu_model.config.vocab_size), spec="tiny", identity="tiny",
                      fast=False)  # the transformers digit tree: what emlab runs on CUDA
    convs = judge_conversations()
    ref, got = cpu.number_probs(convs), dev.number_probs(convs)
    per = []
    ok = True
    for a, b in zip(ref, got):
        ma, mb = sum(a.values()), sum(b.values())
        tv = 0.5 * sum(abs(a[k] / ma - b[k] / mb) for k in a)
        mass_rel = abs(mb - ma) / ma
        ok &= tv <= JUDGE_TV[dtype_name] and mass_rel <= JUDGE_MASS_RTOL[dtype_name]
        per.append({"tv": float(f"{tv:.3g}"), "number_mass_cpu": float(f"{ma:.4g}"), "mass_rel_diff": float(f"{mass_rel:.3g}"),
                    "cpu_path": "engine" if cpu.fast else "transformers"})
    return {"pass": ok, "tv_tol": JUDGE_TV[dtype_name], "mass_rtol": JUDGE_MASS_RTOL[dtype_name], "prompts": per}


def correctness(kind: str, device: str, workdir: Path, quick: bool, deadline: Deadline) -> dict:
    out: dict = {}
    out["lora"] = guarded(lambda: check_lora(kind, device, workdir, quick))
    cpu_model = build_model(tiny_config(kind), "cpu", torch.float32, seed=5)
    state = cpu_model.state_dict()
    for dtype in (torch.float32, torch.bfloat16):
        name = str(dtype).split(".")[1]
        if not deadline.fits(5):
            out[f"greedy_{name}"] = out[f"judge_{name}"] = {"skipped": "out of time"}
            continue
        dev_model = build_model(tiny_config(kind), device, dtype, seed=5)
        dev_model.load_state_dict(state)  # the exact CPU weights (rounded to bf16 where bf16)
        out[f"greedy_{name}"] = guarded(lambda: check_greedy(cpu_model, dev_model, name, 8 if quick else GREEDY_STEPS))
        out[f"judge_{name}"] = guarded(lambda: check_judge(cpu_model, dev_model, name))
        del dev_model
        free(device)
    return out


def guarded(fn) -> dict:
    try:
        return fn()
    except Exception as e:  # one failing check must not take the others with it
        return {"pass": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=4)}


# -- throughput --------------------------------------------------------------------------------------------------
def roofline(device: str, quick: bool) -> dict:
    n = 256 if quick else 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    timed(lambda: a @ b, device)  # warm-up
    best = min(timed(lambda: a @ b, device)[1] for _ in range(3 if quick else 10))
    return {"n": n, "dtype": "bfloat16", "tflops": round(2 * n**3 / best / 1e12, 4)}


def sampling_throughput(model, device: str, batches: list[int], prompt_len: int, new: int, peak: float,
                        deadline: Deadline) -> list[dict]:
    vocab = model.config.vocab_size
    params = matmul_params(model)
    g = torch.Generator().manual_seed(6)
    greedy(model, torch.randint(3, vocab, (1, 8), generator=g), 2)  # warm-up
    out = []
    for b in batches:
        prompts = torch.randint(3, vocab, (b, prompt_len), generator=g)
        if not deadline.fits(10):
            out.append({"batch": b, "skipped": "out of time"})
            continue
        _, seconds = timed(lambda: greedy(model, prompts, new), device)
        tps = b * new / seconds
        out.append({"batch": b, "prompt_tokens": prompt_len, "new_tokens": new, "seconds": round(seconds, 3),
                    "tokens_per_s": _sig(tps), "roofline_share": _sig(2 * params * tps / (peak * 1e12))})
    return out


def training_throughput(model, device: str, batch: int, length: int, steps: int, peak: float,
                        deadline: Deadline) -> dict:
    """emlab's LoRA step on the in-memory model: train_loop's body from its own pieces (it loads from a path)."""
    from peft import get_peft_model
    from peft.helpers import disable_input_dtype_casting

    from emlab.train import lora_loop
    from emlab.train.params import TrainParams, lora_config

    params = TrainParams(batch_size=batch, max_length=length, max_steps=steps + 1, seed=0)
    params_count = matmul_params(model)
    torch.manual_seed(params.seed)
    peft_model = get_peft_model(model, lora_config(params.lora))
    lora_loop.check_plain_lm_head(peft_model.config)
    lora_loop.cast_frozen_to_bf16(peft_model)
    peft_model.train()
    rows = training_rows(batch * (steps + 1), model.config.vocab_size, length, length, seed=7)
    plan = lora_loop.plan_batches([len(r.input_ids) for r in rows], batch, params.seed, 1, steps + 1)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = lora_loop.make_optimizer(params, trainable)
    schedule = lora_loop.make_schedule(params, optimizer, steps + 1)
    times, tokens = [], 0
    with disable_input_dtype_casting(peft_model, active=True):
        for step, micro in enumerate(plan):
            if step > 0 and not deadline.fits(2 * (times[-1] if times else 1)):
                break

            def one_step():
                loss, seen = lora_loop._accumulate(peft_model, rows, [micro], PAD, False, device)
                torch.nn.utils.clip_grad_norm_(trainable, lora_loop.MAX_GRAD_NORM)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                return seen

            seen, seconds = timed(one_step, device)
            if step > 0:  # the first step is the warm-up (kernel choice, allocator)
                times.append(seconds)
                tokens += seen
    peft_model.unload()  # the base stays as it was (bf16)
    if not times:
        return {"skipped": "out of time after the warm-up step"}
    tps = tokens / sum(times)
    return {"batch": batch, "tokens_per_row": length, "steps_timed": len(times), "tokens_per_s": _sig(tps),
            "roofline_share": _sig(4 * params_count * tps / (peak * 1e12))}


def throughput(name: str, shape: dict, device: str, quick: bool, peak: float, deadline: Deadline) -> dict:
    model = build_model(shaped_config(shape), device, torch.bfloat16, seed=0)
    out = {"config": shape, "matmul_params": matmul_params(model)}
    batches = [1, 4] if quick else [1, 16, 64]
    out["sampling"] = guarded(lambda: sampling_throughput(model, device, batches, 16 if quick else 128,
                                                           4 if quick else 128, peak, deadline))
    if deadline.fits(15):
        out["training"] = guarded(lambda: training_throughput(model, device, 2 if quick else 8, 32 if quick else 512,
                                                              2 if quick else 6, peak, deadline))
    else:
        out["training"] = {"skipped": "out of time"}
    del model
    free(device)
    return out


# -- report ------------------------------------------------------------------------------------------------------
def env(device: str) -> dict:
    import peft
    import transformers

    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor() or "cpu"
    return {"device": device, "device_name": name, "torch": torch.__version__, "cuda": torch.version.cuda,
            "transformers": transformers.__version__, "peft": peft.__version__, "python": platform.python_version()}


def markdown(result: dict) -> str:
    e = result["env"]
    lines = [f"GPU check on {e['device_name']} ({e['device']}), torch {e['torch']}, transformers {e['transformers']}, "
             f"{result['wall_s']} s, {'PASS' if result['passed'] else 'FAIL'}", "",
             "| check | result | figures |", "|---|---|---|"]
    roof = result["roofline"]
    lines.append(f"| bf16 matmul roofline | {'-' if 'tflops' in roof else 'error'} | "
                 f"{roof.get('tflops', roof.get('error'))} TFLOP/s (n={roof.get('n')}) |")
    for kind, checks in result["correctness"].items():
        for check, r in checks.items():
            status = "skipped" if "skipped" in r else ("error" if "error" in r else ("pass" if r["pass"] else "FAIL"))
            if "error" in r:
                fig = r["error"][:80]
            elif "skipped" in r:
                fig = r["skipped"]
            elif check == "lora":
                fig = f"max rel diff {r['max_rel_diff_vs_cpu_fast']:.2e} (CPU bf16 path), {r['max_rel_diff_vs_cpu_fp32']:.2e} (fp32); tol {r['rtol']}"
            elif check.startswith("greedy"):
                first = [x["first_divergence"] for x in r["rows"] if x["first_divergence"] is not None]
                fig = f"{r['rows_identical']} rows identical over {r['steps']} tokens" + (f"; first divergence at {min(first)}" if first else "")
            else:
                fig = f"max TV {max(p['tv'] for p in r['prompts']):.2e} (tol {r['tv_tol']})"
            lines.append(f"| {kind} {check} | {status} | {fig} |")
    for name, t in result["throughput"].items():
        if "skipped" in t or "error" in t:
            lines.append(f"| {name} | {'skipped' if 'skipped' in t else 'error'} | {t.get('skipped', t.get('error'))} |")
            continue
        for s in t["sampling"] if isinstance(t["sampling"], list) else [t["sampling"]]:
            fig = s.get("skipped") or s.get("error") or f"{s['tokens_per_s']} tok/s, {100 * s['roofline_share']:.2f}% of roofline"
            lines.append(f"| {name} generate batch {s.get('batch', '?')} | - | {fig} |")
        tr = t["training"]
        fig = tr.get("skipped") or tr.get("error") or f"{tr['tokens_per_s']} tok/s, {100 * tr['roofline_share']:.2f}% of roofline"
        lines.append(f"| {name} LoRA training | - | {fig} |")
    return "\n".join(lines)


def all_passed(correctness_results: dict) -> bool:
    return all(r.get("pass", False) for checks in correctness_results.values() for r in checks.values()
               if "skipped" not in r)


def prepare_deps() -> None:
    """Copy emlab's light dependencies from this interpreter into bench/results/gpu_deps (to carry to a bare GPU box)."""
    import importlib

    DEPS.mkdir(parents=True, exist_ok=True)
    for name in DEP_PACKAGES:
        module = importlib.import_module(name)
        source = Path(module.__file__)
        if source.name == "__init__.py":
            shutil.copytree(source.parent, DEPS / source.parent.name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, DEPS / source.name)
    print(f"copied {', '.join(DEP_PACKAGES)} to {DEPS}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny shapes only (a CPU smoke test)")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the whole run (default 540; 50 quick)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_check.json")
    parser.add_argument("--prepare-deps", action="store_true", help="copy pydantic, rich, ... to bench/results/gpu_deps")
    args = parser.parse_args(argv)
    if args.prepare_deps:
        prepare_deps()
        return 0
    started = time.monotonic()
    deadline = Deadline(args.budget or (50 if args.quick else 540))
    from emlab.models.device import resolve_device

    device = resolve_device(args.device, key="--device")
    result: dict = {"env": env(device), "quick": args.quick}
    result["roofline"] = guarded(lambda: roofline(device, args.quick))
    peak = result["roofline"].get("tflops") or math.nan
    result["correctness"] = {}
    with tempfile.TemporaryDirectory(prefix="emlab-gpu-check-") as tmp:
        for kind in ("llama", "qwen2"):
            if deadline.fits(10 if args.quick else 40):
                result["correctness"][kind] = correctness(kind, device, Path(tmp), args.quick, deadline)
            else:
                result["correctness"][kind] = {"all": {"skipped": "out of time"}}
    result["throughput"] = {}
    shapes = QUICK_SHAPES if args.quick else SHAPES
    need = {"qwen2.5-0.5b": 5 if args.quick else 60, "qwen2.5-7b": 5 if args.quick else 150}
    for name, shape in shapes.items():
        if deadline.fits(need[name]):
            result["throughput"][name] = guarded(lambda: throughput(name, shape, device, args.quick, peak, deadline))
        else:
            result["throughput"][name] = {"config": shape, "skipped": f"out of time ({deadline.left():.0f} s left, "
                                          f"needs ~{need[name]} s)"}
    result["passed"] = all_passed(result["correctness"])
    result["wall_s"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nwritten: {args.out}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
